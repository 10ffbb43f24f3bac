using System.Diagnostics;
using System.Globalization;
using System.Text;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.Samples.Sidecar.Tests;

/// <summary>
/// The sidecar host in network namespaces against two wireguard-go gateways (two replicas of one gateway: same key,
/// one DNS name with both addresses). The application namespace reaches the protected network only through the tunnel.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SidecarEndToEndTests : IDisposable
{
    private const string GatewayName = "gw.cloudvpn.test";
    private const string Protected = "10.99.0.10";
    private static int s_counter;

    private readonly string _id = $"{Environment.ProcessId % 1000}{Interlocked.Increment(ref s_counter)}";
    private readonly string _app;
    private readonly string[] _gateways;
    private readonly string _dir;
    private readonly List<Process> _processes = [];
    private readonly StringBuilder _log = new();
    private readonly ITestOutputHelper _output;

    public SidecarEndToEndTests(ITestOutputHelper output)
    {
        _output = output;
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("ip");
        Prerequisite.RequireCommand("wireguard-go");
        Prerequisite.RequireCommand("wg");
        Prerequisite.RequireCommand("ping");
        _app = $"sca{_id}";
        _gateways = [$"scg1{_id}", $"scg2{_id}"];
        _dir = Directory.CreateTempSubdirectory("cloudvpn-sidecar-").FullName;
    }

    private static string Sh(string command, bool check = true) => Cmd.Run("/bin/sh", $"-c \"{command.Replace("\"", "\\\"", StringComparison.Ordinal)}\"", check).Stdout;

    private static bool Ping(string ns, string address) =>
        Cmd.Run("ip", $"netns exec {ns} ping -c 1 -W 1 {address}", check: false).ExitCode == 0;

    [Fact]
    public async Task App_reaches_the_protected_network_only_through_the_tunnel_follows_the_secret_and_fails_over()
    {
        var ct = TestContext.Current.CancellationToken;
        using var gatewayKey = WireGuardSecretKey.GeneratePrivateKey();
        using var clientKey = WireGuardSecretKey.GeneratePrivateKey();

        // topology: app <-veth-> gateway 1 (192.0.2.0/24), app <-veth-> gateway 2 (198.51.100.0/24)
        Sh($"ip netns add {_app}");
        string[] underlay = ["192.0.2", "198.51.100"];
        for (var i = 0; i < 2; i++)
        {
            var gw = _gateways[i];
            Sh($"ip netns add {gw}");
            Sh($"ip link add sv{i}{_id} netns {_app} type veth peer name sv{i}{_id} netns {gw}");
            Sh($"ip -n {_app} addr add {underlay[i]}.1/24 dev sv{i}{_id} && ip -n {_app} link set sv{i}{_id} up");
            Sh($"ip -n {gw} addr add {underlay[i]}.2/24 dev sv{i}{_id} && ip -n {gw} link set sv{i}{_id} up && ip -n {gw} link set lo up");
            // the protected network lives behind the gateway
            Sh($"ip -n {gw} addr add {Protected}/32 dev lo");
            await File.WriteAllTextAsync(Path.Combine(_dir, "gw.key"), gatewayKey.ToBase64(), ct);
            Sh($"ip netns exec {gw} wireguard-go {Wg(gw)}");
            Sh($"ip netns exec {gw} wg set {Wg(gw)} private-key {_dir}/gw.key listen-port 51820 peer {clientKey.GetPublicKey()} allowed-ips 10.77.0.2/32");
            Sh($"ip -n {gw} addr add 10.77.0.1/24 dev {Wg(gw)} && ip -n {gw} link set {Wg(gw)} up");
        }

        Sh($"ip -n {_app} link set lo up");
        Directory.CreateDirectory($"/etc/netns/{_app}");
        await File.WriteAllTextAsync($"/etc/netns/{_app}/hosts", $"127.0.0.1 localhost\n192.0.2.2 {GatewayName}\n198.51.100.2 {GatewayName}\n", ct);

        var configDir = Path.Combine(_dir, "secret");
        Directory.CreateDirectory(configDir);
        WriteSecret(configDir, clientKey, gatewayKey);

        Assert.False(Ping(_app, Protected), "the protected network must not be reachable without the tunnel");

        var sidecarDll = Path.Combine(AppContext.BaseDirectory, "cloudvpn-sidecar.dll");
        StartInNetns(_app, $"dotnet {sidecarDll} --config-dir {configDir} --state-dir {_dir}/state --interface cvpn0 --gateway vpn-gateway --http 127.0.0.1:9102");
        var wait = Cmd.Run("ip", $"netns exec {_app} dotnet {sidecarDll} --wait-ready --http 127.0.0.1:9102", check: false, timeoutMs: 130_000);
        Assert.True(wait.ExitCode == 0, $"sidecar never became ready: {wait.Stderr}\n{Log()}");

        Assert.True(Ping(_app, Protected), $"no path to the protected network through the tunnel\n{Log()}");
        Assert.Contains("dev cvpn0", Cmd.Run("ip", $"-n {_app} route get {Protected}").Stdout, StringComparison.Ordinal);

        // the Secret changes (key rotation: a new client key, known to both gateways): the sidecar follows
        using var rotated = WireGuardSecretKey.GeneratePrivateKey();
        foreach (var gw in _gateways)
        {
            Sh($"ip netns exec {gw} wg set {Wg(gw)} peer {rotated.GetPublicKey()} allowed-ips 10.77.0.2/32 peer {clientKey.GetPublicKey()} remove");
        }

        WriteSecret(configDir, rotated, gatewayKey);
        var followed = false;
        await Eventually.HoldsAsync(
            () => followed = _gateways.Any(gw => HandshakeSeen(gw, rotated.GetPublicKey().ToString())) && Ping(_app, Protected),
            "a handshake with the new client key and a ping through it", timeoutMs: 30_000);

        Assert.True(followed, $"the sidecar did not follow the new Secret\n{Log()}");
        Assert.Contains("changed: re-applied", Log(), StringComparison.Ordinal);

        // the gateway in use disappears: the sidecar moves to the other one
        var active = _gateways.Single(gw => HandshakeSeen(gw, rotated.GetPublicKey().ToString()));
        var standby = _gateways.Single(gw => gw != active);
        using var stopPinging = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var pings = new PingRecorder();
        var pinger = Task.Run(() => pings.Run(_app, Protected, stopPinging.Token), ct);
        await Eventually.HoldsAsync(() => pings.Successes >= 3, "three pings through the active gateway");
        var killedAt = pings.Count;
        Sh($"ip -n {active} link del {Wg(active)}");
        // traffic resumes: a reply after the first lost ping following the gateway's disappearance
        await Eventually.HoldsAsync(() => pings.ResumedAfter(killedAt), "ping replies through the standby gateway", timeoutMs: 25_000);
        await stopPinging.CancelAsync();
        await pinger;
        var series = pings.Snapshot();

        Assert.True(HandshakeSeen(standby, rotated.GetPublicKey().ToString()), $"no handshake with the standby gateway\n{Log()}");
        Assert.Contains("gateway failover", Log(), StringComparison.Ordinal);
        var gap = LongestGap(series);
        Assert.True(series.Last().Ok, $"traffic did not resume after failover\n{Log()}");
        _output.WriteLine($"failover gap: {gap.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s");
        // the figure for the notes: TestResults is where test.sh keeps its logs
        var results = Path.Combine(AppContext.BaseDirectory, "TestResults");
        Directory.CreateDirectory(results);
        await File.AppendAllTextAsync(Path.Combine(results, "sidecar-failover.txt"), $"{TimeProvider.System.GetUtcNow():O} failover gap {gap.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s\n", ct);
        Assert.True(gap < TimeSpan.FromSeconds(15), $"failover took {gap}");
    }

    private static void WriteSecret(string dir, WireGuardSecretKey client, WireGuardSecretKey gateway)
    {
        var text = $"""
            [Interface]
            PrivateKey = {client.ToBase64()}
            Address = 10.77.0.2/24

            [Peer]
            PublicKey = {gateway.GetPublicKey()}
            AllowedIPs = 10.77.0.0/24, 10.99.0.0/24
            Endpoint = {GatewayName}:51820
            PersistentKeepalive = 5
            """;
        // like the kubelet: the new content appears at once
        var tmp = Path.Combine(dir, ".wg0.conf.tmp");
        File.WriteAllText(tmp, text);
        File.Move(tmp, Path.Combine(dir, "wg0.conf"), overwrite: true);
    }

    /// <summary>The gateway's WireGuard interface: unique, since /var/run/wireguard is shared by every namespace.</summary>
    private static string Wg(string gatewayNamespace) => $"w{gatewayNamespace}";

    private static bool HandshakeSeen(string ns, string publicKey)
    {
        var (rc, stdout, _) = Cmd.Run("ip", $"netns exec {ns} wg show {Wg(ns)} latest-handshakes", check: false);
        return rc == 0 && stdout.Split('\n').Any(l => l.StartsWith(publicKey, StringComparison.Ordinal) && !l.TrimEnd().EndsWith("\t0", StringComparison.Ordinal));
    }

    /// <summary>Pings once after another (200 ms apart while answered), each result stamped on the monotonic clock.</summary>
    private sealed class PingRecorder
    {
        private readonly long _started = TimeProvider.System.GetTimestamp();
        private readonly List<(TimeSpan At, bool Ok)> _series = [];

        public int Count
        {
            get
            {
                lock (_series)
                {
                    return _series.Count;
                }
            }
        }

        public int Successes
        {
            get
            {
                lock (_series)
                {
                    return _series.Count(p => p.Ok);
                }
            }
        }

        /// <summary>True once, after index <paramref name="from"/>, a lost ping is followed by an answered one.</summary>
        public bool ResumedAfter(int from)
        {
            lock (_series)
            {
                var lost = _series.FindIndex(from, p => !p.Ok);
                return lost >= 0 && _series.FindIndex(lost, p => p.Ok) >= 0;
            }
        }

        public List<(TimeSpan At, bool Ok)> Snapshot()
        {
            lock (_series)
            {
                return [.. _series];
            }
        }

        public async Task Run(string ns, string address, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                var ok = Cmd.Run("ip", $"netns exec {ns} ping -c 1 -W 1 {address}", check: false).ExitCode == 0;
                lock (_series)
                {
                    _series.Add((TimeProvider.System.GetElapsedTime(_started), ok));
                }

                if (ok)
                {
                    // pace answered pings; a lost one already took its 1 s timeout
                    await Task.Delay(200, CancellationToken.None);
                }
            }
        }
    }

    private static TimeSpan LongestGap(List<(TimeSpan At, bool Ok)> series)
    {
        var gap = TimeSpan.Zero;
        TimeSpan? lastOk = null;
        foreach (var (at, ok) in series)
        {
            if (ok)
            {
                if (lastOk is { } l && at - l > gap)
                {
                    gap = at - l;
                }

                lastOk = at;
            }
        }

        return gap;
    }

    private void StartInNetns(string ns, string command)
    {
        var psi = new ProcessStartInfo("ip", $"netns exec {ns} {command}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_log) { _log.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_log) { _log.AppendLine(e.Data); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
    }

    private string Log()
    {
        lock (_log)
        {
            return _log.ToString();
        }
    }

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit(5000);
                }
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        foreach (var ns in _gateways.Append(_app))
        {
            Cmd.Run("ip", $"netns pids {ns}", check: false).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .ToList().ForEach(pid => Cmd.Run("kill", $"-9 {pid}", check: false));
            Cmd.Run("ip", $"netns del {ns}", check: false);
        }

        try
        {
            Directory.Delete($"/etc/netns/{_app}", recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }

        Directory.Delete(_dir, recursive: true);
    }
}
