using System.Net;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>What the engine knows about one peer at one moment (for <c>wg show</c>, the userspace API and metrics).</summary>
/// <param name="PublicKey">The peer's static public key.</param>
/// <param name="PresharedKey">A copy of the preshared key, or <c>null</c> when none is set; the receiver owns and disposes it.</param>
/// <param name="Endpoint">The current endpoint (a copy), updated by roaming; <c>null</c> when unknown.</param>
/// <param name="AllowedIps">The peer's allowed IPs, in the order they were added.</param>
/// <param name="LastHandshake">When the last handshake completed; <c>null</c> when never.</param>
/// <param name="RxBytes">Bytes received from the peer (whole datagrams, as wg counts them).</param>
/// <param name="TxBytes">Bytes sent to the peer (whole datagrams).</param>
/// <param name="PersistentKeepalive">Persistent keepalive interval in seconds (0 = off).</param>
public sealed record WireGuardPeerSnapshot(
    WireGuardPublicKey PublicKey,
    WireGuardSecretKey? PresharedKey,
    IPEndPoint? Endpoint,
    IReadOnlyList<IPNetwork> AllowedIps,
    DateTimeOffset? LastHandshake,
    long RxBytes,
    long TxBytes,
    ushort PersistentKeepalive)
{
    /// <summary>Datagrams received from the peer (handshake and transport, as <see cref="RxBytes"/> counts them).</summary>
    public long RxPackets { get; init; }

    /// <summary>Datagrams sent to the peer.</summary>
    public long TxPackets { get; init; }

    /// <summary>True when a (non-zero) preshared key is set.</summary>
    public bool HasPresharedKey => PresharedKey is not null;
}
