namespace CloudVpn.WireGuard.Tests.Rotation;

/// <summary>
/// The rotation-over-a-tunnel tests measure loss and gaps: they run alone, after the parallel tests, so that no other
/// iperf3 or ping competes for the two cores.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RotationOverTunnelCollection
{
    public const string Name = "rotation over a real tunnel";
}
