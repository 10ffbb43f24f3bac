using System.Diagnostics;
using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>Which userspace WireGuard a test runs.</summary>
internal enum Implementation
{
    /// <summary>Our drop-in sample (CloudVpn.Samples.UserspaceWireGuard).</summary>
    CloudVpn,

    /// <summary>Debian's wireguard-go.</summary>
    WireGuardGo,
}

/// <summary>
/// A userspace WireGuard daemon (ours or wireguard-go) running in the foreground inside a network namespace, started
/// exactly the same way (<c>ip netns exec NS program -f IFNAME</c>) and configured with <c>wg</c> and <c>ip</c>.
/// Dispose stops it with SIGTERM (SIGKILL if it hangs) and removes what it left.
/// </summary>
internal sealed class WireGuardProcess : IDisposable
{
    private static int s_counter;
    private readonly Process _process;
    private readonly System.Text.StringBuilder _output = new();

    private WireGuardProcess(Implementation implementation, string netns, string name, Process process)
    {
        Implementation = implementation;
        Netns = netns;
        Name = name;
        _process = process;
    }

    public Implementation Implementation { get; }

    public string Netns { get; }

    /// <summary>Interface name (unique across namespaces: the socket directory is shared).</summary>
    public string Name { get; }

    public string SocketPath => $"/var/run/wireguard/{Name}.sock";

    public bool HasExited => _process.HasExited;

    /// <summary>The daemon's process id (`ip netns exec` execs into it).</summary>
    public int ProcessId => _process.Id;

    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Path of our drop-in, built next to the tests by the project reference.</summary>
    public static string DropInPath
    {
        get
        {
            // tests/CloudVpn.WireGuard.Tests/bin/<cfg>/net10.0/ -> samples/CloudVpn.Samples.UserspaceWireGuard/bin/<cfg>/net10.0/
            var dir = AppContext.BaseDirectory
                .Replace("tests/CloudVpn.WireGuard.Tests", "samples/CloudVpn.Samples.UserspaceWireGuard", StringComparison.Ordinal);
            return Path.Combine(dir, "CloudVpn.Samples.UserspaceWireGuard");
        }
    }

