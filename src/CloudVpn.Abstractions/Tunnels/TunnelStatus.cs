namespace CloudVpn.Tunnels;

/// <summary>Live state of a tunnel.</summary>
/// <param name="Name">Interface name.</param>
/// <param name="DriverName">Driver running the tunnel.</param>
/// <param name="IsUp">Whether the device exists and is up.</param>
/// <param name="ListenPort">The port actually bound.</param>
/// <param name="PublicKey">The device's public key (base64), when known.</param>
/// <param name="Mtu">The MTU in use.</param>
/// <param name="Peers">Per-peer state.</param>
public sealed record TunnelStatus(
    string Name,
    string DriverName,
    bool IsUp,
    int ListenPort,
    string? PublicKey,
    int Mtu,
    IReadOnlyList<PeerStatus> Peers);

/// <summary>Live state of one peer.</summary>
/// <param name="PublicKey">The peer's public key (base64).</param>
/// <param name="Endpoint">Current endpoint (after roaming), if any.</param>
/// <param name="LastHandshake">Time of the last completed handshake, null if none.</param>
/// <param name="ReceivedBytes">Bytes received from the peer.</param>
/// <param name="TransmittedBytes">Bytes sent to the peer.</param>
public sealed record PeerStatus(
    string PublicKey,
    string? Endpoint,
    DateTimeOffset? LastHandshake,
    long ReceivedBytes,
    long TransmittedBytes)
{
    /// <summary>The peer's name from its spec, when the driver knows it.</summary>
    public string? Name { get; init; }

    /// <summary>Allowed IPs in effect.</summary>
    public IReadOnlyList<System.Net.IPNetwork> AllowedIps { get; init; } = [];
}
