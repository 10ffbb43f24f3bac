using System.Net;
using CloudVpn.KeyStores;

namespace CloudVpn.Tunnels;

/// <summary>Desired state of a tunnel: the device and its peers.</summary>
/// <param name="Device">The local device.</param>
/// <param name="Peers">The peers, keyed by public key (order does not matter).</param>
public sealed record TunnelSpec(DeviceSpec Device, IReadOnlyList<PeerSpec> Peers)
{
    /// <summary>Driver-specific settings (for example <c>openvpn.proto=tcp</c>); drivers ignore keys they do not own.</summary>
    public IReadOnlyDictionary<string, string> DriverSettings { get; init; } = new Dictionary<string, string>();
}

/// <summary>The local tunnel device.</summary>
/// <param name="Name">Interface name (at most 15 characters on Linux).</param>
/// <param name="PrivateKey">Where the device's private key is kept; the key itself never appears in a spec.</param>
/// <param name="ListenPort">UDP (or TCP) port to listen on; 0 picks a free port.</param>
/// <param name="Addresses">Tunnel addresses of the device with their prefix, for example 10.8.0.1/24.</param>
/// <param name="Mtu">Device MTU; 1420 suits WireGuard over a 1500-byte underlay for IPv4 and IPv6.</param>
public sealed record DeviceSpec(
    string Name,
    KeyReference PrivateKey,
    int ListenPort,
    IReadOnlyList<IPNetwork> Addresses,
    int Mtu = DeviceSpec.DefaultMtu)
{
    /// <summary>The default MTU: 1500 minus the largest WireGuard overhead (IPv6 80 bytes).</summary>
    public const int DefaultMtu = 1420;

    /// <summary>Firewall mark for the tunnel's own packets (0: none).</summary>
    public uint FirewallMark { get; init; }

    /// <summary>
    /// A second private key the device also accepts during the overlap of a rotation of its key (null: none): peers
    /// may handshake under either key while the device's own handshakes use <see cref="PrivateKey"/>. Drivers that
    /// cannot answer under two keys (the kernel's WireGuard) ignore it and say so in their log.
    /// </summary>
    public KeyReference? AdditionalPrivateKey { get; init; }

    /// <summary>
    /// Interface addresses with their host part (10.8.0.1/24). <see cref="Addresses"/> holds <see cref="IPNetwork"/>
    /// values, which drop host bits, so it can only carry /32 and /128 addresses exactly; use this list for the rest.
    /// Drivers apply the union of both lists.
    /// </summary>
    public IReadOnlyList<InterfaceAddress> InterfaceAddresses { get; init; } = [];
}

/// <summary>A remote peer.</summary>
/// <param name="PublicKey">The peer's public key, base64 as <c>wg pubkey</c> prints it.</param>
/// <param name="AllowedIps">Prefixes routed to this peer and accepted from it.</param>
public sealed record PeerSpec(string PublicKey, IReadOnlyList<IPNetwork> AllowedIps)
{
    /// <summary>A short, stable, human name (used as a metric label); defaults to a prefix of the key.</summary>
    public string? Name { get; init; }

    /// <summary>Where the peer's preshared key is kept, if it has one.</summary>
    public KeyReference? PresharedKey { get; init; }

    /// <summary>Known endpoint as <c>host:port</c> or <c>[v6]:port</c>; null for peers that connect to us.</summary>
    public string? Endpoint { get; init; }

    /// <summary>Persistent keepalive interval; null or zero disables it.</summary>
    public TimeSpan? PersistentKeepalive { get; init; }

    /// <summary>The metric/log label for this peer.</summary>
    public string DisplayName => Name ?? (PublicKey.Length > 8 ? PublicKey[..8] : PublicKey);
}
