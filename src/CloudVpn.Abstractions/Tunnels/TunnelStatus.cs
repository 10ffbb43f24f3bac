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
    IReadOnlyList<PeerStatus> Peers)
{
    /// <summary>
    /// Handshakes this device completed since it was opened (as initiator or responder), when the driver counts them;
    /// null when it does not (consumers then count advances of <see cref="PeerStatus.LastHandshake"/>).
    /// </summary>
    public long? HandshakesCompleted { get; init; }

    /// <summary>
    /// Handshake messages rejected since the device was opened, by reason (for example <c>invalid_mac</c>,
    /// <c>unknown_peer</c>, <c>replay</c>, <c>timeout</c>); empty when the driver does not count them.
    /// Values only grow while the device stays open.
    /// </summary>
    public IReadOnlyDictionary<string, long> HandshakeFailures { get; init; } = new Dictionary<string, long>();

    /// <summary>
    /// Packets dropped since the device was opened, by reason (for example <c>no_route</c>, <c>replay</c>,
    /// <c>decryption_failed</c>, <c>malformed</c>); empty when the driver does not count them.
    /// </summary>
    public IReadOnlyDictionary<string, long> Drops { get; init; } = new Dictionary<string, long>();
}

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

    /// <summary>Packets received from the peer (decrypted data packets), when the driver counts them.</summary>
    public long? ReceivedPackets { get; init; }

    /// <summary>Packets sent to the peer (encrypted data packets), when the driver counts them.</summary>
    public long? TransmittedPackets { get; init; }
}
