using System.Globalization;
using System.Text.RegularExpressions;
using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>
/// The one real-time test: a new handshake after Rekey-After-Time (120 s) while a ping runs through the tunnel without
/// losing a packet. It waits about 130 s because neither side's clock can be faked: wireguard-go is a real process.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class RekeyInteropTests
{
    [Fact]
    public void We_rekey_after_120_seconds_with_traffic_unbroken()
    {
        using var pair = new TunnelPair(Implementation.CloudVpn, Implementation.WireGuardGo, presharedKey: true);
        var (exit, output) = TunnelPair.Ping(pair.Net.Left, TunnelPair.RightTunnelIp, count: 1);
        Assert.True(exit == 0, output);
        var first = TunnelPair.LatestHandshake(pair.Left);
        Assert.NotEqual(0, first);

        // 260 pings at 0.5 s: 130 s of steady traffic from our side, the initiator, which must rekey on send at 120 s.
        var ping = NetnsPair.Exec(pair.Net.Left, $"ping -c 260 -i 0.5 -W 3 {TunnelPair.RightTunnelIp}", check: false, timeoutMs: 200_000);
        var latest = TunnelPair.LatestHandshake(pair.Left);
        var theirs = TunnelPair.LatestHandshake(pair.Right);

        Assert.True(latest - first >= 120, $"no new handshake after 120 s (first {first}, latest {latest})");
        Assert.True(latest - first < 130, $"the rekey came late: {latest - first} s after the first handshake");
        Assert.Equal(latest, theirs, tolerance: 1);
        var stats = Summary().Match(ping.Stdout);
        Assert.True(stats.Success, ping.Stdout + ping.Stderr);
        var sent = int.Parse(stats.Groups[1].Value, CultureInfo.InvariantCulture);
        var received = int.Parse(stats.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.Equal(260, sent);
        Assert.True(received == sent, $"{sent - received} of {sent} pings lost across the rekey");
    }

    [GeneratedRegex(@"(\d+) packets transmitted, (\d+) received")]
    private static partial Regex Summary();
}
