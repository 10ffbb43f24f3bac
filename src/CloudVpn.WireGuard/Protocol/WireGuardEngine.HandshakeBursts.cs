using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Handshake messages, one or a burst at a time. A burst (several initiations or responses in one UDP batch: a
/// gateway after a restart, a fleet rekeying at once) has its X25519 done together, eight at a time in AVX-512 lanes
/// (<see cref="DhBatch"/>). Initiations: first es for every one, then, for those accepted, the response's ephemeral
/// public key, ee and se. Responses: ee and se for every one. A single message goes the way it always went:
/// libsodium, one lock from consume to session.
/// </summary>
public sealed partial class WireGuardEngine
{
    /// <summary>Handshake messages of each kind handled together at most (a UDP batch holds up to 64 datagrams).</summary>
    internal const int BurstLength = 64;

    [ThreadStatic]
    private static HandshakeBurst? t_burst;

    /// <summary>One handshake message on its own (the one-datagram receive path): a burst of one.</summary>
    private void HandleHandshake(ReadOnlySpan<byte> message, IPEndPoint source, bool initiation)
    {
        var work = RentBurst();
        try
        {
            if (Queue(work, message, source, initiation))
            {
                ProcessResponses(work);
                ProcessInitiations(work);
            }
        }
        finally
        {
            ReturnBurst(work);
        }
    }

    private bool Queue(HandshakeBurst work, ReadOnlySpan<byte> message, IPEndPoint source, bool initiation) =>
        initiation ? QueueInitiation(work, message, source) : QueueResponse(work, message, source);

    /// <summary>
    /// A UDP batch's datagram that is not transport data: an initiation or a response joins the batch's burst (handled
    /// after the batch's loop by <see cref="FinishHandshakeBurst"/>), anything else is handled now, in order.
    /// </summary>
    private void HandleHandshakeInBatch(ReadOnlySpan<byte> datagram, SocketAddress source, ref HandshakeBurst? burst)
    {
        var initiation = datagram.Length == MessageFormat.InitiationLength && datagram[0] == MessageFormat.Initiation;
        var response = datagram.Length == MessageFormat.ResponseLength && datagram[0] == MessageFormat.Response;
        if (!(initiation || response) || datagram[1] != 0 || datagram[2] != 0 || datagram[3] != 0)
        {
            HandleDatagramCore(datagram, null, source);
            return;
        }

        try
        {
            burst ??= RentBurst();
            if (burst.IsFull)
            {
                ProcessResponses(burst);
                ProcessInitiations(burst);
                burst.Reset();
            }

            Queue(burst, datagram, ToEndPoint(source), initiation);
        }
#pragma warning disable CA1031 // the receive path never throws: the contract of HandleDatagram
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            Counters.Drop(WireGuardDropReason.InternalError);
            ReportError(e);
        }
    }

    /// <summary>Handles the responses, then the initiations a UDP batch queued, each kind together.</summary>
    private void FinishHandshakeBurst(HandshakeBurst? burst)
    {
        if (burst is null)
        {
            return;
        }

        try
        {
            ProcessResponses(burst);
            ProcessInitiations(burst);
        }
#pragma warning disable CA1031 // the receive path never throws: the contract of HandleDatagram
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            Counters.Drop(WireGuardDropReason.InternalError);
            ReportError(e);
        }
        finally
        {
            ReturnBurst(burst);
        }
    }

    /// <summary>A per-thread work area, or a new one when this thread is already inside one (a transport that loops back).</summary>
    private static HandshakeBurst RentBurst()
    {
        var work = t_burst ??= new HandshakeBurst();
        if (work.InUse)
        {
            work = new HandshakeBurst();
        }

        work.InUse = true;
        return work;
    }

    private static void ReturnBurst(HandshakeBurst work)
    {
        work.Reset();
        work.InUse = false;
    }

    /// <summary>Checks the gate (mac1; under load mac2 and the rate limit) and queues the initiation; false when dropped.</summary>
    private bool QueueInitiation(HandshakeBurst work, ReadOnlySpan<byte> message, IPEndPoint source)
    {
        var identities = Volatile.Read(ref _identities);
        if (identities?.Current is null)
        {
            Counters.Drop(WireGuardDropReason.NoPrivateKey);
            return false;
        }

        var now = NowTicks;
        var sender = BinaryPrimitives.ReadUInt32LittleEndian(message[MessageFormat.InitiationSender..]);
        if (PassesHandshakeGate(message, source, identities, sender, now) is not { } identity)
        {
            return false;
        }

        work.Add(message, source, identity, now);
        return true;
    }

    private void ProcessInitiations(HandshakeBurst work)
    {
        if (work.Count == 0)
        {
            return;
        }

        // es = DH(S_responder, E_initiator) for every queued initiation, together
        var dh = work.Dh;
        dh.Clear();
        for (var i = 0; i < work.Count; i++)
        {
            work.EsItem[i] = dh.Add(work.Identities[i]!.PrivateKey, work.Message(i).Slice(MessageFormat.InitiationEphemeral, 32));
        }

        dh.Run();
        var laneGroups = dh.LaneGroupsRun;
        var deferResponses = work.Count > 1;
        for (var i = 0; i < work.Count; i++)
        {
            work.Peers[i] = ConsumeInitiation(work, i, deferResponses);
        }

        if (!deferResponses)
        {
            Counters.InitiationLanes(laneGroups);
            return;
        }

        // the responses: a fresh ephemeral e per accepted initiation, its public key, ee = DH(e, E_i), se = DH(e, S_i)
        dh.Clear();
        var accepted = 0;
        for (var i = 0; i < work.Count; i++)
        {
            if (work.Peers[i] is null)
            {
                continue;
            }

            var ephemeral = work.Ephemeral(i);
            Curve25519.NewPrivateKey(ephemeral);
            work.BaseItem[i] = dh.AddBasePoint(ephemeral);
            work.EeItem[i] = dh.Add(ephemeral, work.RemoteEphemeral(i));
            work.SeItem[i] = dh.Add(ephemeral, work.RemoteStatic(i));
            accepted++;
        }

        if (accepted > 0)
        {
            dh.Run();
            laneGroups += dh.LaneGroupsRun;
            for (var i = 0; i < work.Count; i++)
            {
                if (work.Peers[i] is { } peer)
                {
                    var precomputed = new PrecomputedDh
                    {
                        EphemeralPrivate = work.Ephemeral(i),
                        EphemeralPublic = dh.Result(work.BaseItem[i]),
                        First = dh.Result(work.EeItem[i]),
                        Second = dh.Result(work.SeItem[i]),
                    };
                    Respond(work, i, peer, precomputed);
                }
            }
        }

        Counters.InitiationLanes(laneGroups);
    }

    /// <summary>
    /// Decrypts the initiator's static key and timestamp and applies the replay and flood checks under the peer's
    /// lock; the single-initiation path also responds within that lock. Returns the peer when a (deferred) response
    /// is due, else null.
    /// </summary>
    private WireGuardPeer? ConsumeInitiation(HandshakeBurst work, int i, bool deferResponse)
    {
        Span<byte> response = stackalloc byte[MessageFormat.ResponseLength];
        Span<byte> keys = stackalloc byte[64];
        try
        {
            return ConsumeInitiation(work, i, deferResponse, response, keys);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys);
        }
    }

    private WireGuardPeer? ConsumeInitiation(HandshakeBurst work, int i, bool deferResponse, Span<byte> response, Span<byte> keys)
    {
        Keypair keypair;
        var message = work.Message(i);
        var identity = work.Identities[i]!;
        var begun = new ConsumedInitiation
        {
            Hash = work.Begun(i, 0),
            ChainKey = work.Begun(i, 1),
            RemoteStatic = work.RemoteStatic(i),
            RemoteEphemeral = work.RemoteEphemeral(i),
        };

        if (!NoiseHandshake.BeginConsumeInitiation(message, identity, ref begun, precomputed: true, work.Dh.Result(work.EsItem[i])) ||
            !_peers.TryGetValue(new WireGuardPublicKey(begun.RemoteStatic), out var peer))
        {
            Counters.Drop(WireGuardDropReason.HandshakeFailed);
            return null;
        }

        lock (peer.HandshakeLock)
        {
            if (peer.IsRemoved)
            {
                Counters.Drop(WireGuardDropReason.HandshakeFailed);
                return null;
            }

            // our own pending initiation (if any) is superseded by the peer's
            var pendingIndex = peer.Handshake.State == HandshakeState.InitiationCreated ? peer.Handshake.LocalIndex : (uint?)null;
            switch (peer.Handshake.FinishConsumeInitiation(message, ref begun, identity, work.Now[i], WireGuardTimers.HandshakeInitiationRate.Ticks))
            {
                case ConsumeResult.Failed:
                    Counters.Drop(WireGuardDropReason.HandshakeFailed);
                    return null;
                case ConsumeResult.Replayed:
                    Counters.Drop(WireGuardDropReason.HandshakeReplayed);
                    return null;
            }

            Counters.InitiationReceived();
            if (pendingIndex is { } pending)
            {
                _indices.TryRemove(new KeyValuePair<uint, object>(pending, peer));
            }

            if (deferResponse)
            {
                return peer;
            }

            // one initiation: answered within the same lock, its DH computed here
            if (!CreateResponseLocked(work, i, peer, default, response, keys, out keypair))
            {
                return null;
            }
        }

        SendResponse(work, i, peer, keypair, response);
        return null;
    }

    /// <summary>A deferred response: the DH were computed ahead, in lanes with the other initiations'.</summary>
    private void Respond(HandshakeBurst work, int i, WireGuardPeer peer, PrecomputedDh precomputed)
    {
        Span<byte> response = stackalloc byte[MessageFormat.ResponseLength];
        Span<byte> keys = stackalloc byte[64];
        Keypair keypair;
        try
        {
            lock (peer.HandshakeLock)
            {
                // the response still answers this initiation only if nothing happened to the handshake in between
                // (another initiation consumed, our own initiation made, the peer removed): otherwise the newer state wins
                if (peer.IsRemoved || !peer.Handshake.IsAwaitingResponseTo(work.RemoteEphemeral(i)))
                {
                    Counters.Drop(WireGuardDropReason.HandshakeFailed);
                    return;
                }

                if (!CreateResponseLocked(work, i, peer, precomputed, response, keys, out keypair))
                {
                    return;
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys);
        }

        SendResponse(work, i, peer, keypair, response);
    }

    /// <summary>Under the peer's handshake lock: creates the response, derives and installs the session's keypair.</summary>
    private bool CreateResponseLocked(HandshakeBurst work, int i, WireGuardPeer peer, PrecomputedDh precomputed, Span<byte> response, Span<byte> keys, out Keypair keypair)
    {
        var now = work.Now[i];
        var index = AllocateIndex(peer);
        if (!peer.Handshake.CreateResponse(response, index, precomputed))
        {
            _indices.TryRemove(new KeyValuePair<uint, object>(index, peer));
            peer.Handshake.Clear();
            Counters.Drop(WireGuardDropReason.HandshakeFailed);
            keypair = null!;
            return false;
        }

        var remoteIndex = peer.Handshake.RemoteIndex;
        peer.Handshake.DeriveTransportKeys(initiator: false, keys[..32], keys[32..]);
        keypair = new Keypair(peer, keys[..32], keys[32..], initiator: false, index, remoteIndex, now, work.Identities[i]!);
        _indices[index] = keypair;
        peer.Cookies.AddMacs(response, now);
        return true;
    }

    /// <summary>After the lock: the peer's endpoint, timers and new session, then the response on the wire.</summary>
    private void SendResponse(HandshakeBurst work, int i, WireGuardPeer peer, Keypair keypair, ReadOnlySpan<byte> response)
    {
        var identity = work.Identities[i]!;
        var now = work.Now[i];
        var source = work.Sources[i]!;
        peer.AddRx(MessageFormat.InitiationLength);
        peer.SetEndpoint(source);
        peer.TimerAnyAuthenticatedPacketTraversal(now);
        peer.TimerAnyAuthenticatedPacketReceived();

        // A peer that handshakes under another of our keys than its session was made under has moved to that key
        // (a rotation's overlap) and no longer takes the old session: rather than lost on it, packets wait (staged)
        // for the new session, which the peer confirms one round trip later.
        peer.ExpireKeypairsNotDerivedUnder(identity);
        peer.BeginSession(keypair);
        Counters.HandshakeCompleted();
        LogSessionDerived(peer.PublicKey, "responder");

        _transport.SendDatagram(response, peer.Endpoint ?? source);
        peer.AddTx(response.Length);
        Counters.ResponseSent();
        peer.TimerSessionDerived(now);
        peer.TimerAnyAuthenticatedPacketTraversal(now);
        peer.TimerAnyAuthenticatedPacketSent();
    }

    /// <summary>Checks the gate and that the response names one of our pending initiations, and queues it; false when dropped.</summary>
    private bool QueueResponse(HandshakeBurst work, ReadOnlySpan<byte> message, IPEndPoint source)
    {
        var identities = Volatile.Read(ref _identities);
        if (identities?.Current is not { } identity)
        {
            Counters.Drop(WireGuardDropReason.NoPrivateKey);
            return false;
        }

        // our initiations are made under the key in force, and so the response is consumed under it
        var now = NowTicks;
        var sender = BinaryPrimitives.ReadUInt32LittleEndian(message[MessageFormat.ResponseSender..]);
        if (PassesHandshakeGate(message, source, identities, sender, now) is null)
        {
            return false;
        }

        var receiver = BinaryPrimitives.ReadUInt32LittleEndian(message[MessageFormat.ResponseReceiver..]);
        if (!_indices.TryGetValue(receiver, out var target) || target is not WireGuardPeer peer)
        {
            Counters.Drop(WireGuardDropReason.UnknownReceiverIndex);
            return false;
        }

        work.Responses.Add(message, source, identity, peer, receiver, now);
        return true;
    }

    private void ProcessResponses(HandshakeBurst work)
    {
        var responses = work.Responses;
        if (responses.Count == 0)
        {
            return;
        }

        if (responses.Count == 1)
        {
            // one response: consumed within one lock, its DH computed there
            ConsumeResponse(work, 0, precomputed: false);
            return;
        }

        // ee = DH(e, E_responder) and se = DH(S, E_responder) for every response still awaited, together
        var dh = work.Dh;
        dh.Clear();
        for (var i = 0; i < responses.Count; i++)
        {
            var peer = responses.Peers[i]!;
            bool awaited;
            lock (peer.HandshakeLock)
            {
                awaited = !peer.IsRemoved && peer.Handshake.LocalIndex == responses.Receivers[i] && peer.Handshake.TryCopyLocalEphemeral(responses.LocalEphemeral(i));
            }

            if (!awaited)
            {
                Counters.Drop(WireGuardDropReason.HandshakeFailed);
                responses.Peers[i] = null;
                continue;
            }

            var ephemeral = responses.Message(i).Slice(MessageFormat.ResponseEphemeral, 32);
            responses.EeItem[i] = dh.Add(responses.LocalEphemeral(i), ephemeral);
            responses.SeItem[i] = dh.Add(responses.Identities[i]!.PrivateKey, ephemeral);
        }

        if (dh.Count == 0)
        {
            return;
        }

        dh.Run();
        Counters.ResponseLanes(dh.LaneGroupsRun);
        for (var i = 0; i < responses.Count; i++)
        {
            if (responses.Peers[i] is not null)
            {
                ConsumeResponse(work, i, precomputed: true);
            }
        }
    }

    /// <summary>Consumes response i under its peer's lock (with its DH from the burst when <paramref name="precomputed"/>), then starts the session.</summary>
    private void ConsumeResponse(HandshakeBurst work, int i, bool precomputed)
    {
        var responses = work.Responses;
        var peer = responses.Peers[i]!;
        var identity = responses.Identities[i]!;
        var receiver = responses.Receivers[i];
        var now = responses.Now[i];
        var message = responses.Message(i);
        Span<byte> keys = stackalloc byte[64];
        Keypair keypair;
        try
        {
            lock (peer.HandshakeLock)
            {
                // with the DH computed ahead, the initiation they belong to must still be the one awaiting a response
                var consumed = !peer.IsRemoved && peer.Handshake.LocalIndex == receiver &&
                    (precomputed
                        ? peer.Handshake.IsAwaitingResponseWith(responses.LocalEphemeral(i)) &&
                          peer.Handshake.ConsumeResponse(message, identity, precomputed: true, work.Dh.Result(responses.EeItem[i]), work.Dh.Result(responses.SeItem[i]))
                        : peer.Handshake.ConsumeResponse(message, identity));
                if (!consumed)
                {
                    Counters.Drop(WireGuardDropReason.HandshakeFailed);
                    return;
                }

                var remoteIndex = peer.Handshake.RemoteIndex;
                peer.Handshake.DeriveTransportKeys(initiator: true, keys[..32], keys[32..]);
                keypair = new Keypair(peer, keys[..32], keys[32..], initiator: true, receiver, remoteIndex, now, identity);
                _indices[receiver] = keypair;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys);
        }

        Counters.ResponseReceived();
        Counters.HandshakeCompleted();
        peer.AddRx(message.Length);
        peer.SetEndpoint(responses.Sources[i]!);
        peer.TimerAnyAuthenticatedPacketTraversal(now);
        peer.TimerAnyAuthenticatedPacketReceived();
        peer.MarkHandshakeComplete(Time.GetUtcNow());
        peer.BeginSession(keypair);
        peer.TimerSessionDerived(now);
        LogSessionDerived(peer.PublicKey, "initiator");

        // the initiator confirms the session at once: queued packets, or else a keepalive
        if (peer.HasStagedPackets)
        {
            SendStaged(peer);
        }
        else if (TrySendWithCurrent(peer, []))
        {
            Counters.KeepaliveSent();
        }
    }

    /// <summary>The queued initiations and responses of one burst and their scratch (pinned; secrets zeroed by <see cref="Reset"/>).</summary>
    private sealed class HandshakeBurst
    {
        private const int BegunLength = 4 * 32; // hash, chain key, remote static, remote ephemeral
        private readonly byte[] _messages = GC.AllocateArray<byte>(BurstLength * MessageFormat.InitiationLength, pinned: true);
        private readonly byte[] _begun = GC.AllocateArray<byte>(BurstLength * BegunLength, pinned: true);
        private readonly byte[] _ephemerals = GC.AllocateArray<byte>(BurstLength * 32, pinned: true);

        public DhBatch Dh { get; } = new(3 * BurstLength);

        public int Count { get; private set; }

        public bool InUse { get; set; }

        public bool IsFull => Count == BurstLength || Responses.Count == BurstLength;

        /// <summary>The queued responses.</summary>
        public ResponseQueue Responses { get; } = new();

        public IPEndPoint?[] Sources { get; } = new IPEndPoint?[BurstLength];

        public StaticIdentity?[] Identities { get; } = new StaticIdentity?[BurstLength];

        public WireGuardPeer?[] Peers { get; } = new WireGuardPeer?[BurstLength];

        public long[] Now { get; } = new long[BurstLength];

        public int[] EsItem { get; } = new int[BurstLength];

        public int[] BaseItem { get; } = new int[BurstLength];

        public int[] EeItem { get; } = new int[BurstLength];

        public int[] SeItem { get; } = new int[BurstLength];

        public void Add(ReadOnlySpan<byte> message, IPEndPoint source, StaticIdentity identity, long now)
        {
            message.CopyTo(_messages.AsSpan(Count * MessageFormat.InitiationLength, MessageFormat.InitiationLength));
            Sources[Count] = source;
            Identities[Count] = identity;
            Now[Count] = now;
            Count++;
        }

        public ReadOnlySpan<byte> Message(int i) => _messages.AsSpan(i * MessageFormat.InitiationLength, MessageFormat.InitiationLength);

        /// <summary>Part <paramref name="part"/> (0 hash, 1 chain key) of initiation i's consume state.</summary>
        public Span<byte> Begun(int i, int part) => _begun.AsSpan((i * BegunLength) + (part * 32), 32);

        public Span<byte> RemoteStatic(int i) => Begun(i, 2);

        public Span<byte> RemoteEphemeral(int i) => Begun(i, 3);

        public Span<byte> Ephemeral(int i) => _ephemerals.AsSpan(i * 32, 32);

        public void Reset()
        {
            CryptographicOperations.ZeroMemory(_begun.AsSpan(0, Count * BegunLength));
            CryptographicOperations.ZeroMemory(_ephemerals.AsSpan(0, Count * 32));
            Array.Clear(Sources, 0, Count);
            Array.Clear(Identities, 0, Count);
            Array.Clear(Peers, 0, Count);
            Dh.Clear();
            Count = 0;
            Responses.Reset();
        }
    }

    /// <summary>Responses to our initiations, queued, with what their DH need.</summary>
    private sealed class ResponseQueue
    {
        private readonly byte[] _messages = GC.AllocateArray<byte>(BurstLength * MessageFormat.ResponseLength, pinned: true);
        private readonly byte[] _ephemerals = GC.AllocateArray<byte>(BurstLength * 32, pinned: true);

        public int Count { get; private set; }

        public IPEndPoint?[] Sources { get; } = new IPEndPoint?[BurstLength];

        public StaticIdentity?[] Identities { get; } = new StaticIdentity?[BurstLength];

        public WireGuardPeer?[] Peers { get; } = new WireGuardPeer?[BurstLength];

        public uint[] Receivers { get; } = new uint[BurstLength];

        public long[] Now { get; } = new long[BurstLength];

        public int[] EeItem { get; } = new int[BurstLength];

        public int[] SeItem { get; } = new int[BurstLength];

        public void Add(ReadOnlySpan<byte> message, IPEndPoint source, StaticIdentity identity, WireGuardPeer peer, uint receiver, long now)
        {
            message.CopyTo(_messages.AsSpan(Count * MessageFormat.ResponseLength, MessageFormat.ResponseLength));
            Sources[Count] = source;
            Identities[Count] = identity;
            Peers[Count] = peer;
            Receivers[Count] = receiver;
            Now[Count] = now;
            Count++;
        }

        public ReadOnlySpan<byte> Message(int i) => _messages.AsSpan(i * MessageFormat.ResponseLength, MessageFormat.ResponseLength);

        /// <summary>A copy of our ephemeral private key of the initiation response i answers.</summary>
        public Span<byte> LocalEphemeral(int i) => _ephemerals.AsSpan(i * 32, 32);

        public void Reset()
        {
            CryptographicOperations.ZeroMemory(_ephemerals.AsSpan(0, Count * 32));
            Array.Clear(Sources, 0, Count);
            Array.Clear(Identities, 0, Count);
            Array.Clear(Peers, 0, Count);
            Count = 0;
        }
    }
}
