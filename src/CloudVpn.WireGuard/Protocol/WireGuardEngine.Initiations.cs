using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Handshake initiations, one or a burst at a time. A burst (several initiations in one UDP batch: a gateway after a
/// restart, a fleet rekeying at once) has its X25519 done together, eight at a time in AVX-512 lanes
/// (<see cref="DhBatch"/>): first es for every initiation, then, for those accepted, the response's ephemeral public
/// key, ee and se. A single initiation goes the way it always went: libsodium, one lock from consume to response.
/// </summary>
public sealed partial class WireGuardEngine
{
    /// <summary>Initiations handled together at most (a UDP batch holds up to 64 datagrams).</summary>
    internal const int InitiationBurst = 64;

    [ThreadStatic]
    private static InitiationWork? t_initiations;

    private long _initiationLaneGroups;

    /// <summary>Eight-lane X25519 groups run for initiation bursts so far (for tests and the bench).</summary>
    internal long InitiationLaneGroups => Interlocked.Read(ref _initiationLaneGroups);

    private void HandleInitiation(ReadOnlySpan<byte> message, IPEndPoint source)
    {
        var work = RentInitiationWork();
        try
        {
            if (QueueInitiation(work, message, source))
            {
                ProcessInitiations(work);
            }
        }
        finally
        {
            ReturnInitiationWork(work);
        }
    }

    /// <summary>
    /// A UDP batch's datagram that is not transport data: an initiation joins the batch's burst (handled after the
    /// batch's loop by <see cref="FinishInitiationBurst"/>), anything else is handled now, in order.
    /// </summary>
    private void HandleHandshakeInBatch(ReadOnlySpan<byte> datagram, SocketAddress source, ref InitiationWork? burst)
    {
        if (datagram.Length != MessageFormat.InitiationLength || datagram[0] != MessageFormat.Initiation ||
            datagram[1] != 0 || datagram[2] != 0 || datagram[3] != 0)
        {
            HandleDatagramCore(datagram, null, source);
            return;
        }

        try
        {
            burst ??= RentInitiationWork();
            if (burst.IsFull)
            {
                ProcessInitiations(burst);
                burst.Reset();
            }

            QueueInitiation(burst, datagram, ToEndPoint(source));
        }
#pragma warning disable CA1031 // the receive path never throws: the contract of HandleDatagram
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            Counters.Drop(WireGuardDropReason.InternalError);
            ReportError(e);
        }
    }

    /// <summary>Handles the initiations a UDP batch queued, together.</summary>
    private void FinishInitiationBurst(InitiationWork? burst)
    {
        if (burst is null)
        {
            return;
        }

        try
        {
            if (burst.Count > 0)
            {
                ProcessInitiations(burst);
            }
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
            ReturnInitiationWork(burst);
        }
    }

    /// <summary>A per-thread work area, or a new one when this thread is already inside one (a transport that loops back).</summary>
    private static InitiationWork RentInitiationWork()
    {
        var work = t_initiations ??= new InitiationWork();
        if (work.InUse)
        {
            work = new InitiationWork();
        }

        work.InUse = true;
        return work;
    }

    private static void ReturnInitiationWork(InitiationWork work)
    {
        work.Reset();
        work.InUse = false;
    }

    /// <summary>Checks the gate (mac1; under load mac2 and the rate limit) and queues the initiation; false when dropped.</summary>
    private bool QueueInitiation(InitiationWork work, ReadOnlySpan<byte> message, IPEndPoint source)
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

    private void ProcessInitiations(InitiationWork work)
    {
        // es = DH(S_responder, E_initiator) for every queued initiation, together
        var dh = work.Dh;
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
            Interlocked.Add(ref _initiationLaneGroups, laneGroups);
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

        Interlocked.Add(ref _initiationLaneGroups, laneGroups);
    }

    /// <summary>
    /// Decrypts the initiator's static key and timestamp and applies the replay and flood checks under the peer's
    /// lock; the single-initiation path also responds within that lock. Returns the peer when a (deferred) response
    /// is due, else null.
    /// </summary>
    private WireGuardPeer? ConsumeInitiation(InitiationWork work, int i, bool deferResponse)
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

    private WireGuardPeer? ConsumeInitiation(InitiationWork work, int i, bool deferResponse, Span<byte> response, Span<byte> keys)
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
    private void Respond(InitiationWork work, int i, WireGuardPeer peer, PrecomputedDh precomputed)
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
    private bool CreateResponseLocked(InitiationWork work, int i, WireGuardPeer peer, PrecomputedDh precomputed, Span<byte> response, Span<byte> keys, out Keypair keypair)
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
    private void SendResponse(InitiationWork work, int i, WireGuardPeer peer, Keypair keypair, ReadOnlySpan<byte> response)
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

    /// <summary>The queued initiations of one burst and their scratch (pinned; secrets zeroed by <see cref="Reset"/>).</summary>
    private sealed class InitiationWork
    {
        private const int BegunLength = 4 * 32; // hash, chain key, remote static, remote ephemeral
        private readonly byte[] _messages = GC.AllocateArray<byte>(InitiationBurst * MessageFormat.InitiationLength, pinned: true);
        private readonly byte[] _begun = GC.AllocateArray<byte>(InitiationBurst * BegunLength, pinned: true);
        private readonly byte[] _ephemerals = GC.AllocateArray<byte>(InitiationBurst * 32, pinned: true);

        public DhBatch Dh { get; } = new(3 * InitiationBurst);

        public int Count { get; private set; }

        public bool InUse { get; set; }

        public bool IsFull => Count == InitiationBurst;

        public IPEndPoint?[] Sources { get; } = new IPEndPoint?[InitiationBurst];

        public StaticIdentity?[] Identities { get; } = new StaticIdentity?[InitiationBurst];

        public WireGuardPeer?[] Peers { get; } = new WireGuardPeer?[InitiationBurst];

        public long[] Now { get; } = new long[InitiationBurst];

        public int[] EsItem { get; } = new int[InitiationBurst];

        public int[] BaseItem { get; } = new int[InitiationBurst];

        public int[] EeItem { get; } = new int[InitiationBurst];

        public int[] SeItem { get; } = new int[InitiationBurst];

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
        }
    }
}
