using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using CloudVpn.KeyStores;
using CloudVpn.Testing;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace CloudVpn.OpenVpn.Tests;

/// <summary>
/// Two namespaces (server left, clients right), a file key store, and our driver starting the real openvpn in the
/// left namespace through a two-line wrapper (<c>exec ip netns exec L openvpn "$@"</c>, so the pid is openvpn's own).
/// </summary>
internal sealed class OpenVpnLab : IAsyncDisposable
{
    private readonly List<OpenVpnClientProcess> _clients = [];

    public OpenVpnLab()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("openvpn");
        Prerequisite.RequireCommand("ping");
        Prerequisite.RequireCommand("iperf3");
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        Net = new NetnsPair("ov");
        Work = Path.Combine(Path.GetTempPath(), "cloudvpn-ovpn-it-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Work);
        Store = new FileKeyStore(new FileKeyStoreOptions { Directory = Path.Combine(Work, "keys") });
        Wrapper = Path.Combine(Work, "openvpn-in-netns");
        File.WriteAllText(Wrapper, $"#!/bin/sh\nexec ip netns exec {Net.Left} {Prerequisite.FindCommand("openvpn")} \"$@\"\n");
        File.SetUnixFileMode(Wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Options = new OpenVpnOptions
        {
            BinaryPath = Wrapper,
            RuntimeDirectory = Path.Combine(Work, "run"),
            RestartDelay = TimeSpan.FromMilliseconds(200),
            StatusPollInterval = TimeSpan.FromMilliseconds(200),
        };
        Driver = new OpenVpnDriver(Options, Store, TimeProvider.System, LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(Logs))));
    }

    public NetnsPair Net { get; }

    public string Work { get; }

    public FileKeyStore Store { get; }

    public string Wrapper { get; }

    public OpenVpnOptions Options { get; }

    public OpenVpnDriver Driver { get; }

    public FakeLogCollector Logs { get; } = new();

    public static TunnelSpec Spec(IReadOnlyDictionary<string, string>? settings = null, params (string Cn, string Address)[] peers)
    {
        var merged = new Dictionary<string, string>(settings ?? new Dictionary<string, string>()) { ["openvpn.server-name"] = "gw1" };
        return new TunnelSpec(
            new DeviceSpec("ovpn-it", new KeyReference("openvpn/gw1"), 1194, [IPNetwork.Parse("10.8.0.0/24")]),
            [.. peers.Select(p => new PeerSpec(p.Cn, [IPNetwork.Parse(p.Address + "/32")]))])
        {
            DriverSettings = merged,
        };
    }

    /// <summary>Exports <paramref name="commonName"/>'s profile and starts a client from it in the right namespace.</summary>
    public async Task<OpenVpnClientProcess> StartClientAsync(OpenVpnTunnel tunnel, string commonName) =>
        await StartClientAsync(await tunnel.ExportClientProfileAsync(commonName, Net.LeftIp), commonName);

    /// <summary>Starts a client in the right namespace from <paramref name="profile"/> (zeroed here).</summary>
    public async Task<OpenVpnClientProcess> StartClientAsync(byte[] profile, string commonName)
    {
        var path = Path.Combine(Work, commonName + ".ovpn");
        await File.WriteAllBytesAsync(path, profile);
        CryptographicOperations.ZeroMemory(profile);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var client = new OpenVpnClientProcess(Net.Right, path);
        _clients.Add(client);
        return client;
    }

    public static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > timeout)
            {
                throw new Xunit.Sdk.XunitException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
            }

            await Task.Delay(100);
        }
    }

    public bool Ping(string fromNamespace, string address, int count = 3) =>
        NetnsPair.Exec(fromNamespace, $"ping -c {count} -i 0.2 -W 1 {address}", check: false).ExitCode == 0;

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        Net.Dispose();
        await Task.Yield();
        if (Directory.Exists(Work))
        {
            Directory.Delete(Work, recursive: true);
        }
    }
}

/// <summary>A real openvpn client started from an exported profile inside a namespace; its output is kept.</summary>
internal sealed class OpenVpnClientProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];

    public OpenVpnClientProcess(string ns, string profile)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, Prerequisite.FindCommand("openvpn")!, "--config", profile, "--connect-retry", "1", "1" })
        {
            info.ArgumentList.Add(a);
        }

        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => Add(e.Data);
        _process.ErrorDataReceived += (_, e) => Add(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public bool Saw(string text) => Lines.Any(l => l.Contains(text, StringComparison.Ordinal));

    public int CountOf(string text) => Lines.Count(l => l.Contains(text, StringComparison.Ordinal));

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    private void Add(string? line)
    {
        if (line is not null)
        {
            lock (_lines)
            {
                _lines.Add(line);
            }
        }
    }
}
