using System.Net;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Adds or updates one peer of a <see cref="WireGuardEngine"/>, with the semantics of a <c>wg set</c> peer section:
/// a <c>null</c> field leaves the current value unchanged.
/// </summary>
public sealed class WireGuardPeerConfig
{
    /// <summary>The peer's static public key: identifies the peer.</summary>
    public required WireGuardPublicKey PublicKey { get; init; }

    /// <summary>
    /// The preshared key (copied by the engine; the caller keeps ownership). <c>null</c> = unchanged; an all-zero key
    /// removes it, as <c>preshared_key=000…</c> does in the userspace API.
    /// </summary>
    public WireGuardSecretKey? PresharedKey { get; init; }

    /// <summary>The peer's UDP endpoint (copied). <c>null</c> = unchanged.</summary>
    public IPEndPoint? Endpoint { get; init; }

    /// <summary>Persistent keepalive interval in seconds; 0 turns it off; <c>null</c> = unchanged.</summary>
    public ushort? PersistentKeepalive { get; init; }

    /// <summary>Allowed IPs to add (or to set, with <see cref="ReplaceAllowedIps"/>); <c>null</c> = none added.</summary>
    public IReadOnlyList<IPNetwork>? AllowedIps { get; init; }

    /// <summary>Replace the peer's allowed IPs with <see cref="AllowedIps"/> (an empty or null list clears them) instead of appending.</summary>
    public bool ReplaceAllowedIps { get; init; }

    /// <summary>Only update an existing peer; do nothing when the peer is unknown (<c>update_only=true</c>).</summary>
    public bool UpdateOnly { get; init; }
}
