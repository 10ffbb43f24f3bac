using System.Diagnostics;
using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>
/// Our drop-in against the real wireguard-go, each in its own network namespace joined by a veth, both configured
/// with wg and ip exactly as an operator would.
/// </summary>
[Trait("Category", "Integration")]
public sealed class WireGuardGoInteropTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void We_initiate_then_ping_and_iperf_both_ways(bool presharedKey)
    {
        using var pair = new TunnelPair(Implementation.CloudVpn, Implementation.WireGuardGo, presharedKey);

        // Ours (left) has a packet to send first, so it initiates the handshake.
        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp);
        Assert.True(exit == 0, $"ping over the tunnel failed: {output}\n{pair.Left.Output}");
        Assert.NotEqual(0, TunnelPair.LatestHandshake(pair.Left));
        Assert.NotEqual(0, TunnelPair.LatestHandshake(pair.Right));

        AssertIperfBothWays(pair);
    }

    [Fact]
    public void WireGuardGo_initiates_with_psk_then_ping_and_iperf_both_ways()
    {
        // Right (ours) does not know the left's endpoint: it can only answer, so wireguard-go initiates.
        using var pair = new TunnelPair(Implementation.WireGuardGo, Implementation.CloudVpn, presharedKey: true, rightKnowsLeftEndpoint: false);

        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp);
        Assert.True(exit == 0, $"ping over the tunnel failed: {output}\n{pair.Right.Output}");
        Assert.Contains($"{pair.Net.LeftIp}:51820", pair.Right.Wg($"show {pair.Right.Name} endpoints"), StringComparison.Ordinal);

        // and the other way, now that our side learned the endpoint from the handshake
        (exit, output) = TunnelPair.Ping(pair.Net.Right, TunnelPair.LeftTunnelIp);
        Assert.True(exit == 0, $"ping back failed: {output}");
        AssertIperfBothWays(pair);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_data_path_allocates_nothing_from_the_first_bulk_packet_on(bool oursOnBothEnds)
    {
        // against wireguard-go, and against ours (TSO super-packets split, GSO sends, GRO runs coalesced on both ends)
        using var pair = new TunnelPair(Implementation.CloudVpn, oursOnBothEnds ? Implementation.CloudVpn : Implementation.WireGuardGo);
        var ours = oursOnBothEnds ? new[] { pair.Left, pair.Right } : [pair.Left];

        // the only warm-up: one ping (handshake, first packet each way); everything the bulk path needs from then on
        // (GRO/GSO runs, coalescing, the crypto workers' first batches) must be made by then or allocate nothing
        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp, count: 1);
        Assert.True(exit == 0, output);
        var (rx0, tx0) = TunnelPair.Transfer(pair.Left, pair.RightPublic); // `wg show` outside the measured window
        var before = ours.Select(side => side.ReadStats(Environment.TickCount64)).ToArray();
        AssertIperfBothWays(pair);
        var after = ours.Select(side => side.ReadStats(Environment.TickCount64)).ToArray();
        var (rx1, tx1) = TunnelPair.Transfer(pair.Left, pair.RightPublic);

        var bytes = rx1 - rx0 + tx1 - tx0;
        Assert.True(bytes > 5_000_000, $"only {bytes} bytes: too few packets to tell");
        for (var i = 0; i < ours.Length; i++)
        {
            var packets = after[i]["data_path_packets"] - before[i]["data_path_packets"];
            var dataPath = after[i]["data_path_allocated_bytes"] - before[i]["data_path_allocated_bytes"];
            var writer = after[i]["stats_writer_allocated_bytes"] - before[i]["stats_writer_allocated_bytes"];
            var rest = after[i]["allocated_bytes"] - before[i]["allocated_bytes"] - writer;
            Assert.True(packets > 3000, $"{ours[i].Name}: the data path counted {packets} packets only");

            // every data path thread (TUN reader, UDP reader, crypto workers) allocated nothing at all
            var perThread = string.Join(", ", after[i].Keys.Where(k => k.StartsWith("data_path_allocated_bytes.", StringComparison.Ordinal))
                .Select(k => $"{k}: {after[i][k] - before[i].GetValueOrDefault(k)}"));
            Assert.True(dataPath == 0, $"{ours[i].Name}: the data path allocated {dataPath} bytes for {packets} packets ({perThread})");

            // the rest of the process, besides writing the stats file: usually 0 B too (the timers, the housekeeping);
            // a thread pool thread started meanwhile costs a little, anything per packet would be megabytes
            Assert.True(rest < 32 << 10, $"{ours[i].Name}: the process allocated {rest} bytes for {packets} packets besides the data path and the stats file");
        }
    }

    [Fact]
    public void With_every_data_path_technique_switched_off_it_still_interoperates()
    {
        var off = new Dictionary<string, string>
        {
            ["CLOUDVPN_WG_BATCHING"] = "0", ["CLOUDVPN_WG_TUN_OFFLOADS"] = "0", ["CLOUDVPN_WG_TUN_COALESCE"] = "0",
            ["CLOUDVPN_WG_UDP_MMSG"] = "0", ["CLOUDVPN_WG_UDP_GSO"] = "0", ["CLOUDVPN_WG_UDP_GRO"] = "0",
            ["CLOUDVPN_WG_CRYPTO_WORKERS"] = "0",
        };
        using var pair = new TunnelPair(Implementation.CloudVpn, Implementation.WireGuardGo, leftEnvironment: off);
        Assert.Contains("data path: batching False, crypto workers 0, TUN offloads None, UDP None", pair.Left.Output, StringComparison.Ordinal);
        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp);
        Assert.True(exit == 0, output);
        AssertIperfBothWays(pair);
    }

    [Fact]
    public void Between_two_of_ours_tcp_travels_as_super_packets_split_and_coalesced()
    {
        using var pair = new TunnelPair(Implementation.CloudVpn, Implementation.CloudVpn);
        Assert.Contains("data path: batching True", pair.Left.Output, StringComparison.Ordinal);
        Assert.Contains("TUN offloads Checksum, Tso4, Tso6", pair.Left.Output, StringComparison.Ordinal);
        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp);
        Assert.True(exit == 0, output);
        AssertIperfBothWays(pair);

        // the sending side read TSO super-packets from its TUN and split them; the receiving side coalesced segments
        // back into super-packets on its TUN: both directions ran, so both daemons did both
        foreach (var side in new[] { pair.Left, pair.Right })
        {
            var stats = side.ReadStats(Environment.TickCount64);
            Assert.True(stats["tun_super_packets_read"] > 0, $"{side.Name} read no super-packet");
            Assert.True(stats["tun_super_packets_written"] > 0, $"{side.Name} wrote no coalesced packet");
        }
    }

    [Fact]
    public void IPv6_underlay_and_IPv6_inside_the_tunnel()
    {
        using var pair = new TunnelPair(Implementation.CloudVpn, Implementation.WireGuardGo, ipv6Underlay: true);

        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp6);
        Assert.True(exit == 0, $"ping6 over an IPv6 underlay failed: {output}\n{pair.Left.Output}");
        (exit, output) = TunnelPair.Ping(pair.Net.Right, TunnelPair.LeftTunnelIp);
        Assert.True(exit == 0, $"IPv4 inside, IPv6 outside failed: {output}");
        Assert.Contains("[2001:db8::1]:51820", pair.Right.Wg($"show {pair.Right.Name} endpoints"), StringComparison.Ordinal);
        Assert.Contains("[2001:db8::2]:51820", pair.Left.Wg($"show {pair.Left.Name} endpoints"), StringComparison.Ordinal);
    }

    [Fact]
    public void Roaming_client_address_changes_and_our_gateway_follows()
    {
        // wireguard-go is the client (left, sends keepalives), ours the gateway (right) with no configured endpoint.
        using var pair = new TunnelPair(Implementation.WireGuardGo, Implementation.CloudVpn, rightKnowsLeftEndpoint: false);
        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp);
        Assert.True(exit == 0, output);
        Assert.Contains($"{pair.Net.LeftIp}:51820", pair.Right.Wg($"show {pair.Right.Name} endpoints"), StringComparison.Ordinal);

        // The client moves to another underlay address (and port); its next packet comes from there.
        // (delete first: removing a primary address also removes its secondaries)
        pair.Left.Ip("addr del 192.0.2.1/24 dev veth0");
        pair.Left.Ip("addr add 192.0.2.77/24 dev veth0");
        pair.Left.Wg($"set {pair.Left.Name} listen-port 40001");
        (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp);
        Assert.True(exit == 0, $"ping after the move failed: {output}");
        Assert.Contains("192.0.2.77:40001", pair.Right.Wg($"show {pair.Right.Name} endpoints"), StringComparison.Ordinal);

        // The gateway's own traffic now goes to the new endpoint.
        (exit, output) = TunnelPair.Ping(pair.Net.Right, TunnelPair.LeftTunnelIp);
        Assert.True(exit == 0, $"gateway could not reach the roamed client: {output}");
    }

    [Fact]
    public void Many_peers_on_our_device_each_reach_their_own_allowed_ips()
    {
        const int Peers = 4;
        using var net = new NetnsPair("wm");
        using var fleet = GatewayFleet.Start(net, Peers);
        var (gateway, clients, publics, gatewayPublic) = (fleet.Gateway, fleet.Clients, fleet.ClientPublics, fleet.GatewayPublic);
        for (var k = 1; k <= Peers; k++)
        {
            // client k -> gateway first: the gateway has no endpoints configured and learns them from the handshakes
            var (exit, output) = TunnelPair.Ping(net.Right, $"10.70.{k}.1", count: 2, extra: $"-I 10.70.{k}.2");
            Assert.True(exit == 0, $"client {k} -> gateway: {output}\n{gateway.Output}");
        }

        for (var k = 1; k <= Peers; k++)
        {
            // gateway -> client k: cryptokey routing picks peer k by the destination
            var (exit, output) = TunnelPair.Ping(net.Left, $"10.70.{k}.2", count: 2, extra: $"-I 10.70.{k}.1");
            Assert.True(exit == 0, $"gateway -> client {k}: {output}\n{gateway.Output}");
        }

        for (var k = 1; k <= Peers; k++)
        {
            var (rx, tx) = TunnelPair.Transfer(gateway, publics[k - 1]);
            Assert.True(rx > 0 && tx > 0, $"peer {k} carried no traffic (rx {rx}, tx {tx})");
        }

        // A packet from client 1 claiming an address of client 2's range is dropped by our source check: had it been
        // accepted, the echo reply to 10.70.2.50 would have gone out to peer 2.
        var before = TunnelPair.Transfer(gateway, publics[1]);
        clients[0].Wg($"set {clients[0].Name} peer {gatewayPublic} allowed-ips 10.70.1.1/32,10.70.9.9/32");
        clients[0].Ip($"addr add 10.70.2.50/32 dev {clients[0].Name}");
        clients[0].Ip($"route add 10.70.9.9/32 dev {clients[0].Name}");
        gateway.Ip($"addr add 10.70.9.9/32 dev {gateway.Name}");
        var spoofed = NetnsPair.Exec(net.Right, "ping -c 2 -i 0.2 -W 1 -I 10.70.2.50 10.70.9.9", check: false);
        Assert.NotEqual(0, spoofed.ExitCode);
        Assert.Equal(before.Tx, TunnelPair.Transfer(gateway, publics[1]).Tx);
    }

    private static void AssertIperfBothWays(TunnelPair pair)
    {
        var leftToRight = TunnelPair.Iperf(pair.Net.Left, pair.Net.Right, TunnelPair.RightTunnelIp);
        var rightToLeft = TunnelPair.Iperf(pair.Net.Right, pair.Net.Left, TunnelPair.LeftTunnelIp);
        Assert.True(leftToRight > 1e6, $"left -> right carried {leftToRight / 1e6:F1} Mbit/s");
        Assert.True(rightToLeft > 1e6, $"right -> left carried {rightToLeft / 1e6:F1} Mbit/s");
    }
}

