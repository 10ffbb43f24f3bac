using System.Diagnostics;

namespace CloudVpn.Testing;

/// <summary>
/// Checks what an integration test needs. Outside CI a missing prerequisite skips the test; under
/// <c>CI=true</c> it fails it, so a CI run never passes by skipping.
/// </summary>
internal static class Prerequisite
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Skips (or, under CI, fails) the test unless <paramref name="condition"/> holds.</summary>
    public static void Require(bool condition, string what)
    {
        if (condition)
        {
            return;
        }

        if (IsCi)
        {
            Assert.Fail($"Missing prerequisite under CI=true: {what}");
        }

        Assert.Skip($"Missing prerequisite: {what}");
    }

    public static void RequireRoot() => Require(Environment.UserName == "root" || geteuid() == 0, "root (network namespaces, TUN devices)");

    public static void RequireCommand(string command) => Require(FindCommand(command) is not null, $"command '{command}' on PATH");

    public static string? FindCommand(string command)
    {
        if (command.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(command) ? command : null;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        foreach (var dir in path.Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            var candidate = Path.Combine(dir, command);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();
}

/// <summary>Runs a command and captures its output; throws with the output when it fails (unless told not to).</summary>
internal static class Cmd
{
    public static (int ExitCode, string Stdout, string Stderr) Run(string file, string arguments, bool check = true, string? stdin = null, int timeoutMs = 60_000)
    {
        var psi = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }

        var stdoutTask = p.StandardOutput.ReadToEndAsync();
        var stderrTask = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            try
            {
                p.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }

            throw new TimeoutException($"{file} {arguments} did not finish in {timeoutMs} ms");
        }

        var stdout = stdoutTask.GetAwaiter().GetResult();
        var stderr = stderrTask.GetAwaiter().GetResult();
        if (check && p.ExitCode != 0)
        {
            throw new InvalidOperationException($"`{file} {arguments}` exited {p.ExitCode}: {stderr}{stdout}");
        }

        return (p.ExitCode, stdout, stderr);
    }

    /// <summary>Runs a shell command line with bash -c.</summary>
    public static string Sh(string commandLine, bool check = true, int timeoutMs = 60_000) =>
        Run("/bin/bash", $"-c \"{commandLine.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}\"", check, timeoutMs: timeoutMs).Stdout;
}

/// <summary>
/// Two network namespaces joined by a veth pair, created by the test and removed on dispose. Underlay addresses come
/// from documentation prefixes (default 192.0.2.1/24 and 192.0.2.2/24), so nothing leaves the machine.
/// </summary>
internal sealed class NetnsPair : IDisposable
{
    private static int s_counter;

    public NetnsPair(string prefix = "cv", string leftAddress = "192.0.2.1/24", string rightAddress = "192.0.2.2/24")
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("ip");
        var id = $"{Environment.ProcessId % 10000}{Interlocked.Increment(ref s_counter)}";
        Left = $"{prefix}l{id}";
        Right = $"{prefix}r{id}";
        LeftAddress = leftAddress;
        RightAddress = rightAddress;
        Cmd.Run("ip", $"netns add {Left}");
        Cmd.Run("ip", $"netns add {Right}");
        Cmd.Run("ip", $"link add veth0 netns {Left} type veth peer name veth0 netns {Right}");
        Cmd.Run("ip", $"-n {Left} addr add {leftAddress} dev veth0");
        Cmd.Run("ip", $"-n {Right} addr add {rightAddress} dev veth0");
        foreach (var ns in new[] { Left, Right })
        {
            Cmd.Run("ip", $"-n {ns} link set lo up");
            Cmd.Run("ip", $"-n {ns} link set veth0 up");
        }
    }

    public string Left { get; }

    public string Right { get; }

    public string LeftAddress { get; }

    public string RightAddress { get; }

    /// <summary>The left underlay IP without prefix length.</summary>
    public string LeftIp => LeftAddress.Split('/')[0];

    /// <summary>The right underlay IP without prefix length.</summary>
    public string RightIp => RightAddress.Split('/')[0];

    /// <summary>Runs a command inside a namespace.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Exec(string ns, string commandLine, bool check = true, int timeoutMs = 60_000) =>
        Cmd.Run("ip", $"netns exec {ns} {commandLine}", check, timeoutMs: timeoutMs);

    /// <summary>
    /// Waits until something listens on TCP <paramref name="port"/> inside <paramref name="ns"/> (a server started in
    /// the background, e.g. iperf3 -s), polling <c>ss</c> up to the deadline; false when nothing came.
    /// </summary>
    public static bool WaitForTcpListener(string ns, int port, int timeoutMs = 10_000) =>
        Eventually.Within(() => Exec(ns, $"ss -Hltn sport = :{port}", check: false).Stdout.Trim().Length > 0, timeoutMs, pollMs: 20);

    public void Dispose()
    {
        Cmd.Run("ip", $"netns del {Left}", check: false);
        Cmd.Run("ip", $"netns del {Right}", check: false);
    }
}
