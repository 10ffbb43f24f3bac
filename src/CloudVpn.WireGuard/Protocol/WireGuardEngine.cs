using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using CloudVpn.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// The WireGuard protocol engine: Noise IKpsk2 handshakes, transport encryption, timers, cookies and cryptokey
/// routing for one interface. It owns no socket and no TUN device: the caller feeds it packets and it answers through
/// an <see cref="IWireGuardTransport"/>. Thread-safe: TUN readers, UDP readers, the configuration API and the timers
/// call it concurrently; no engine-wide lock is held across cryptography, and the data path allocates nothing per
/// packet (pooled buffers, NSec span overloads).
/// </summary>
public sealed partial class WireGuardEngine : IDisposable
{
    private readonly IWireGuardTransport _transport;
    private readonly ILogger<WireGuardEngine> _logger;
    private readonly long _startTimestamp;
    private readonly Lock _configLock = new();
    private readonly ConcurrentDictionary<WireGuardPublicKey, WireGuardPeer> _peers = new();
    private readonly ConcurrentDictionary<uint, object> _indices = new();
    private readonly AllowedIpsTable<WireGuardPeer> _allowedIps = new();
    private readonly HandshakeRateLimiter _rateLimiter = new();
    private readonly Lock _loadLock = new();
    private Identities? _identities;
    private long _loadWindowStart;
    private int _loadWindowCount;
    private long _underLoadUntil;
    private long _peerSequence;
    private volatile bool _disposed;

