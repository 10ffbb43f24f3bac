using System.Net;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>A WireGuard interface as the kernel reports it (WG_CMD_GET_DEVICE, split replies coalesced).</summary>
public sealed class WireGuardDeviceState : IDisposable
{
    /// <summary>Interface name.</summary>
    public string Name { get; internal set; } = string.Empty;

    /// <summary>Interface index.</summary>
    public int Index { get; internal set; }

    /// <summary>The private key, when one is set (zeroed on <see cref="Dispose"/>).</summary>
    public WireGuardSecretKey? PrivateKey { get; internal set; }

    /// <summary>The public key derived from the private key, when one is set.</summary>
    public WireGuardPublicKey? PublicKey { get; internal set; }

    /// <summary>The UDP port in use (the kernel picks one when configured with 0).</summary>
    public ushort ListenPort { get; internal set; }

    /// <summary>Firewall mark of outgoing packets (0: none).</summary>
    public uint FirewallMark { get; internal set; }

    /// <summary>Peers in kernel order.</summary>
    public List<WireGuardPeerState> Peers { get; } = [];

    /// <inheritdoc />
    public void Dispose()
    {
        PrivateKey?.Dispose();
        foreach (var peer in Peers)
        {
            peer.PresharedKey?.Dispose();
        }
    }
}

/// <summary>One peer as the kernel reports it.</summary>
public sealed class WireGuardPeerState
{
    /// <summary>Creates the state of the peer with <paramref name="publicKey"/>.</summary>
    public WireGuardPeerState(WireGuardPublicKey publicKey) => PublicKey = publicKey;

    /// <summary>The peer's public key.</summary>
    public WireGuardPublicKey PublicKey { get; }

    /// <summary>The preshared key; all zero when the peer has none.</summary>
    public WireGuardSecretKey? PresharedKey { get; internal set; }

    /// <summary>Current endpoint, if known.</summary>
    public IPEndPoint? Endpoint { get; internal set; }

    /// <summary>Persistent keepalive in seconds (0: off).</summary>
    public ushort PersistentKeepaliveInterval { get; internal set; }

    /// <summary>Time of the last completed handshake; null when none happened.</summary>
    public DateTimeOffset? LastHandshake { get; internal set; }

    /// <summary>Bytes received from the peer.</summary>
    public ulong ReceivedBytes { get; internal set; }

    /// <summary>Bytes sent to the peer.</summary>
    public ulong TransmittedBytes { get; internal set; }

    /// <summary>Protocol version (1).</summary>
    public uint ProtocolVersion { get; internal set; }

    /// <summary>Allowed IPs, in kernel order.</summary>
    public List<IPNetwork> AllowedIps { get; } = [];

    /// <summary>True when a non-zero preshared key is set.</summary>
    public bool HasPresharedKey => PresharedKey is { IsZero: false };
}

/// <summary>
/// A WG_CMD_SET_DEVICE request: device fields left null are not touched; peers are added, changed or removed
/// one by one. Large requests are split over several netlink messages by the encoder.
/// </summary>
public sealed class WireGuardDeviceUpdate
{
    /// <summary>New private key (an all-zero key removes it); null leaves it.</summary>
    public WireGuardSecretKey? PrivateKey { get; set; }

    /// <summary>New listen port (0: random); null leaves it.</summary>
    public ushort? ListenPort { get; set; }

    /// <summary>New firewall mark (0: none); null leaves it.</summary>
    public uint? FirewallMark { get; set; }

    /// <summary>WGDEVICE_F_REPLACE_PEERS: remove every peer not in <see cref="Peers"/>.</summary>
    public bool ReplacePeers { get; set; }

    /// <summary>Peer changes.</summary>
    public List<WireGuardPeerUpdate> Peers { get; } = [];

    /// <summary>True when the update changes nothing (no message needs to be sent).</summary>
    public bool IsEmpty => PrivateKey is null && ListenPort is null && FirewallMark is null && !ReplacePeers && Peers.Count == 0;
}

/// <summary>One peer in a <see cref="WireGuardDeviceUpdate"/>.</summary>
public sealed class WireGuardPeerUpdate
{
    /// <summary>Creates a change for the peer with <paramref name="publicKey"/>.</summary>
    public WireGuardPeerUpdate(WireGuardPublicKey publicKey)
    {
        if (publicKey.IsEmpty)
        {
            throw new ArgumentException("A peer update needs the peer's public key.", nameof(publicKey));
        }

        PublicKey = publicKey;
    }

    /// <summary>The peer's public key.</summary>
    public WireGuardPublicKey PublicKey { get; }

    /// <summary>WGPEER_F_REMOVE_ME: remove the peer (other fields are ignored).</summary>
    public bool Remove { get; set; }

    /// <summary>WGPEER_F_UPDATE_ONLY: change the peer only if it exists; never create it.</summary>
    public bool UpdateOnly { get; set; }

    /// <summary>New preshared key (all zero removes it); null leaves it.</summary>
    public WireGuardSecretKey? PresharedKey { get; set; }

    /// <summary>New endpoint; null leaves it.</summary>
    public IPEndPoint? Endpoint { get; set; }

    /// <summary>New persistent keepalive in seconds (0: off); null leaves it.</summary>
    public ushort? PersistentKeepaliveInterval { get; set; }

    /// <summary>WGPEER_F_REPLACE_ALLOWEDIPS: <see cref="AllowedIps"/> replaces the peer's list instead of adding to it.</summary>
    public bool ReplaceAllowedIps { get; set; }

    /// <summary>Allowed IPs to add (or the whole list with <see cref="ReplaceAllowedIps"/>).</summary>
    public List<IPNetwork> AllowedIps { get; } = [];

    /// <summary>Allowed IPs to remove one by one (WGALLOWEDIP_F_REMOVE_ME; Linux 6.16 and later only).</summary>
    public List<IPNetwork> RemoveAllowedIps { get; } = [];
}