    public static void RequirePrerequisites(Implementation implementation)
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wg");
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        if (implementation == Implementation.WireGuardGo)
        {
            Prerequisite.RequireCommand("wireguard-go");
        }
        else
        {
            Prerequisite.Require(File.Exists(DropInPath), $"the drop-in built at {DropInPath}");
        }
    }

    public static string UniqueName(string prefix) =>
        $"{prefix}{Environment.ProcessId % 1000}x{Interlocked.Increment(ref s_counter)}";

    public static WireGuardProcess Start(Implementation implementation, string netns, string? name = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        RequirePrerequisites(implementation);
        name ??= UniqueName(implementation == Implementation.CloudVpn ? "cvo" : "cvg");
        var program = implementation == Implementation.CloudVpn ? DropInPath : Prerequisite.FindCommand("wireguard-go")!;
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "netns", "exec", netns, program, "-f", name })
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment["LOG_LEVEL"] = "info";
        if (implementation == Implementation.CloudVpn)
        {
            psi.Environment["CLOUDVPN_WG_STATS_FILE"] = StatsPathOf(name);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[key] = value;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var wg = new WireGuardProcess(implementation, netns, name, process);
        process.OutputDataReceived += (_, e) => wg.Append(e.Data);
        process.ErrorDataReceived += (_, e) => wg.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        // the socket file appears at bind, a moment before it accepts: wait until `wg` gets an answer through it
        while (!File.Exists(wg.SocketPath) || NetnsPair.Exec(netns, $"ip link show {name}", check: false).ExitCode != 0
            || NetnsPair.Exec(netns, $"wg show {name} listen-port", check: false).ExitCode != 0)
        {
            if (process.HasExited || deadline.Elapsed > TimeSpan.FromSeconds(20))
            {
                var output = wg.Output;
                wg.Dispose();
                throw new InvalidOperationException($"{implementation} for {name} did not come up: {output}");
            }

            Thread.Sleep(50);
        }

        return wg;
    }

    private static string StatsPathOf(string name) => Path.Combine(Path.GetTempPath(), $"cloudvpn-stats-{name}");

    /// <summary>
    /// Our drop-in's statistics (CLOUDVPN_WG_STATS_FILE: allocated bytes, collections, TUN packets), taken after
    /// <paramref name="notBefore"/> (Environment.TickCount64 of this machine): waits for the next sample.
    /// </summary>
    public IReadOnlyDictionary<string, long> ReadStats(long notBefore)
    {
        var path = StatsPathOf(Name);
        IReadOnlyDictionary<string, long>? sample = null;
        bool Fresh()
        {
            if (!File.Exists(path))
            {
                return false;
            }

            var values = File.ReadAllLines(path)
                .Select(line => line.Split('=', 2))
                .Where(parts => parts.Length == 2)
                .ToDictionary(parts => parts[0], parts => long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
            sample = values;
            return values.TryGetValue("time_ms", out var time) && time >= notBefore;
        }

        return Eventually.Within(Fresh, timeoutMs: 10_000, pollMs: 100)
            ? sample!
            : throw new InvalidOperationException($"{Name} wrote no statistics to {path}: {Output}");
    }

    /// <summary>
    /// Gives the daemon's UDP sockets <paramref name="bytes"/> of receive and send buffer (SO_RCVBUFFORCE and
    /// SO_SNDBUFFORCE on the sockets themselves, reached with pidfd_getfd), as wireguard-go does itself since
    /// v0.0.20230223 (7 MiB). Debian's v0.0.20220316 keeps the 208 KiB default, which a machine busy on other work
    /// overflows while the daemon waits for a core (seen as UdpRcvbufErrors in its namespace, and lost pings). Call it
    /// after the listen port is set (a new port means new sockets). Returns how many UDP sockets were changed.
    /// </summary>
    public int EnlargeUdpSocketBuffers(int bytes = 7 << 20)
    {
        var pid = _process.Id;
        var pidfd = (int)Native.Syscall(Native.PidfdOpen, pid, 0, 0);
        if (pidfd < 0)
        {
            throw new InvalidOperationException($"pidfd_open({pid}) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }

        var changed = 0;
        try
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                var target = new FileInfo(entry).LinkTarget ?? string.Empty;
                if (!target.StartsWith("socket:", StringComparison.Ordinal) || !int.TryParse(Path.GetFileName(entry), out var fd))
                {
                    continue;
                }

                var local = (int)Native.Syscall(Native.PidfdGetfd, pidfd, fd, 0);
                if (local < 0)
                {
                    continue;
                }

                try
                {
                    if (Native.GetInt(local, Native.SoDomain) is Native.AfInet or Native.AfInet6 && Native.GetInt(local, Native.SoType) == Native.SockDgram)
                    {
                        Native.SetInt(local, Native.SoRcvBufForce, bytes);
                        Native.SetInt(local, Native.SoSndBufForce, bytes);
                        changed++;
                    }
                }
                finally
                {
                    _ = Native.Close(local);
                }
            }
        }
        finally
        {
            _ = Native.Close(pidfd);
        }

        return changed;
    }

    /// <summary>Runs <c>wg ARGS</c> inside the namespace (the socket is found by interface name).</summary>
    public string Wg(string arguments) => NetnsPair.Exec(Netns, $"wg {arguments}").Stdout;

    /// <summary>Runs <c>ip ARGS</c> inside the namespace.</summary>
    public string Ip(string arguments) => NetnsPair.Exec(Netns, $"ip {arguments}").Stdout;

    /// <summary>Sends SIGTERM and waits for the exit; true when it exited within the timeout.</summary>
    public bool Terminate(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            Cmd.Run("kill", $"-TERM {_process.Id}", check: false);
        }

        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        // the timed wait does not wait for the redirected output; this one returns once it is all read
        _process.WaitForExit();
        return true;
    }

    public void Dispose()
    {
        if (!Terminate(TimeSpan.FromSeconds(5)))
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }

        _process.Dispose();
        Cmd.Run("ip", $"-n {Netns} link del {Name}", check: false);
        try
        {
            File.Delete(SocketPath);
            File.Delete(StatsPathOf(Name));
        }
        catch (IOException)
        {
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}

/// <summary>The few system calls <see cref="WireGuardProcess.EnlargeUdpSocketBuffers"/> needs.</summary>
internal static partial class Native
{
    public const long PidfdOpen = 434;
    public const long PidfdGetfd = 438;
    public const int SoType = 3;
    public const int SoSndBufForce = 32;
    public const int SoRcvBufForce = 33;
    public const int SoDomain = 39;
    public const int AfInet = 2;
    public const int AfInet6 = 10;
    public const int SockDgram = 2;
    private const int SolSocket = 1;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    public static partial long Syscall(long number, long a, long b, long c);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static unsafe partial int GetSockOpt(int fd, int level, int name, int* value, int* length);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static unsafe partial int SetSockOpt(int fd, int level, int name, int* value, int length);

    public static unsafe int GetInt(int fd, int name)
    {
        int value = 0, length = sizeof(int);
        return GetSockOpt(fd, SolSocket, name, &value, &length) == 0 ? value : -1;
    }

    public static unsafe void SetInt(int fd, int name, int value)
    {
        if (SetSockOpt(fd, SolSocket, name, &value, sizeof(int)) != 0)
        {
            throw new InvalidOperationException($"setsockopt({name}) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }
}