/// <summary>The drop-in behaves as the wireguard-go command does around its life cycle.</summary>
[Trait("Category", "Integration")]
public sealed class DropInLifecycleTests
{
    [Fact]
    public void Sigterm_exits_cleanly_and_removes_socket_and_interface()
    {
        using var net = new NetnsPair("wd");
        using var wg = WireGuardProcess.Start(Implementation.CloudVpn, net.Left);
        Assert.Contains("mtu 1420", wg.Ip($"link show {wg.Name}"), StringComparison.Ordinal);

        Assert.True(wg.Terminate(TimeSpan.FromSeconds(10)), "did not exit on SIGTERM");
        Assert.Equal(0, wg.ExitCode);
        Assert.False(File.Exists(wg.SocketPath));
        Assert.NotEqual(0, NetnsPair.Exec(net.Left, $"ip link show {wg.Name}", check: false).ExitCode);
    }

    [Fact]
    public void Removing_the_socket_file_stops_it()
    {
        using var net = new NetnsPair("wd");
        using var wg = WireGuardProcess.Start(Implementation.CloudVpn, net.Left);
        File.Delete(wg.SocketPath);
        var sw = Stopwatch.StartNew();
        while (!wg.HasExited && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(50);
        }

        Assert.True(wg.HasExited, "still running after its socket was removed");
        Assert.Equal(0, wg.ExitCode);
    }

