using System.Net;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// A parsed <c>set=1</c> request. Null means "unchanged". Apply in this order, as wireguard-go does: private key,
/// listen port, firewall mark, then (when <see cref="ReplacePeers"/>) remove every peer, then each
/// <see cref="Peers"/> entry in order. Owns its key copies and zeroes them on <see cref="Dispose"/>.
/// </summary>
public sealed class UapiSetRequest : IDisposable
{
    /// <summary>New private key; an all-zero key removes the device's private key.</summary>
    public WireGuardSecretKey? PrivateKey { get; init; }

    /// <summary>New listen port; 0 asks the device to pick a free one.</summary>
    public ushort? ListenPort { get; init; }

    /// <summary>New firewall mark; 0 removes it.</summary>
    public uint? FirewallMark { get; init; }

    /// <summary>Remove every existing peer before applying <see cref="Peers"/>.</summary>
    public bool ReplacePeers { get; init; }

    /// <summary>Peer sections, in request order (one public key may appear more than once).</summary>
    public IReadOnlyList<UapiPeerUpdate> Peers { get; init; } = [];

    /// <summary>Zeroes the private key and every preshared key.</summary>
    public void Dispose()
    {
        PrivateKey?.Dispose();
        foreach (var peer in Peers)
        {
            peer.PresharedKey?.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"UapiSetRequest {{ PrivateKey = {(PrivateKey is null ? "unchanged" : "<redacted>")}, ListenPort = {ListenPort?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unchanged"}, FirewallMark = {FirewallMark?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unchanged"}, ReplacePeers = {ReplacePeers}, Peers = {Peers.Count} }}";
}

/// <summary>
/// One peer section of a <c>set=1</c> request (from <c>public_key=</c> to the next one). Semantics as wg and
/// wireguard-go: <see cref="Remove"/> removes the peer and ignores the rest; otherwise the peer is created unless
/// <see cref="UpdateOnly"/> and absent; null fields are unchanged; <see cref="ReplaceAllowedIps"/> clears the allowed
/// IPs before <see cref="AllowedIps"/> are added, else they are appended.
/// </summary>
public sealed class UapiPeerUpdate
{
    /// <summary>The peer's public key.</summary>
    public required WireGuardPublicKey PublicKey { get; init; }

    /// <summary>Remove this peer (<c>remove=true</c>).</summary>
    public bool Remove { get; init; }

    /// <summary>Only change the peer if it exists, never create it (<c>update_only=true</c>).</summary>
    public bool UpdateOnly { get; init; }

    /// <summary>New preshared key; an all-zero key removes it.</summary>
    public WireGuardSecretKey? PresharedKey { get; init; }

    /// <summary>New endpoint.</summary>
    public IPEndPoint? Endpoint { get; init; }

    /// <summary>New persistent keepalive interval in seconds; 0 turns it off.</summary>
    public ushort? PersistentKeepaliveInterval { get; init; }

    /// <summary>Clear the allowed IPs before adding <see cref="AllowedIps"/> (<c>replace_allowed_ips=true</c>).</summary>
    public bool ReplaceAllowedIps { get; init; }

    /// <summary>Allowed IPs to add (host bits already cleared).</summary>
    public IReadOnlyList<IPNetwork> AllowedIps { get; init; } = [];

    /// <inheritdoc />
    public override string ToString() =>
        $"UapiPeerUpdate {{ PublicKey = {PublicKey}, Remove = {Remove}, UpdateOnly = {UpdateOnly}, PresharedKey = {(PresharedKey is null ? "unchanged" : "<redacted>")}, Endpoint = {Endpoint?.ToString() ?? "unchanged"}, ReplaceAllowedIps = {ReplaceAllowedIps}, AllowedIps = [{string.Join(", ", AllowedIps)}] }}";
}
