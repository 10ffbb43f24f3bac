using System.Diagnostics;
using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>
/// Ten Debian wireguard-go peers initiate to our drop-in at the same moment: the initiations wait in our UDP socket
/// while the daemon is stopped (SIGSTOP), so one receive batch takes them all and the engine answers them as a burst,
/// its X25519 in AVX-512 lanes. Every peer gets its session and its ping through.
/// </summary>
[Trait("Category", "Integration")]
public sealed class HandshakeBurstInteropTests
{
    private const int Peers = 10;

    [Fact]
    public async Task Initiations_from_many_wireguard_go_peers_at_once_are_answered_as_one_burst()
    {
        using var net = new NetnsPair("wb");
        using var fleet = GatewayFleet.Start(net, Peers);
        var (gateway, clients, gatewayPublic) = (fleet.Gateway, fleet.Clients, fleet.GatewayPublic);
        // our daemon stops reading; every client pings, which makes it send an initiation that waits in our socket
        Cmd.Run("kill", FormattableString.Invariant($"-STOP {gateway.ProcessId}"));
        Process pings;
        try
        {
            var script = string.Join(" ", Enumerable.Range(1, Peers).Select(k => $"(ping -c 1 -W 10 -I 10.70.{k}.2 10.70.{k}.1 >/dev/null 2>&1; echo \"peer {k} exit $?\") &")) + " wait";
            pings = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", net.Right, "sh", "-c", script]) { RedirectStandardOutput = true, UseShellExecute = false })!;
            await Eventually.HoldsAsync(
                () => clients.All(c => TunnelPair.Transfer(c, gatewayPublic).Tx > 0),
                "every client to have sent its initiation",
                explain: () => string.Join(", ", clients.Select(c => $"{c.Name} tx {TunnelPair.Transfer(c, gatewayPublic).Tx}")));
        }
        finally
        {
            Cmd.Run("kill", FormattableString.Invariant($"-CONT {gateway.ProcessId}"));
        }

        var results = await pings.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await pings.WaitForExitAsync(TestContext.Current.CancellationToken);
        for (var k = 1; k <= Peers; k++)
        {
            Assert.Contains($"peer {k} exit 0", results, StringComparison.Ordinal);
        }

        // the initiations were answered together: at least one group of eight ran in lanes (on a CPU with AVX-512;
        // without it the burst is answered through libsodium and no group runs)
        var stats = gateway.ReadStats(notBefore: Environment.TickCount64);
        if (CloudVpn.WireGuard.Protocol.Curve25519Batch.IsAccelerated)
        {
            Assert.True(stats["initiation_lane_groups"] >= 1, $"no lane group ran: {string.Join(", ", stats)}\n{gateway.Output}");
        }
        else
        {
            Assert.Equal(0, stats["initiation_lane_groups"]);
        }

        var handshakes = gateway.Wg($"show {gateway.Name} latest-handshakes").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Peers, handshakes.Count(line => line.Split('\t')[1] != "0"));
    }
}
