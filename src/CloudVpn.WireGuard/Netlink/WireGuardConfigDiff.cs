using System.Net;
using System.Security.Cryptography;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>The whole desired configuration of a kernel WireGuard interface (what <c>wg setconf</c> would set).</summary>
public sealed class WireGuardInterfaceConfig
{
    /// <summary>The private key; null leaves the device's key as it is.</summary>
    public WireGuardSecretKey? PrivateKey { get; set; }

    /// <summary>The listen port; null or 0 keeps the port the device has (0 on a new device: the kernel picks one).</summary>
    public ushort? ListenPort { get; set; }

    /// <summary>Firewall mark; null leaves it.</summary>
    public uint? FirewallMark { get; set; }

    /// <summary>Every peer the device should have; peers not listed are removed.</summary>
    public List<WireGuardInterfacePeer> Peers { get; } = [];
}

/// <summary>One desired peer.</summary>
public sealed class WireGuardInterfacePeer
{
    /// <summary>Creates the desired state of the peer with <paramref name="publicKey"/>.</summary>
    public WireGuardInterfacePeer(WireGuardPublicKey publicKey) => PublicKey = publicKey;

    /// <summary>The peer's public key.</summary>
    public WireGuardPublicKey PublicKey { get; }

    /// <summary>The preshared key; null for none.</summary>
    public WireGuardSecretKey? PresharedKey { get; set; }

    /// <summary>The endpoint; null leaves whatever the peer roamed to (peers that connect to us).</summary>
    public IPEndPoint? Endpoint { get; set; }

    /// <summary>Persistent keepalive in seconds; 0 is off.</summary>
    public ushort PersistentKeepaliveInterval { get; set; }

    /// <summary>Allowed IPs (order does not matter).</summary>
    public List<IPNetwork> AllowedIps { get; } = [];
}

/// <summary>What a diff found: the update to send and the peers it touches.</summary>
/// <param name="Update">The SET request; empty when nothing differs.</param>
/// <param name="DeviceChanged">The private key, port or mark changes.</param>
/// <param name="Added">Peers created.</param>
/// <param name="Updated">Existing peers changed.</param>
/// <param name="Removed">Peers removed.</param>
public sealed record WireGuardDiff(
    WireGuardDeviceUpdate Update,
    bool DeviceChanged,
    IReadOnlyList<WireGuardPublicKey> Added,
    IReadOnlyList<WireGuardPublicKey> Updated,
    IReadOnlyList<WireGuardPublicKey> Removed);

/// <summary>
/// Computes the smallest SET_DEVICE request that turns a device's current state into a desired configuration:
/// new peers added, changed fields of existing peers set, allowed IPs replaced only for peers whose set changed,
/// peers not wanted removed. Unchanged peers are not in the request at all.
/// </summary>
public static class WireGuardConfigDiff
{
    /// <summary>Computes the diff. The update refers to (does not copy) the keys of <paramref name="desired"/>.</summary>
    /// <exception cref="ArgumentException">Two desired peers share a public key, or a desired peer has no key.</exception>
    public static WireGuardDiff Compute(WireGuardDeviceState current, WireGuardInterfaceConfig desired)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(desired);
        var update = new WireGuardDeviceUpdate();
        var deviceChanged = false;

        if (desired.PrivateKey is { } key && !SameSecret(current.PrivateKey, key))
        {
            update.PrivateKey = key;
            deviceChanged = true;
        }

        if (desired.ListenPort is { } port and not 0 && port != current.ListenPort)
        {
            update.ListenPort = port;
            deviceChanged = true;
        }

        if (desired.FirewallMark is { } mark && mark != current.FirewallMark)
        {
            update.FirewallMark = mark;
            deviceChanged = true;
        }

        var existing = new Dictionary<WireGuardPublicKey, WireGuardPeerState>(current.Peers.Count);
        foreach (var peer in current.Peers)
        {
            existing[peer.PublicKey] = peer;
        }

        var wanted = new HashSet<WireGuardPublicKey>();
        var added = new List<WireGuardPublicKey>();
        var updated = new List<WireGuardPublicKey>();
        var removed = new List<WireGuardPublicKey>();
        for (var i = 0; i < desired.Peers.Count; i++)
        {
            var peer = desired.Peers[i];
            if (peer.PublicKey.IsEmpty)
            {
                throw new ArgumentException($"Peers[{i}].PublicKey: is empty.", nameof(desired));
            }

            if (!wanted.Add(peer.PublicKey))
            {
                throw new ArgumentException($"Peers[{i}].PublicKey: {peer.PublicKey} appears more than once.", nameof(desired));
            }

            if (!existing.TryGetValue(peer.PublicKey, out var have))
            {
                var create = new WireGuardPeerUpdate(peer.PublicKey)
                {
                    PresharedKey = peer.PresharedKey,
                    Endpoint = peer.Endpoint,
                    PersistentKeepaliveInterval = peer.PersistentKeepaliveInterval == 0 ? null : peer.PersistentKeepaliveInterval,
                    ReplaceAllowedIps = true,
                };
                create.AllowedIps.AddRange(peer.AllowedIps);
                update.Peers.Add(create);
                added.Add(peer.PublicKey);
                continue;
            }

            var change = new WireGuardPeerUpdate(peer.PublicKey) { UpdateOnly = true };
            var changed = false;
            if (peer.PresharedKey is { IsZero: false } psk ? !SameSecret(have.PresharedKey, psk) : have.HasPresharedKey)
            {
                change.PresharedKey = peer.PresharedKey ?? ZeroKey;
                changed = true;
            }

            if (peer.Endpoint is { } endpoint && !endpoint.Equals(have.Endpoint))
            {
                change.Endpoint = endpoint;
                changed = true;
            }

            if (peer.PersistentKeepaliveInterval != have.PersistentKeepaliveInterval)
            {
                change.PersistentKeepaliveInterval = peer.PersistentKeepaliveInterval;
                changed = true;
            }

            if (!SameSet(peer.AllowedIps, have.AllowedIps))
            {
                change.ReplaceAllowedIps = true;
                change.AllowedIps.AddRange(peer.AllowedIps);
                changed = true;
            }

            if (changed)
            {
                update.Peers.Add(change);
                updated.Add(peer.PublicKey);
            }
        }

        foreach (var peer in current.Peers)
        {
            if (!wanted.Contains(peer.PublicKey))
            {
                update.Peers.Add(new WireGuardPeerUpdate(peer.PublicKey) { Remove = true });
                removed.Add(peer.PublicKey);
            }
        }

        return new WireGuardDiff(update, deviceChanged, added, updated, removed);
    }

    private static readonly WireGuardSecretKey ZeroKey = new(new byte[WireGuardSecretKey.Length]);

    private static bool SameSecret(WireGuardSecretKey? have, WireGuardSecretKey want) =>
        have is not null && CryptographicOperations.FixedTimeEquals(have.Bytes, want.Bytes);

    private static bool SameSet(List<IPNetwork> want, List<IPNetwork> have)
    {
        // The kernel holds each prefix once; a desired list with duplicates still matches.
        var set = new HashSet<IPNetwork>(have);
        return set.Count == have.Count && set.SetEquals(want);
    }
}