    /// <summary>Creates an engine that sends through <paramref name="transport"/> and keeps time with <paramref name="time"/>.</summary>
    public WireGuardEngine(IWireGuardTransport transport, TimeProvider time, ILogger<WireGuardEngine> logger)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        _transport = transport;
        Time = time;
        _logger = logger;
        _startTimestamp = time.GetTimestamp();
        Timers = new PeerTimerScheduler(time, () => NowTicks, ReportError);
    }

    /// <summary>Counters: drops by reason, handshakes by outcome.</summary>
    public WireGuardEngineCounters Counters { get; } = new();

    /// <summary>
    /// Managed bytes allocated on the data path threads: each TUN/UDP reader (or crypto worker) registers here on its
    /// own thread and samples after each batch; readable at any time (the steady-state goal is zero).
    /// </summary>
    public DataPathAllocations DataPathAllocations { get; } = new();

    /// <summary>
    /// The interface's private key (the engine keeps its own copy; the getter returns a new copy the caller disposes).
    /// Setting it re-derives the public key, removes a peer whose key equals the new public key, recomputes the
    /// per-peer static secrets and stops sending on sessions derived under another key so that new handshakes follow,
    /// as wg does. The <see cref="AdditionalPrivateKey"/> is kept (unless it equals the new key).
    /// </summary>
    public WireGuardSecretKey? PrivateKey
    {
        get
        {
            var identity = Volatile.Read(ref _identities)?.Current;
            return identity is null ? null : new WireGuardSecretKey(identity.PrivateKey);
        }

        set
        {
            lock (_configLock)
            {
                using var additional = AdditionalPrivateKey;
                SetPrivateKeys(value, additional);
            }
        }
    }

    /// <summary>
    /// A second private key the engine also answers handshakes under, for the overlap of a rotation of the interface's
    /// key: an initiation (or cookie) addressed to either public key is answered under the key it was addressed to,
    /// while the engine's own initiations always use <see cref="PrivateKey"/>. Null (the default) when there is none.
    /// The getter returns a new copy the caller disposes. The kernel's WireGuard has no equivalent.
    /// </summary>
    public WireGuardSecretKey? AdditionalPrivateKey
    {
        get
        {
            var identity = Volatile.Read(ref _identities)?.Additional;
            return identity is null ? null : new WireGuardSecretKey(identity.PrivateKey);
        }

        set
        {
            lock (_configLock)
            {
                using var current = PrivateKey;
                SetPrivateKeys(current, value);
            }
        }
    }

    /// <summary>The public key of <see cref="AdditionalPrivateKey"/>; <c>default</c> when none is set.</summary>
    public WireGuardPublicKey AdditionalPublicKey { get; private set; }

    /// <summary>
    /// Sets <see cref="PrivateKey"/> and <see cref="AdditionalPrivateKey"/> in one step, as a key rotation needs:
    /// publish (<c>old, new</c>), switch (<c>new, old</c>), retire (<c>new, null</c>). A key that stays (in either
    /// role) keeps its state (cookie secret, per-peer static secrets), and sessions derived under the new
    /// <paramref name="privateKey"/> go on; sessions derived under any other key stop sending (the next packet
    /// starts a handshake under <paramref name="privateKey"/>). An additional key equal to the private key is ignored.
    /// </summary>
    public void SetPrivateKeys(WireGuardSecretKey? privateKey, WireGuardSecretKey? additionalPrivateKey)
    {
        lock (_configLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var old = _identities;
            var current = Reuse(privateKey, old);
            var additional = current is null ? null : Reuse(additionalPrivateKey, old);
            if (ReferenceEquals(additional, current) ||
                (additional is not null && current is not null && CryptographicOperations.FixedTimeEquals(additional.PrivateKey, current.PrivateKey)))
            {
                if (!ReferenceEquals(additional, current) && !ReferenceEquals(additional, old?.Current) && !ReferenceEquals(additional, old?.Additional))
                {
                    additional?.Dispose();
                }

                additional = null;
            }

            if (ReferenceEquals(current, old?.Current) && ReferenceEquals(additional, old?.Additional))
            {
                return;
            }

            foreach (var identity in (ReadOnlySpan<StaticIdentity?>)[current, additional])
            {
                if (identity is not null && _peers.ContainsKey(new WireGuardPublicKey(identity.PublicKey)))
                {
                    // as wg: a peer with the interface's own key cannot exist
                    RemovePeerLocked(new WireGuardPublicKey(identity.PublicKey));
                }
            }

            var identities = current is null && additional is null ? null : new Identities(current, additional);
            Volatile.Write(ref _identities, identities);
            PublicKey = current is null ? default : new WireGuardPublicKey(current.PublicKey);
            AdditionalPublicKey = additional is null ? default : new WireGuardPublicKey(additional.PublicKey);
            var currentChanged = !ReferenceEquals(current, old?.Current);
            foreach (var peer in _peers.Values)
            {
                lock (peer.HandshakeLock)
                {
                    if (currentChanged)
                    {
                        // our pending initiation was made under the previous key: start afresh (and at once)
                        ReleaseHandshakeIndex(peer);
                        peer.Handshake.Clear();
                        peer.Handshake.LastSentInitiation = long.MinValue;
                    }

                    peer.Handshake.SetIdentity(current, additional);
                }

                peer.ExpireKeypairsNotDerivedUnder(current);
            }

            foreach (var identity in (ReadOnlySpan<StaticIdentity?>)[old?.Current, old?.Additional])
            {
                if (identity is not null && !ReferenceEquals(identity, current) && !ReferenceEquals(identity, additional))
                {
                    identity.Dispose();
                }
            }
        }

        static StaticIdentity? Reuse(WireGuardSecretKey? key, Identities? old)
        {
            if (key is null || key.IsZero)
            {
                return null;
            }

            foreach (var identity in (ReadOnlySpan<StaticIdentity?>)[old?.Current, old?.Additional])
            {
                if (identity is not null && CryptographicOperations.FixedTimeEquals(identity.PrivateKey, key.Bytes))
                {
                    return identity;
                }
            }

            return new StaticIdentity(key.Bytes);
        }
    }

    /// <summary>The interface's public key, derived from <see cref="PrivateKey"/>; <c>default</c> when none is set.</summary>
    public WireGuardPublicKey PublicKey { get; private set; }

    /// <summary>The UDP listen port (informational: the device binds the socket).</summary>
    public ushort ListenPort { get; set; }

    /// <summary>The firewall mark of outgoing datagrams (informational: the device sets it on the socket).</summary>
    public uint FirewallMark { get; set; }

    /// <summary>MTU of the tunnel interface: padding never takes a packet past it (default 1420).</summary>
    public int Mtu { get; set; } = 1420;

    /// <summary>
    /// Handshake messages per second above which the engine counts as under load and answers handshakes that lack a
    /// valid mac2 with a cookie reply (and applies the per-source rate limit). Default 1000; 0 = always under load.
    /// </summary>
    public int HandshakeLoadThreshold { get; set; } = 1000;

    internal TimeProvider Time { get; }

    /// <summary>The one timer of all peers.</summary>
    internal PeerTimerScheduler Timers { get; }

    /// <summary>The peer with <paramref name="publicKey"/>, for tests and diagnostics.</summary>
    internal WireGuardPeer? FindPeer(WireGuardPublicKey publicKey) => _peers.GetValueOrDefault(publicKey);

    /// <summary>Monotonic engine time in ticks (offset by a day so that 0 can mean "never").</summary>
    internal long NowTicks => Time.GetElapsedTime(_startTimestamp).Ticks + TimeSpan.TicksPerDay;

    // ================================================================================================ configuration

    /// <summary>Adds or updates the peer named by <see cref="WireGuardPeerConfig.PublicKey"/>.</summary>
    /// <remarks>A peer with the interface's own public key is ignored, as wg does.</remarks>
    /// <exception cref="ArgumentException">The public key is empty.</exception>
    public void SetPeer(WireGuardPeerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.PublicKey.IsEmpty)
        {
            throw new ArgumentException("WireGuardPeerConfig.PublicKey is empty.", nameof(config));
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_configLock)
        {
            var identities = _identities;
            if (identities is not null && (config.PublicKey == PublicKey || (identities.Additional is not null && config.PublicKey == AdditionalPublicKey)))
            {
                // wg silently ignores a peer with the interface's own key.
                return;
            }

            if (!_peers.TryGetValue(config.PublicKey, out var peer))
            {
                if (config.UpdateOnly)
                {
                    return;
                }

                peer = new WireGuardPeer(this, config.PublicKey) { Sequence = ++_peerSequence };
                lock (peer.HandshakeLock)
                {
                    peer.Handshake.SetIdentity(identities?.Current, identities?.Additional);
                }

                _peers[config.PublicKey] = peer;
            }

            if (config.PresharedKey is { } psk)
            {
                lock (peer.HandshakeLock)
                {
                    psk.Bytes.CopyTo(peer.Handshake.PresharedKey);
                }
            }

            if (config.Endpoint is { } endpoint)
            {
                peer.SetEndpoint(endpoint);
            }

            if (config.ReplaceAllowedIps)
            {
                _allowedIps.RemovePeer(peer);
            }

            foreach (var network in config.AllowedIps ?? [])
            {
                _allowedIps.Insert(network, peer);
            }

            if (config.PersistentKeepalive is { } keepalive && keepalive != peer.PersistentKeepalive)
            {
                peer.PersistentKeepalive = keepalive;
                peer.TimerPersistentKeepaliveChanged(NowTicks);
            }
        }
    }

    /// <summary>Removes a peer, its sessions and its allowed IPs; false when it was not there.</summary>
    public bool RemovePeer(WireGuardPublicKey publicKey)
    {
        lock (_configLock)
        {
            return RemovePeerLocked(publicKey);
        }
    }

    /// <summary>Removes every peer (<c>replace_peers=true</c>).</summary>
    public void RemoveAllPeers()
    {
        lock (_configLock)
        {
            foreach (var key in _peers.Keys)
            {
                RemovePeerLocked(key);
            }
        }
    }

    /// <summary>A snapshot of every peer, in the order the peers were added.</summary>
    public IReadOnlyList<WireGuardPeerSnapshot> GetPeers()
    {
        var result = new List<WireGuardPeerSnapshot>();
        foreach (var peer in _peers.Values.OrderBy(p => p.Sequence))
        {
            WireGuardSecretKey? psk;
            lock (peer.HandshakeLock)
            {
                psk = peer.Handshake.PresharedKey.ContainsAnyExcept((byte)0) ? new WireGuardSecretKey(peer.Handshake.PresharedKey) : null;
            }

            result.Add(new WireGuardPeerSnapshot(peer.PublicKey, psk, peer.Endpoint, _allowedIps.PrefixesOf(peer), peer.LastHandshake,
                peer.RxBytes, peer.TxBytes, peer.PersistentKeepalive)
            {
                RxPackets = peer.RxPackets,
                TxPackets = peer.TxPackets,
            });
        }

        return result;
    }

    private bool RemovePeerLocked(WireGuardPublicKey publicKey)
    {
        if (!_peers.TryRemove(publicKey, out var peer))
        {
            return false;
        }

        peer.IsRemoved = true;
        _allowedIps.RemovePeer(peer);
        peer.StopTimers();
        Timers.PeerRemoved();
        lock (peer.HandshakeLock)
        {
            ReleaseHandshakeIndex(peer);
        }

        peer.Dispose();
        return true;
    }

    // ================================================================================================ TUN -> UDP

    /// <summary>
    /// Handles one IP packet read from the TUN device: routes it by destination (longest-prefix match over the
    /// peers' allowed IPs), encrypts and sends it, or queues it and starts a handshake. Never throws for bad input.
    /// </summary>
    public void HandleTunPacket(ReadOnlySpan<byte> ipPacket)
    {
        if (_disposed)
        {
            return;
        }

        try
        {
            if (Route(ipPacket) is { } peer)
            {
                SendData(peer, ipPacket);
            }
        }
#pragma warning disable CA1031 // The data path must survive a failing transport; the error is counted and logged.
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            Counters.Drop(WireGuardDropReason.InternalError);
            ReportError(e);
        }
    }

    /// <summary>The peer whose allowed IPs hold the packet's destination; null (and counted) when none or not an IP packet.</summary>
    private WireGuardPeer? Route(ReadOnlySpan<byte> ipPacket)
    {
        if (!InnerPacket.TryGetDestination(ipPacket, out var destination))
        {
            Counters.Drop(WireGuardDropReason.InvalidTunPacket);
            return null;
        }

        var peer = _allowedIps.Lookup(destination);
        if (peer is null)
        {
            Counters.Drop(WireGuardDropReason.NoRoute);
        }

        return peer;
    }

    private void SendData(WireGuardPeer peer, ReadOnlySpan<byte> packet)
    {
        if (peer.HasStagedPackets)
        {
            peer.Stage(packet);
            SendStaged(peer);
            return;
        }

        if (TrySendWithCurrent(peer, packet))
        {
            return;
        }

        peer.Stage(packet);
        SendHandshakeInitiation(peer, isRetry: false);
    }

    private bool TrySendWithCurrent(WireGuardPeer peer, ReadOnlySpan<byte> packet)
    {
        var keypair = peer.Current;
        var now = NowTicks;
        if (keypair is null || keypair.SendExhausted || now - keypair.CreatedTicks >= WireGuardTimers.RejectAfterTime.Ticks || !keypair.TryAcquire())
        {
            return false;
        }

        try
        {
            var counter = keypair.NextSendCounter();
            if (counter >= WireGuardTimers.RejectAfterMessages)
            {
                return false;
            }

            SendTransport(peer, keypair, counter, packet, now);

            // keep the key fresh: the initiator rekeys after Rekey-After-Time; either side after Rekey-After-Messages
            if (counter > WireGuardTimers.RekeyAfterMessages ||
                (keypair.IsInitiator && now - keypair.CreatedTicks > WireGuardTimers.RekeyAfterTime.Ticks))
            {
                SendHandshakeInitiation(peer, isRetry: false);
            }

            return true;
        }
        finally
        {
            keypair.Release();
        }
    }

    private void SendStaged(WireGuardPeer peer)
    {
        if (!peer.FlushStaged(this))
        {
            // no usable session: the packets stay queued (in order) and we ask for one
            SendHandshakeInitiation(peer, isRetry: false);
        }
    }

    internal bool TrySendStaged(WireGuardPeer peer, ReadOnlySpan<byte> packet) => TrySendWithCurrent(peer, packet);

    private void SendTransport(WireGuardPeer peer, Keypair keypair, ulong counter, ReadOnlySpan<byte> packet, long now)
    {
        var endpoint = peer.Endpoint;
        if (endpoint is null)
        {
            Counters.Drop(WireGuardDropReason.NoEndpoint);
            return;
        }

        var padded = packet.IsEmpty ? 0 : MessageFormat.PaddedLength(packet.Length, Mtu);
        var total = MessageFormat.TransportOverhead + padded;
        var buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var message = buffer.AsSpan(0, total);
            MessageFormat.WriteType(message, MessageFormat.Transport);
            BinaryPrimitives.WriteUInt32LittleEndian(message[MessageFormat.TransportReceiver..], keypair.RemoteIndex);
            BinaryPrimitives.WriteUInt64LittleEndian(message[MessageFormat.TransportCounter..], counter);
            var body = message.Slice(MessageFormat.TransportHeaderLength, padded);
            packet.CopyTo(body);
            body[packet.Length..].Clear();
            Aead.Seal(keypair.SendKey, counter, body, [], message[MessageFormat.TransportHeaderLength..]);
            _transport.SendDatagram(message, endpoint);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        peer.AddTx(total);
        peer.TimerAnyAuthenticatedPacketTraversal(now);
        peer.TimerAnyAuthenticatedPacketSent();
        if (!packet.IsEmpty)
        {
            peer.TimerDataSent(now);
        }
    }

    private void SendKeepalive(WireGuardPeer peer)
    {
        if (peer.HasStagedPackets)
        {
            SendStaged(peer);
            return;
        }

        if (TrySendWithCurrent(peer, []))
        {
            Counters.KeepaliveSent();
        }
        else
        {
            // no session yet (e.g. persistent keepalive just turned on): a handshake first; its confirmation is the keepalive
            SendHandshakeInitiation(peer, isRetry: false);
        }
    }

    // ================================================================================================ handshakes out

    private void SendHandshakeInitiation(WireGuardPeer peer, bool isRetry)
    {
        var identity = Volatile.Read(ref _identities)?.Current;
        if (identity is null || peer.IsRemoved)
        {
            return;
        }

        var now = NowTicks;
        Span<byte> message = stackalloc byte[MessageFormat.InitiationLength];
        lock (peer.HandshakeLock)
        {
            // as wireguard-go: a fresh request restarts the attempt count even when it is too soon to send
            if (!isRetry)
            {
                Volatile.Write(ref peer.HandshakeAttempts, 0);
            }

            if (peer.Handshake.LastSentInitiation != long.MinValue && now - peer.Handshake.LastSentInitiation < WireGuardTimers.RekeyTimeout.Ticks)
            {
                return;
            }

            peer.Handshake.LastSentInitiation = now;
            ReleaseHandshakeIndex(peer);
            var index = AllocateIndex(peer);
            if (!peer.Handshake.CreateInitiation(message, identity, index, Time.GetUtcNow()))
            {
                _indices.TryRemove(new KeyValuePair<uint, object>(index, peer));
                LogHandshakeCreationFailed(peer.PublicKey);
                return;
            }

            peer.Cookies.AddMacs(message, now);
        }

        var endpoint = peer.Endpoint;
        if (endpoint is null)
        {
            Counters.Drop(WireGuardDropReason.NoEndpoint);
        }
        else
        {
            _transport.SendDatagram(message, endpoint);
            peer.AddTx(message.Length);
            Counters.InitiationSent();
        }

        peer.TimerAnyAuthenticatedPacketTraversal(now);
        peer.TimerAnyAuthenticatedPacketSent();
        peer.TimerHandshakeInitiated(now);
    }

    internal void OnRetransmitHandshake(WireGuardPeer peer)
    {
        if (_disposed || peer.IsRemoved)
        {
            return;
        }

        try
        {
            // as the kernel and wireguard-go: give up once the count of retries is past 18, i.e. after the 19th
            // retry (20 initiations, about 100 s; their log line says "after 20 attempts")
            if (Volatile.Read(ref peer.HandshakeAttempts) > WireGuardTimers.MaxHandshakeAttempts)
            {
                LogHandshakeGaveUp(peer.PublicKey, WireGuardTimers.MaxHandshakeAttempts + 2);
                Counters.HandshakeGaveUp();
                peer.DropStaged();
                peer.TimerGaveUp(NowTicks);
                return;
            }

            LogHandshakeRetry(peer.PublicKey, Interlocked.Increment(ref peer.HandshakeAttempts));
            SendHandshakeInitiation(peer, isRetry: true);
        }
#pragma warning disable CA1031 // a timer callback must not crash the process
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            ReportError(e);
        }
    }

    internal void OnNewHandshake(WireGuardPeer peer) => RunTimerAction(peer, static (engine, p) => engine.SendHandshakeInitiation(p, isRetry: false));

    internal void OnKeepalive(WireGuardPeer peer) => RunTimerAction(peer, static (engine, p) => engine.SendKeepalive(p));

    internal void OnZeroKeyMaterial(WireGuardPeer peer) => RunTimerAction(peer, static (engine, p) =>
    {
        p.ClearKeypairs();
        lock (p.HandshakeLock)
        {
            engine.ReleaseHandshakeIndex(p);
            p.Handshake.Clear();
        }
    });

    private void RunTimerAction(WireGuardPeer peer, Action<WireGuardEngine, WireGuardPeer> action)
    {
        if (_disposed || peer.IsRemoved)
        {
            return;
        }

        try
        {
            action(this, peer);
        }
#pragma warning disable CA1031 // a timer callback must not crash the process
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            ReportError(e);
        }
    }

    // ================================================================================================ UDP in

    /// <summary>
    /// Handles one UDP datagram from <paramref name="source"/>. Never throws: a malformed, unauthenticated, replayed
    /// or unroutable datagram is dropped and counted in <see cref="Counters"/>. The engine copies the endpoint when it
    /// keeps it, so the caller may reuse one instance.
    /// </summary>
    public void HandleDatagram(ReadOnlySpan<byte> datagram, IPEndPoint source)
    {
        if (_disposed || source is null)
        {
            return;
        }

        HandleDatagramCore(datagram, source, null);
    }

    /// <summary>
    /// Handles one UDP datagram whose source is a raw socket address, as
    /// <see cref="System.Net.Sockets.Socket.ReceiveFrom(Span{byte}, System.Net.Sockets.SocketFlags, SocketAddress)"/>
    /// fills it: transport data from a known endpoint then costs no allocation at all. Same contract as the
    /// <see cref="IPEndPoint"/> overload; the engine copies what it keeps, so the caller may reuse the instance.
    /// </summary>
    public void HandleDatagram(ReadOnlySpan<byte> datagram, SocketAddress source)
    {
        if (_disposed || source is null)
        {
            return;
        }

        if (source.Family is not (System.Net.Sockets.AddressFamily.InterNetwork or System.Net.Sockets.AddressFamily.InterNetworkV6))
        {
            Counters.Drop(WireGuardDropReason.InternalError);
            return;
        }

        HandleDatagramCore(datagram, null, source);
    }

    private void HandleDatagramCore(ReadOnlySpan<byte> datagram, IPEndPoint? endPoint, SocketAddress? address)
    {
        try
        {
            if (datagram.Length < 4)
            {
                Counters.Drop(WireGuardDropReason.InvalidLength);
                return;
            }

            if (datagram[1] != 0 || datagram[2] != 0 || datagram[3] != 0)
            {
                Counters.Drop(WireGuardDropReason.UnknownType);
                return;
            }

            switch (datagram[0])
            {
                case MessageFormat.Transport when datagram.Length >= MessageFormat.TransportOverhead:
                    HandleTransport(datagram, endPoint, address);
                    break;
                case MessageFormat.Initiation when datagram.Length == MessageFormat.InitiationLength:
                    HandleHandshake(datagram, endPoint ?? ToEndPoint(address!), initiation: true);
                    break;
                case MessageFormat.Response when datagram.Length == MessageFormat.ResponseLength:
                    HandleHandshake(datagram, endPoint ?? ToEndPoint(address!), initiation: false);
                    break;
                case MessageFormat.CookieReply when datagram.Length == MessageFormat.CookieReplyLength:
                    HandleCookieReply(datagram);
                    break;
                case MessageFormat.Transport or MessageFormat.Initiation or MessageFormat.Response or MessageFormat.CookieReply:
                    Counters.Drop(WireGuardDropReason.InvalidLength);
                    break;
                default:
                    Counters.Drop(WireGuardDropReason.UnknownType);
                    break;
            }
        }
#pragma warning disable CA1031 // the receive path never throws: the contract of HandleDatagram
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            Counters.Drop(WireGuardDropReason.InternalError);
            ReportError(e);
        }
    }

    private static IPEndPoint ToEndPoint(SocketAddress address) => WireGuardPeer.ToEndPoint(address);

    /// <summary>
    /// The handshake gate: mac1 keyed by one of our public keys (the key in force first, then the additional one),
    /// and under load a valid mac2 (else a cookie reply under the identity the message was addressed to) and the
    /// per-source rate limit. Returns the identity the message was addressed to, or null when it is dropped.
    /// </summary>
    private StaticIdentity? PassesHandshakeGate(ReadOnlySpan<byte> message, IPEndPoint source, Identities identities, uint senderIndex, long now)
    {
        StaticIdentity identity;
        if (identities.Current is { } current && current.Cookies.CheckMac1(message))
        {
            identity = current;
        }
        else if (identities.Additional is { } additional && additional.Cookies.CheckMac1(message))
        {
            identity = additional;
        }
        else
        {
            Counters.Drop(WireGuardDropReason.InvalidMac1);
            return null;
        }

        if (!IsUnderLoad(now))
        {
            return identity;
        }

        if (!identity.Cookies.CheckMac2(message, source, now))
        {
            Span<byte> reply = stackalloc byte[MessageFormat.CookieReplyLength];
            identity.Cookies.WriteReply(reply, message, senderIndex, source, now);
            _transport.SendDatagram(reply, source);
            Counters.CookieReplySent();
            Counters.Drop(WireGuardDropReason.CookieRequired);
            return null;
        }

        if (!_rateLimiter.Allow(source.Address, now))
        {
            Counters.Drop(WireGuardDropReason.RateLimited);
            return null;
        }

        return identity;
    }

    private bool IsUnderLoad(long now)
    {
        var threshold = HandshakeLoadThreshold;
        if (threshold <= 0)
        {
            return true;
        }

        lock (_loadLock)
        {
            if (now - _loadWindowStart >= TimeSpan.TicksPerSecond)
            {
                _loadWindowStart = now;
                _loadWindowCount = 0;
            }

            if (++_loadWindowCount > threshold)
            {
                _underLoadUntil = now + TimeSpan.TicksPerSecond;
            }

            return now < _underLoadUntil;
        }
    }

    private void HandleCookieReply(ReadOnlySpan<byte> message)
    {
        var receiver = BinaryPrimitives.ReadUInt32LittleEndian(message[MessageFormat.CookieReceiver..]);
        if (!_indices.TryGetValue(receiver, out var target))
        {
            Counters.Drop(WireGuardDropReason.UnknownReceiverIndex);
            return;
        }

        var peer = target as WireGuardPeer ?? ((Keypair)target).Peer;
        if (!peer.Cookies.ConsumeReply(message, NowTicks))
        {
            Counters.Drop(WireGuardDropReason.InvalidCookieReply);
            return;
        }

        Counters.CookieReplyReceived();
    }

    private void HandleTransport(ReadOnlySpan<byte> message, IPEndPoint? sourceEndPoint, SocketAddress? sourceAddress)
    {
        var receiver = BinaryPrimitives.ReadUInt32LittleEndian(message[MessageFormat.TransportReceiver..]);
        if (!_indices.TryGetValue(receiver, out var target) || target is not Keypair keypair || !keypair.TryAcquire())
        {
            Counters.Drop(WireGuardDropReason.UnknownReceiverIndex);
            return;
        }

        byte[]? buffer = null;
        try
        {
            var now = NowTicks;
            var counter = BinaryPrimitives.ReadUInt64LittleEndian(message[MessageFormat.TransportCounter..]);
            if (now - keypair.CreatedTicks >= WireGuardTimers.RejectAfterTime.Ticks)
            {
                Counters.Drop(WireGuardDropReason.KeypairExpired);
                return;
            }

            if (!keypair.MayAccept(counter))
            {
                Counters.Drop(WireGuardDropReason.ReplayedCounter);
                return;
            }

            var ciphertext = message[MessageFormat.TransportHeaderLength..];
            var length = ciphertext.Length - Aead.TagLength;
            buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
            var plaintext = buffer.AsSpan(0, length);
            if (!Aead.Open(keypair.ReceiveKey, counter, ciphertext, [], plaintext))
            {
                Counters.Drop(WireGuardDropReason.DecryptFailed);
                return;
            }

            if (!keypair.TryAcceptCounter(counter))
            {
                Counters.Drop(WireGuardDropReason.ReplayedCounter);
                return;
            }

            var peer = keypair.Peer;
            if (sourceEndPoint is not null)
            {
                peer.SetEndpoint(sourceEndPoint);
            }
            else
            {
                peer.SetEndpoint(sourceAddress!);
            }
            peer.AddRx(message.Length);
            if (peer.ReceivedWithKeypair(keypair))
            {
                peer.MarkHandshakeComplete(Time.GetUtcNow());
                SendStaged(peer);
            }

            AfterAuthenticatedTransport(peer, now);
            if (length == 0)
            {
                return; // keepalive
            }

            // any data (valid inner packet or not) calls for an answer, as in the reference implementations
            peer.TimerDataReceived(now);
            if (!InnerPacket.TryGetSourceAndLength(plaintext, out var innerSource, out var innerLength))
            {
                Counters.Drop(WireGuardDropReason.InvalidInnerPacket);
                return;
            }

            if (!ReferenceEquals(_allowedIps.Lookup(innerSource), peer))
            {
                Counters.Drop(WireGuardDropReason.SourceNotAllowed);
                return;
            }

            _transport.WriteToTun(plaintext[..innerLength]);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            keypair.Release();
        }
    }

    /// <summary>
    /// After a transport message from <paramref name="peer"/> checked out (both receive paths): the initiator rekeys
    /// before its keypair gets too old to receive with, and the timers learn that the peer is alive.
    /// </summary>
    private void AfterAuthenticatedTransport(WireGuardPeer peer, long now)
    {
        var current = peer.Current;
        if (current is not null && current.IsInitiator && !peer.SentLastMinuteHandshake &&
            now - current.CreatedTicks > WireGuardTimers.RekeyOnReceiveAge.Ticks)
        {
            peer.SentLastMinuteHandshake = true;
            SendHandshakeInitiation(peer, isRetry: false);
        }

        peer.TimerAnyAuthenticatedPacketTraversal(now);
        peer.TimerAnyAuthenticatedPacketReceived();
    }

    // ================================================================================================ indices

    private uint AllocateIndex(object target)
    {
        Span<byte> random = stackalloc byte[4];
        while (true)
        {
            RandomNumberGenerator.Fill(random);
            var index = BinaryPrimitives.ReadUInt32LittleEndian(random);
            if (_indices.TryAdd(index, target))
            {
                return index;
            }
        }
    }

    /// <summary>Frees the index of a pending initiation of <paramref name="peer"/> (caller holds the handshake lock).</summary>
    private void ReleaseHandshakeIndex(WireGuardPeer peer)
    {
        if (peer.Handshake.State == HandshakeState.InitiationCreated)
        {
            _indices.TryRemove(new KeyValuePair<uint, object>(peer.Handshake.LocalIndex, peer));
        }
    }

    internal void DeleteKeypair(Keypair? keypair)
    {
        if (keypair is null)
        {
            return;
        }

        _indices.TryRemove(new KeyValuePair<uint, object>(keypair.LocalIndex, keypair));
        keypair.Retire();
    }

    /// <summary>Stops the timers and erases all key material.</summary>
    public void Dispose()
    {
        lock (_configLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var key in _peers.Keys)
            {
                RemovePeerLocked(key);
            }

            _identities?.Current?.Dispose();
            _identities?.Additional?.Dispose();
            _identities = null;
        }

        Interlocked.Exchange(ref _cryptoPool, null)?.Dispose();
        Timers.Dispose();
    }

    /// <summary>
    /// A key or identity disposed under a packet in flight (private key changed, peer removed, engine disposed) is
    /// an expected race and logged at debug level; anything else is a bug or a failing transport.
    /// </summary>
    private void ReportError(Exception exception)
    {
        if (exception is ObjectDisposedException)
        {
            LogDisposedRace(exception);
        }
        else
        {
            LogInternalError(exception);
        }
    }

    /// <summary>The static keys in use, swapped as one reference: the key in force and the one also answered under.</summary>
    private sealed record Identities(StaticIdentity? Current, StaticIdentity? Additional);

    [LoggerMessage(Level = LogLevel.Warning, Message = "WireGuard engine: unexpected error while handling a packet (dropped)")]
    private partial void LogInternalError(Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "WireGuard engine: packet dropped, its key was replaced while in flight")]
    private partial void LogDisposedRace(Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "WireGuard peer {Peer}: no handshake after {Attempts} attempts, giving up")]
    private partial void LogHandshakeGaveUp(WireGuardPublicKey peer, int attempts);

    [LoggerMessage(Level = LogLevel.Debug, Message = "WireGuard peer {Peer}: new session as {Role}")]
    private partial void LogSessionDerived(WireGuardPublicKey peer, string role);

    [LoggerMessage(Level = LogLevel.Debug, Message = "WireGuard peer {Peer}: no response, handshake retry {Attempt}")]
    private partial void LogHandshakeRetry(WireGuardPublicKey peer, int attempt);

    [LoggerMessage(Level = LogLevel.Debug, Message = "WireGuard peer {Peer}: cannot create a handshake initiation (invalid static key)")]
    private partial void LogHandshakeCreationFailed(WireGuardPublicKey peer);
}
