#if CLOUDVPN_GATEWAY_E2E
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CloudVpn.Samples.Gateway;
using CloudVpn.Testing;

namespace CloudVpn.Samples.Tests;

/// <summary>
/// The sample gateway as a process in one network namespace with the real WireGuard driver, and a real wireguard-go
/// client in another, configured with the client configuration the gateway printed on its first start.
/// </summary>
[Trait("Category", "Integration")]
public sealed class GatewayEndToEndTests : IDisposable
{
    private static int s_counter;
    private readonly TempDir _dir = new();
    private readonly List<Process> _processes = [];

    private readonly List<string> _sockets = [];

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try
            {
                if (!p.HasExited)
                {
                    // SIGTERM first so both sides remove their devices and UAPI sockets, then make sure
                    Cmd.Run("kill", $"-TERM {p.Id}", check: false);
                    if (!p.WaitForExit(10_000))
                    {
                        p.Kill(entireProcessTree: true);
                        p.WaitForExit(10_000);
                    }
                }
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        foreach (var socket in _sockets)
        {
            File.Delete(socket);
        }

        _dir.Dispose();
    }

    [Fact]
    public async Task A_wireguard_go_client_connects_with_the_printed_configuration()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wireguard-go");
        Prerequisite.RequireCommand("wg");
        Prerequisite.RequireCommand("curl");
        Prerequisite.RequireCommand("ping");
        Assert.True(File.Exists(TestPaths.GatewayDll), $"build the sample first: {TestPaths.GatewayDll}");

        using var net = new NetnsPair("cvgw");
        var id = $"{Environment.ProcessId % 1000}{Interlocked.Increment(ref s_counter)}";
        var gatewayIf = $"cvgw{id}";
        var clientIf = $"cvgc{id}";
        var dataDir = Path.Combine(_dir.Path, "data");
        _sockets.AddRange([$"/var/run/wireguard/{gatewayIf}.sock", $"/var/run/wireguard/{clientIf}.sock"]);

        // 1. first start: key created, first peer printed; not ready before any handshake (RequireHandshake)
        var gateway = StartGateway(net.Left, dataDir, gatewayIf, net.LeftIp);
        await WaitForAsync(() => gateway.Stderr.Contains(GatewayConsole.ClientConfigEndMarker, StringComparison.Ordinal), "the gateway to print the client configuration", gateway);
        var publicKey = PublicKeyFrom(gateway.Stderr);
        var config = ClientConfigFrom(gateway.Stderr);
        var fields = PeersTests.ParseWgQuick(config);
        Assert.Equal($"{net.LeftIp}:51820", fields["Peer.Endpoint"]);
        Assert.Equal("503", Curl(net.Left, "-s -o /dev/null -w %{http_code} http://127.0.0.1:9586/readyz"));
        Assert.Equal(0, MetricValue(Curl(net.Left, "-s http://127.0.0.1:9586/metrics"), "cloudvpn_active_peers"));

        // 2. the client: wireguard-go with the printed file (wg takes the [Peer] part and the key; ip sets the address)
        var client = Start("ip", $"netns exec {net.Right} wireguard-go -f {clientIf}");
        await WaitForAsync(() => NetnsPair.Exec(net.Right, $"ip link show {clientIf}", check: false).ExitCode == 0, "wireguard-go to create its device", client);
        var wgConf = Path.Combine(_dir.Path, "client.conf");
        await File.WriteAllTextAsync(wgConf, string.Join('\n', config.Split('\n').Where(l => !l.StartsWith("Address", StringComparison.Ordinal) && !l.StartsWith("MTU", StringComparison.Ordinal) && !l.StartsWith("DNS", StringComparison.Ordinal))));
        NetnsPair.Exec(net.Right, $"wg setconf {clientIf} {wgConf}");
        NetnsPair.Exec(net.Right, $"ip addr add {fields["Interface.Address"]} dev {clientIf}");
        NetnsPair.Exec(net.Right, $"ip link set {clientIf} mtu {fields["Interface.MTU"]} up");
        NetnsPair.Exec(net.Right, $"ip route add {fields["Peer.AllowedIPs"]} dev {clientIf}");

