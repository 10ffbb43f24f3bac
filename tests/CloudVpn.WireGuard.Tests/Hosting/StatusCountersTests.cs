using CloudVpn.WireGuard.Hosting;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Hosting;

/// <summary>The userspace driver's status carries the engine's counters under the labels the gateway's metrics use.</summary>
public sealed class StatusCountersTests
{
    [Fact]
    public void Handshake_rejections_and_drops_are_reported_by_reason_in_snake_case()
    {
        var counters = new WireGuardEngineCounters();
        counters.Drop(WireGuardDropReason.InvalidMac1);
        counters.Drop(WireGuardDropReason.InvalidMac1);
        counters.Drop(WireGuardDropReason.HandshakeReplayed);
        counters.Drop(WireGuardDropReason.NoRoute);
        counters.Drop(WireGuardDropReason.ReplayedCounter);
        counters.Drop(WireGuardDropReason.ReplayedCounter);
        counters.Drop(WireGuardDropReason.ReplayedCounter);

        var (failures, drops) = UserspaceWireGuardTunnel.CountersByReason(counters);

        Assert.Equal(2, failures["invalid_mac"]);
        Assert.Equal(1, failures["replay"]);
        Assert.Equal(0, failures["timeout"]);
        Assert.Equal(1, drops["no_route"]);
        Assert.Equal(3, drops["replayed_counter"]);
        Assert.Equal(0, drops["invalid_inner_packet"]);
        // a handshake rejection is not also a drop, and every reason lands in exactly one of the two
        Assert.DoesNotContain("invalid_mac1", drops.Keys);
        Assert.Equal(Enum.GetValues<WireGuardDropReason>().Length + 1, failures.Count + drops.Count);
    }
}
