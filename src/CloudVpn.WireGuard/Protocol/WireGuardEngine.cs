using System.Net;
using CloudVpn.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// The WireGuard protocol engine: Noise IKpsk2 handshakes, transport encryption, timers, cookies and cryptokey
/// routing for one interface. It owns no socket and no TUN device: the caller feeds it packets and it answers through
/// an <see cref="IWireGuardTransport"/>. Thread-safe: TUN readers, UDP readers, the configuration API and the timers
/// call it concurrently.
/// </summary>
public sealed class WireGuardEngine : IDisposable
{
    private readonly IWireGuardTransport _transport;
    private readonly TimeProvider _time;
    private readonly ILogger<WireGuardEngine> _logger;
    private readonly Lock _configLock = new();
    private readonly Dictionary<WireGuardPublicKey, WireGuardPeerSnapshot> _peers = [];
    private WireGuardSecretKey? _privateKey;

    /// <summary>Creates an engine that sends through <paramref name="transport"/> and keeps time with <paramref name="time"/>.</summary>
    public WireGuardEngine(IWireGuardTransport transport, TimeProvider time, ILogger<WireGuardEngine> logger)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        _transport = transport;
        _time = time;
        _logger = logger;
    }

    /// <summary>Counters: drops by reason, handshakes by outcome.</summary>
    public WireGuardEngineCounters Counters { get; } = new();

    /// <summary>
    /// The interface's private key (a copy is kept; the getter returns a new copy the caller disposes). Setting it
    /// re-derives the public key and clears sessions and handshakes, as wg does.
    /// </summary>
    public WireGuardSecretKey? PrivateKey
    {
        get
        {
            lock (_configLock)
            {
                return _privateKey is null ? null : new WireGuardSecretKey(_privateKey.Bytes);
            }
        }

        set
        {
            lock (_configLock)
            {
                _privateKey?.Dispose();
                _privateKey = value is null ? null : new WireGuardSecretKey(value.Bytes);
            }
        }
    }

    /// <summary>The interface's public key, derived from <see cref="PrivateKey"/>; <c>default</c> when none is set.</summary>
    public WireGuardPublicKey PublicKey { get; private set; }

    /// <summary>The UDP listen port (informational: the device binds the socket).</summary>
    public ushort ListenPort { get; set; }

    /// <summary>The firewall mark of outgoing datagrams (informational: the device sets it on the socket).</summary>
    public uint FirewallMark { get; set; }

    /// <summary>MTU of the tunnel interface: padding never takes a packet past it.</summary>
    public int Mtu { get; set; } = 1420;

    /// <summary>Handles one IP packet read from the TUN device: routes it by destination, encrypts and sends it (or queues it and starts a handshake).</summary>
    public void HandleTunPacket(ReadOnlySpan<byte> ipPacket)
    {
        // TODO(wg-engine): cryptokey routing and encryption.
        Counters.Drop(WireGuardDropReason.NoRoute);
    }

    /// <summary>Handles one UDP datagram. Never throws: a malformed or unauthenticated datagram is dropped and counted.</summary>
    public void HandleDatagram(ReadOnlySpan<byte> datagram, IPEndPoint source)
    {
        // TODO(wg-engine): handshake and transport messages.
        Counters.Drop(WireGuardDropReason.UnknownType);
    }

    /// <summary>Adds or updates the peer named by <see cref="WireGuardPeerConfig.PublicKey"/>.</summary>
    public void SetPeer(WireGuardPeerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        lock (_configLock)
        {
            _peers[config.PublicKey] = new WireGuardPeerSnapshot(config.PublicKey, null, config.Endpoint, config.AllowedIps ?? [], null, 0, 0, config.PersistentKeepalive ?? 0);
        }
    }

    /// <summary>Removes a peer, its sessions and its allowed IPs; false when it was not there.</summary>
    public bool RemovePeer(WireGuardPublicKey publicKey)
    {
        lock (_configLock)
        {
            return _peers.Remove(publicKey);
        }
    }

    /// <summary>Removes every peer (<c>replace_peers=true</c>).</summary>
    public void RemoveAllPeers()
    {
        lock (_configLock)
        {
            _peers.Clear();
        }
    }

    /// <summary>A snapshot of every peer.</summary>
    public IReadOnlyList<WireGuardPeerSnapshot> GetPeers()
    {
        lock (_configLock)
        {
            return [.. _peers.Values];
        }
    }

    /// <summary>Stops the timers and erases all key material.</summary>
    public void Dispose()
    {
        lock (_configLock)
        {
            _privateKey?.Dispose();
            _privateKey = null;
            _peers.Clear();
        }

        _ = _transport;
        _ = _time;
        _ = _logger;
    }
}