    [Fact]
    public void Deleting_the_interface_stops_it()
    {
        using var net = new NetnsPair("wd");
        using var wg = WireGuardProcess.Start(Implementation.CloudVpn, net.Left);
        wg.Ip($"link del {wg.Name}");
        var sw = Stopwatch.StartNew();
        while (!wg.HasExited && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(50);
        }

        Assert.True(wg.HasExited, "still running after its interface was deleted");
        Assert.False(File.Exists(wg.SocketPath));
    }

    [Fact]
    public void Without_foreground_it_detaches_and_the_parent_returns_once_the_socket_exists()
    {
        using var net = new NetnsPair("wd");
        WireGuardProcess.RequirePrerequisites(Implementation.CloudVpn);
        var name = WireGuardProcess.UniqueName("cvb");
        var socket = $"/var/run/wireguard/{name}.sock";
        try
        {
            var (exit, stdout, stderr) = NetnsPair.Exec(net.Left, $"{WireGuardProcess.DropInPath} {name}", check: false, timeoutMs: 20_000);
            Assert.True(exit == 0, stdout + stderr);
            Assert.True(File.Exists(socket));
            Assert.Contains("mtu 1420", NetnsPair.Exec(net.Left, $"ip link show {name}").Stdout, StringComparison.Ordinal);
            Assert.Contains("listening port", NetnsPair.Exec(net.Left, $"wg show {name}").Stdout, StringComparison.Ordinal);

            // the detached daemon stops when its socket goes, taking the interface with it
            File.Delete(socket);
            var sw = Stopwatch.StartNew();
            while (NetnsPair.Exec(net.Left, $"ip link show {name}", check: false).ExitCode == 0 && sw.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(100);
            }

            Assert.NotEqual(0, NetnsPair.Exec(net.Left, $"ip link show {name}", check: false).ExitCode);
        }
        finally
        {
            File.Delete(socket);
        }
    }

    [Fact]
    public void Bad_arguments_print_usage_and_fail()
    {
        WireGuardProcess.RequirePrerequisites(Implementation.CloudVpn);
        var (exit, stdout, stderr) = Cmd.Run(WireGuardProcess.DropInPath, "-x", check: false);
        Assert.Equal(1, exit);
        Assert.Contains("Usage:", stdout + stderr, StringComparison.Ordinal);
        Assert.Contains("[-f/--foreground] INTERFACE-NAME", stdout + stderr, StringComparison.Ordinal);
    }
}