        // 3. traffic flows both ways through the tunnel
        // (-w: the first echo waits for the handshake; exit 0 means all 3 replies came back within the deadline)
        var ping = NetnsPair.Exec(net.Right, "ping -c 3 -i 0.2 -w 15 10.8.0.1", check: false, timeoutMs: 30_000);
        Assert.True(ping.ExitCode == 0, $"ping through the tunnel failed: {ping.Stdout}{ping.Stderr}\ngateway log:\n{gateway.Stdout}");

        // 4. metrics moved, readiness turned true, the connection event is in the JSON log
        await WaitForAsync(() => MetricValue(Curl(net.Left, "-s http://127.0.0.1:9586/metrics"), "cloudvpn_active_peers") == 1, "peers_active 1", gateway);
        // the gateway samples the driver's status periodically: the counters catch up with the pings within a poll
        await WaitForAsync(() => MetricValue(Curl(net.Left, "-s http://127.0.0.1:9586/metrics"), "cloudvpn_peer_transmit_bytes_total{peer=\"client1\"}") >= 3 * 84, "transmit bytes for three echo replies", gateway);
        var metrics = Curl(net.Left, "-s http://127.0.0.1:9586/metrics");
        Assert.True(MetricValue(metrics, "cloudvpn_peer_receive_bytes_total{peer=\"client1\"}") >= 3 * 84, metrics);
        Assert.True(MetricValue(metrics, "cloudvpn_peer_transmit_bytes_total{peer=\"client1\"}") >= 3 * 84, metrics);
        Assert.True(MetricValue(metrics, "cloudvpn_handshakes_total{result=\"success\"}") >= 1, metrics);
        Assert.Contains("driver=\"wireguard-", metrics, StringComparison.Ordinal);
        // the selection is logged with its reason (kernel module when present, else userspace and why)
        Assert.Contains("\"Category\":\"CloudVpn.Tunnels.TunnelDriverSelector\"", gateway.Stdout, StringComparison.Ordinal);
        await WaitForAsync(() => Curl(net.Left, "-s -o /dev/null -w %{http_code} http://127.0.0.1:9586/readyz") == "200", "readyz 200 after the handshake", gateway);
        await WaitForAsync(() => Events(gateway.Stdout).Any(e => e.Event == ConnectionEvents.PeerConnectedEvent && e.Peer == "client1"), "the peer_connected event", gateway);
        Assert.Contains($"latest handshake", NetnsPair.Exec(net.Right, $"wg show {clientIf}").Stdout, StringComparison.Ordinal);

        // 5. the client roams (new source port): the gateway follows and logs endpoint_changed with both endpoints
        NetnsPair.Exec(net.Right, $"wg set {clientIf} listen-port 40404");
        var again2 = NetnsPair.Exec(net.Right, "ping -c 2 -i 0.2 -w 10 10.8.0.1", check: false, timeoutMs: 20_000);
        Assert.True(again2.ExitCode == 0, again2.Stdout + again2.Stderr);
        await WaitForAsync(() => Events(gateway.Stdout).Any(e => e.Event == ConnectionEvents.EndpointChangedEvent && e.Peer == "client1"), "the endpoint_changed event", gateway);
        Assert.Contains($"{net.RightIp}:40404", NetnsPair.Exec(net.Left, $"wg show {gatewayIf} endpoints").Stdout, StringComparison.Ordinal);

        // 6. --add-peer while the gateway runs: the new client's configuration on stdout, the running device gets the peer
        var added = Cmd.Run("dotnet", $"{TestPaths.GatewayDll} --data-dir {dataDir} --public-endpoint {net.LeftIp}:51820 --add-peer laptop", check: false);
        Assert.True(added.ExitCode == 0, added.Stderr);
        var laptop = PeersTests.ParseWgQuick(added.Stdout);
        Assert.Equal("10.8.0.3/32", laptop["Interface.Address"]);
        Assert.Equal(publicKey, laptop["Peer.PublicKey"]);
        await WaitForAsync(() => NetnsPair.Exec(net.Left, $"wg show {gatewayIf} peers").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length == 2, "the running gateway to add the new peer", gateway);

