using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Uapi;

namespace CloudVpn.WireGuard.Tests.Uapi;

/// <summary>
/// TEST CODE, not a product feature: a small in-memory model of a WireGuard device that applies <c>set</c> requests
/// with wireguard-go's semantics (replace_peers, remove, update_only, zero keys clear, replace_allowed_ips, a prefix
/// belongs to one peer at a time, a peer with the device's own public key is ignored). It lets the UAPI server be
/// driven by the real <c>wg</c> tool without a TUN device or a protocol engine.
/// </summary>
internal sealed class InMemoryUapiDevice : IUapiDevice, IDisposable
{
    private readonly Lock _lock = new();
    private readonly List<ModelPeer> _peers = [];
    private WireGuardSecretKey? _privateKey;

    public int SetCount { get; private set; }

    public int GetCount { get; private set; }

    /// <summary>Makes the next <see cref="Set"/> throw this exception (a device-level failure such as a busy port).</summary>
    public Exception? FailNextSet { get; set; }

    public ushort ListenPort { get; private set; }

    public uint FirewallMark { get; private set; }

    public WireGuardPublicKey? PublicKey
    {
        get
        {
            lock (_lock)
            {
                return _privateKey is null ? null : _privateKey.GetPublicKey();
            }
        }
    }

    public IReadOnlyList<ModelPeer> Peers
    {
        get
        {
            lock (_lock)
            {
                return [.. _peers];
            }
        }
    }

    public ModelPeer? Peer(WireGuardPublicKey key) => Peers.FirstOrDefault(p => p.PublicKey == key);

    /// <summary>Records traffic and a handshake, as the data path would (so <c>wg show</c> has something to print).</summary>
    public void RecordTraffic(WireGuardPublicKey key, DateTimeOffset handshake, ulong received, ulong transmitted)
    {
        lock (_lock)
        {
            var peer = _peers.Single(p => p.PublicKey == key);
            peer.LastHandshake = handshake;
            peer.ReceivedBytes += received;
            peer.TransmittedBytes += transmitted;
        }
    }

    public UapiDeviceState Get()
    {
        lock (_lock)
        {
            GetCount++;
            return new UapiDeviceState
            {
                PrivateKey = _privateKey is null ? null : new WireGuardSecretKey(_privateKey.Bytes),
                ListenPort = ListenPort,
                FirewallMark = FirewallMark,
                Peers = _peers.Select(p => new UapiPeerState
                {
                    PublicKey = p.PublicKey,
                    PresharedKey = p.PresharedKey is null ? null : new WireGuardSecretKey(p.PresharedKey.Bytes),
                    Endpoint = p.Endpoint,
                    LastHandshake = p.LastHandshake,
                    ReceivedBytes = p.ReceivedBytes,
                    TransmittedBytes = p.TransmittedBytes,
                    PersistentKeepaliveInterval = p.PersistentKeepaliveInterval,
                    AllowedIps = [.. p.AllowedIps],
                }).ToArray(),
            };
        }
    }

    public void Set(UapiSetRequest request)
    {
        if (FailNextSet is { } failure)
        {
            FailNextSet = null;
            throw failure;
        }

        lock (_lock)
        {
            SetCount++;
            if (request.PrivateKey is not null)
            {
                _privateKey?.Dispose();
                _privateKey = request.PrivateKey.IsZero ? null : new WireGuardSecretKey(request.PrivateKey.Bytes);
                if (_privateKey is not null)
                {
                    // wireguard-go drops a peer whose key became our own.
                    var own = _privateKey.GetPublicKey();
                    _peers.RemoveAll(p => p.PublicKey == own);
                }
            }

            if (request.ListenPort is { } port)
            {
                ListenPort = port;
            }

            if (request.FirewallMark is { } mark)
            {
                FirewallMark = mark;
            }

            if (request.ReplacePeers)
            {
                _peers.Clear();
            }

            var ownKey = _privateKey?.GetPublicKey();
            foreach (var update in request.Peers)
            {
                if (update.PublicKey == ownKey)
                {
                    continue;
                }

                var peer = _peers.FirstOrDefault(p => p.PublicKey == update.PublicKey);
                if (update.Remove)
                {
                    if (peer is not null)
                    {
                        _peers.Remove(peer);
                    }

                    continue;
                }

                if (peer is null)
                {
                    if (update.UpdateOnly)
                    {
                        continue;
                    }

                    peer = new ModelPeer(update.PublicKey);
                    _peers.Add(peer);
                }

                if (update.PresharedKey is not null)
                {
                    peer.PresharedKey?.Dispose();
                    peer.PresharedKey = update.PresharedKey.IsZero ? null : new WireGuardSecretKey(update.PresharedKey.Bytes);
                }

                peer.Endpoint = update.Endpoint ?? peer.Endpoint;
                peer.PersistentKeepaliveInterval = update.PersistentKeepaliveInterval ?? peer.PersistentKeepaliveInterval;
                if (update.ReplaceAllowedIps)
                {
                    peer.AllowedIps.Clear();
                }

                foreach (var network in update.AllowedIps)
                {
                    foreach (var other in _peers)
                    {
                        other.AllowedIps.Remove(network);
                    }

                    peer.AllowedIps.Add(network);
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _privateKey?.Dispose();
            foreach (var peer in _peers)
            {
                peer.PresharedKey?.Dispose();
            }
        }
    }

    internal sealed class ModelPeer(WireGuardPublicKey publicKey)
    {
        public WireGuardPublicKey PublicKey { get; } = publicKey;

        public WireGuardSecretKey? PresharedKey { get; set; }

        public IPEndPoint? Endpoint { get; set; }

        public ushort PersistentKeepaliveInterval { get; set; }

        public List<IPNetwork> AllowedIps { get; } = [];

        public DateTimeOffset? LastHandshake { get; set; }

        public ulong ReceivedBytes { get; set; }

        public ulong TransmittedBytes { get; set; }
    }
}