        // 7. a restart keeps the public key (and prints no new first peer)
        Stop(gateway);
        var again = StartGateway(net.Left, dataDir, gatewayIf, net.LeftIp);
        await WaitForAsync(() => again.Stderr.Contains("public key :", StringComparison.Ordinal), "the restarted gateway's banner", again);
        Assert.Equal(publicKey, PublicKeyFrom(again.Stderr));
        Assert.DoesNotContain(GatewayConsole.ClientConfigBeginMarker, again.Stderr, StringComparison.Ordinal);
        Stop(again);
    }

    private sealed class RunningProcess(Process process)
    {
        private readonly StringBuilder _stdout = new();
        private readonly StringBuilder _stderr = new();

        public Process Process { get; } = process;

        public string Stdout
        {
            get
            {
                lock (_stdout)
                {
                    return _stdout.ToString();
                }
            }
        }

        public string Stderr
        {
            get
            {
                lock (_stderr)
                {
                    return _stderr.ToString();
                }
            }
        }

        public void Attach()
        {
            Process.OutputDataReceived += (_, e) => { lock (_stdout) { _stdout.AppendLine(e.Data); } };
            Process.ErrorDataReceived += (_, e) => { lock (_stderr) { _stderr.AppendLine(e.Data); } };
            Process.BeginOutputReadLine();
            Process.BeginErrorReadLine();
        }
    }

    private RunningProcess StartGateway(string ns, string dataDir, string iface, string ip) =>
        Start("ip", $"netns exec {ns} dotnet {TestPaths.GatewayDll} --data-dir {dataDir} --interface {iface} --listen-port 51820 --public-endpoint {ip}:51820 --http 127.0.0.1:9586 --Gateway:Readiness:RequireHandshake=true --Gateway:StatusInterval=00:00:00.250");

    private RunningProcess Start(string file, string arguments)
    {
        var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
        _processes.Add(process);
        var running = new RunningProcess(process);
        running.Attach();
        return running;
    }

    private static void Stop(RunningProcess gateway)
    {
        // SIGTERM, as a container runtime stops it: the host shuts down and closes the tunnel
        Cmd.Run("kill", $"-TERM {gateway.Process.Id}", check: false);
        Assert.True(gateway.Process.WaitForExit(20_000), "the gateway did not stop on SIGTERM");
        Assert.Equal(0, gateway.Process.ExitCode);
    }

    private static async Task WaitForAsync(Func<bool> condition, string what, RunningProcess watched, int timeoutMs = 30_000)
    {
        string Output() => $"stdout:\n{watched.Stdout}\nstderr:\n{watched.Stderr}";
        await Eventually.HoldsAsync(() => watched.Process.HasExited || condition(), what, timeoutMs, Output);
        if (watched.Process.HasExited && !condition())
        {
            Assert.Fail($"process exited ({watched.Process.ExitCode}) waiting for {what}\n{Output()}");
        }
    }

    private static string Curl(string ns, string arguments) => NetnsPair.Exec(ns, $"curl --max-time 5 {arguments}", check: false).Stdout.Trim();

    private static double? MetricValue(string metrics, string nameAndLabels) =>
        metrics.Split('\n').Where(l => l.StartsWith(nameAndLabels + " ", StringComparison.Ordinal))
            .Select(l => (double?)double.Parse(l[(nameAndLabels.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture))
            .FirstOrDefault();

    private static string PublicKeyFrom(string banner)
    {
        var line = banner.Split('\n').First(l => l.Contains("public key :", StringComparison.Ordinal));
        return line.Split(':', 2)[1].Trim().Split(' ')[0];
    }

    private static string ClientConfigFrom(string banner)
    {
        var start = banner.IndexOf(GatewayConsole.ClientConfigBeginMarker, StringComparison.Ordinal) + GatewayConsole.ClientConfigBeginMarker.Length;
        return banner[start..banner.IndexOf(GatewayConsole.ClientConfigEndMarker, StringComparison.Ordinal)].Trim() + "\n";
    }

    private static IEnumerable<(string? Event, string? Peer)> Events(string stdout)
    {
        foreach (var line in stdout.Split('\n'))
        {
            if (!line.StartsWith('{'))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.GetProperty("Category").GetString() == ConnectionEvents.Category)
            {
                var state = doc.RootElement.GetProperty("State");
                yield return (state.GetProperty("Event").GetString(), state.TryGetProperty("Peer", out var p) ? p.GetString() : null);
            }
        }
    }
}
#endif
