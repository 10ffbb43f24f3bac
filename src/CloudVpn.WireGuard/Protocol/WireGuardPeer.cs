using System.Buffers;
using System.Net;
using System.Security.Cryptography;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// One peer of the engine: handshake state, keypairs (previous, current, next), endpoint, counters, the queue of
/// packets waiting for a handshake and the peer's timers. Timers are deadlines in fields: the hot path only writes
/// them, and the engine's one <see cref="PeerTimerScheduler"/> wakes the peer at the earliest to act on whatever is due.
/// </summary>
internal sealed class WireGuardPeer : IDisposable
{
    private readonly WireGuardEngine _engine;

    // Locks the data path threads take, as plain monitors rather than System.Threading.Lock: on Linux a thread that
    // blocks on a Lock (here: a reader meeting the timer thread) allocates, the lock's wait event the first time per
    // lock (56 B) and the thread's wait state at its first blocking wait (392 B), at whatever moment that contention
    // first happens during bulk traffic; a contended monitor waits on native state and allocates nothing.
    // (docs/wireguard-engine.md, "Allocations")
    private readonly object _keypairLock = new();
    private readonly object _stagedLock = new();
    private readonly object _timerLock = new();
    private Queue<(byte[] Buffer, int Length)>? _staged; // created by the first staged packet (most peers never need it)
    private Keypair? _previous;
    private Keypair? _current;
    private Keypair? _next;
    private EndpointState? _endpoint;
    private int _persistentKeepalive;
    private long _rxBytes;
    private long _txBytes;
    private long _rxPackets;
    private long _txPackets;
    private long _lastHandshakeUtcTicks;
    private int _stagedCount;

    // Timer deadlines in engine ticks; 0 = not set.
    private long _retransmitAt;
    private long _keepaliveAt;
    private long _newHandshakeAt;
    private long _zeroKeysAt;
    private long _persistentAt;
    private long _armedAt = long.MaxValue;
    private bool _needAnotherKeepalive;
    private bool _disposed;
    private bool _removed;

    public WireGuardPeer(WireGuardEngine engine, WireGuardPublicKey publicKey)
    {
        _engine = engine;
        PublicKey = publicKey;
        Handshake = new NoiseHandshake(publicKey.Bytes);
        Cookies = new CookieGenerator(publicKey.Bytes);
    }

    public WireGuardPublicKey PublicKey { get; }

    /// <summary>Serializes handshake work for this peer (never held while sending data).</summary>
    public Lock HandshakeLock { get; } = new();

    public NoiseHandshake Handshake { get; }

    public CookieGenerator Cookies { get; }

    /// <summary>Handshake retries since the last first attempt (timer thread and handshake path).</summary>
    public int HandshakeAttempts;

    /// <summary>Whether the receive-side "last minute" rekey was already started for the current keypair.</summary>
    public bool SentLastMinuteHandshake;

    public bool IsRemoved
    {
        get => Volatile.Read(ref _removed);
        set => Volatile.Write(ref _removed, value);
    }

    /// <summary>Order of creation, so snapshots list peers as they were added (as <c>wg showconf</c> expects).</summary>
    public long Sequence { get; init; }

    public IPEndPoint? Endpoint => Volatile.Read(ref _endpoint)?.EndPoint;

    public ushort PersistentKeepalive
    {
        get => (ushort)Volatile.Read(ref _persistentKeepalive);
        set => Volatile.Write(ref _persistentKeepalive, value);
    }

    public Keypair? Current => Volatile.Read(ref _current);

    public Keypair? Next => Volatile.Read(ref _next);

    public long RxBytes => Interlocked.Read(ref _rxBytes);

    public long TxBytes => Interlocked.Read(ref _txBytes);

    public DateTimeOffset? LastHandshake
    {
        get
        {
            var ticks = Interlocked.Read(ref _lastHandshakeUtcTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    public bool HasStagedPackets => Volatile.Read(ref _stagedCount) > 0;

    public void AddRx(int bytes)
    {
        Interlocked.Add(ref _rxBytes, bytes);
        Interlocked.Increment(ref _rxPackets);
    }

    public void AddTx(int bytes)
    {
        Interlocked.Add(ref _txBytes, bytes);
        Interlocked.Increment(ref _txPackets);
    }

    /// <summary>Datagrams received from the peer.</summary>
    public long RxPackets => Interlocked.Read(ref _rxPackets);

    /// <summary>Datagrams sent to the peer.</summary>
    public long TxPackets => Interlocked.Read(ref _txPackets);

    /// <summary>Sets the endpoint (a copy); no allocation when it is unchanged.</summary>
    public void SetEndpoint(IPEndPoint endpoint)
    {
        var current = Volatile.Read(ref _endpoint);
        if (current is null || !current.EndPoint.Equals(endpoint))
        {
            var copy = new IPEndPoint(endpoint.Address, endpoint.Port);
            Volatile.Write(ref _endpoint, new EndpointState(copy, copy.Serialize()));
        }
    }

    /// <summary>Sets the endpoint from a raw socket address; compares without allocating, copies only on change.</summary>
    public void SetEndpoint(SocketAddress address)
    {
        var current = Volatile.Read(ref _endpoint);
        if (current is null || !SameAddress(current.Address, address))
        {
            // the raw address stays for the allocation-free comparison
            var endpoint = ToEndPoint(address);
            var raw = new SocketAddress(address.Family, address.Size);
            address.Buffer.Span[..address.Size].CopyTo(raw.Buffer.Span);
            Volatile.Write(ref _endpoint, new EndpointState(endpoint, raw));
        }
    }

    /// <summary>
    /// The endpoint of a received source address as the peer sees itself (and <c>wg show</c> prints it): an IPv4 peer on
    /// a dual-stack socket arrives as ::ffff:a.b.c.d and is kept as a.b.c.d.
    /// </summary>
    internal static IPEndPoint ToEndPoint(SocketAddress address)
    {
        var endpoint = (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(address);
        return endpoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endpoint.Address.MapToIPv4(), endpoint.Port) : endpoint;
    }

    // SocketAddress.Equals also compares the unused tail of a buffer bigger than the address (an IPv4 source read
    // into an IPv6-sized SocketAddress), so compare the used bytes only
    private static bool SameAddress(SocketAddress a, SocketAddress b) =>
        a.Size == b.Size && a.Buffer.Span[..a.Size].SequenceEqual(b.Buffer.Span[..b.Size]);

    /// <summary>The endpoint in both forms, swapped as one reference.</summary>
    private sealed record EndpointState(IPEndPoint EndPoint, SocketAddress Address);

    // ---- keypairs ------------------------------------------------------------------------------------------------

    /// <summary>Installs a new session: the initiator uses it at once, the responder keeps it as "next" until data arrives under it.</summary>
    public void BeginSession(Keypair keypair)
    {
        Keypair? retireA, retireB;
        lock (_keypairLock)
        {
            if (keypair.IsInitiator)
            {
                if (_next is not null)
                {
                    retireA = _previous;
                    retireB = _current;
                    _previous = _next;
                    _next = null;
                }
                else
                {
                    retireA = _previous;
                    retireB = null;
                    _previous = _current;
                }

                Volatile.Write(ref _current, keypair);
            }
            else
            {
                retireA = _next;
                retireB = _previous;
                _previous = null;
                Volatile.Write(ref _next, keypair);
            }

            SentLastMinuteHandshake = false;
        }

        _engine.DeleteKeypair(retireA);
        _engine.DeleteKeypair(retireB);
    }

    /// <summary>Promotes "next" to "current" when data arrived under it; true when that happened.</summary>
    public bool ReceivedWithKeypair(Keypair keypair)
    {
        if (!ReferenceEquals(Volatile.Read(ref _next), keypair))
        {
            return false;
        }

        Keypair? retire;
        lock (_keypairLock)
        {
            if (!ReferenceEquals(_next, keypair))
            {
                return false;
            }

            retire = _previous;
            _previous = _current;
            Volatile.Write(ref _current, keypair);
            _next = null;
            SentLastMinuteHandshake = false;
        }

        _engine.DeleteKeypair(retire);
        return true;
    }

    /// <summary>Erases every keypair (zero-key timer, removal, private key change).</summary>
    public void ClearKeypairs()
    {
        Keypair? a, b, c;
        lock (_keypairLock)
        {
            (a, b, c) = (_previous, _current, _next);
            _previous = null;
            Volatile.Write(ref _current, null);
            _next = null;
        }

        _engine.DeleteKeypair(a);
        _engine.DeleteKeypair(b);
        _engine.DeleteKeypair(c);
    }

    /// <summary>
    /// Stops sending with the current and next keypairs unless they were derived under <paramref name="keep"/> (the
    /// private key changed): the next packet starts a handshake under the key in force. Receiving goes on, so packets
    /// in flight still arrive.
    /// </summary>
    public void ExpireKeypairsNotDerivedUnder(StaticIdentity? keep)
    {
        lock (_keypairLock)
        {
            foreach (var keypair in (ReadOnlySpan<Keypair?>)[_current, _next])
            {
                if (keypair is not null && (keep is null || !ReferenceEquals(keypair.Identity, keep)))
                {
                    keypair.ExhaustSendCounter();
                }
            }
        }
    }

    public void MarkHandshakeComplete(DateTimeOffset utcNow)
    {
        Interlocked.Exchange(ref _lastHandshakeUtcTicks, utcNow.UtcTicks);
        Volatile.Write(ref HandshakeAttempts, 0);
        lock (_timerLock)
        {
            _retransmitAt = 0;
        }
    }

    // ---- staged packets ------------------------------------------------------------------------------------------

    /// <summary>Copies a packet into the queue of packets waiting for a session (oldest dropped past the limit).</summary>
    public void Stage(ReadOnlySpan<byte> packet)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(packet.Length, 1));
        packet.CopyTo(buffer);
        (byte[] Buffer, int Length) dropped = default;

        // a transport that calls back into the engine on this thread during a flush must not take the head the
        // flush is working on: then the new packet is the one dropped
        var insideFlush = Monitor.IsEntered(_stagedLock);
        lock (_stagedLock)
        {
            _staged ??= new Queue<(byte[] Buffer, int Length)>();
            if (insideFlush && _staged.Count >= WireGuardTimers.MaxStagedPackets)
            {
                dropped = (buffer, packet.Length);
            }
            else
            {
                _staged.Enqueue((buffer, packet.Length));
                if (_staged.Count > WireGuardTimers.MaxStagedPackets)
                {
                    dropped = _staged.Dequeue();
                }
            }

            Volatile.Write(ref _stagedCount, _staged.Count);
        }

        if (dropped.Buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(dropped.Buffer);
            _engine.Counters.Drop(WireGuardDropReason.QueueOverflow);
        }
    }

    /// <summary>
    /// Sends the queued packets in order through the engine's current session until that fails (no usable session);
    /// returns false then. The queue lock is held throughout so two flushing threads cannot reorder or double-send.
    /// </summary>
    public bool FlushStaged(WireGuardEngine engine)
    {
        if (Monitor.IsEntered(_stagedLock))
        {
            return true; // re-entered through a synchronous transport: the outer flush sends the rest
        }

        lock (_stagedLock)
        {
            while (_staged is not null && _staged.TryPeek(out var item))
            {
                if (!engine.TrySendStaged(this, item.Buffer.AsSpan(0, item.Length)))
                {
                    return false;
                }

                // the head is still ours unless something re-entered and changed the queue
                if (_staged.TryPeek(out var head) && ReferenceEquals(head.Buffer, item.Buffer))
                {
                    _staged.Dequeue();
                    ArrayPool<byte>.Shared.Return(item.Buffer);
                }

                Volatile.Write(ref _stagedCount, _staged.Count);
            }
        }

        return true;
    }

    /// <summary>Drops every queued packet (counted), e.g. after giving up on the handshake.</summary>
    public void DropStaged()
    {
        if (Monitor.IsEntered(_stagedLock))
        {
            return; // never pull buffers from under a flush on this thread
        }

        lock (_stagedLock)
        {
            while (_staged is not null && _staged.TryDequeue(out var item))
            {
                ArrayPool<byte>.Shared.Return(item.Buffer);
                _engine.Counters.Drop(WireGuardDropReason.QueueOverflow);
            }

            Volatile.Write(ref _stagedCount, 0);
        }
    }

    // ---- timers (wireguard-go's timer events, as deadlines) ------------------------------------------------------

    /// <summary>An initiation was sent: retransmit after Rekey-Timeout plus jitter unless a response comes.</summary>
    public void TimerHandshakeInitiated(long now) => SetDeadline(ref _retransmitAt, now + RekeyTimeoutWithJitter(), onlyIfUnset: false);

    /// <summary>Data was sent: expect something back within Keepalive-Timeout + Rekey-Timeout.</summary>
    public void TimerDataSent(long now)
    {
        if (Volatile.Read(ref _newHandshakeAt) == 0)
        {
            SetDeadline(ref _newHandshakeAt, now + WireGuardTimers.KeepaliveTimeout.Ticks + RekeyTimeoutWithJitter(), onlyIfUnset: true);
        }
    }

    /// <summary>Data was received: answer with a keepalive if we send nothing within Keepalive-Timeout.</summary>
    public void TimerDataReceived(long now)
    {
        if (Volatile.Read(ref _keepaliveAt) == 0)
        {
            SetDeadline(ref _keepaliveAt, now + WireGuardTimers.KeepaliveTimeout.Ticks, onlyIfUnset: true);
        }
        else
        {
            Volatile.Write(ref _needAnotherKeepalive, true);
        }
    }

    /// <summary>Any authenticated packet was sent: no passive keepalive needed.</summary>
    public void TimerAnyAuthenticatedPacketSent()
    {
        if (Volatile.Read(ref _keepaliveAt) != 0)
        {
            Volatile.Write(ref _keepaliveAt, 0);
        }
    }

    /// <summary>Any authenticated packet was received: the peer is alive, no new handshake needed for lack of answers.</summary>
    public void TimerAnyAuthenticatedPacketReceived()
    {
        if (Volatile.Read(ref _newHandshakeAt) != 0)
        {
            Volatile.Write(ref _newHandshakeAt, 0);
        }
    }

    /// <summary>Any authenticated packet either way: push the persistent keepalive out.</summary>
    public void TimerAnyAuthenticatedPacketTraversal(long now)
    {
        var interval = PersistentKeepalive;
        if (interval > 0)
        {
            // Lock-free on the data path: pushing the deadline later needs no re-arm (the timer wakes early, finds
            // nothing due and re-arms). OnTimer publishes "not armed" before it reads the deadlines, so a deadline
            // written here is either seen by it or seen as needing an arm here (full fences on both sides).
            var at = now + (interval * TimeSpan.TicksPerSecond);
            Interlocked.Exchange(ref _persistentAt, at);
            if (at >= Interlocked.Read(ref _armedAt))
            {
                return;
            }

            SetDeadline(ref _persistentAt, at, onlyIfUnset: false);
        }
    }

    /// <summary>A session was derived: erase key material after 3 x Reject-After-Time unless a new one comes.</summary>
    public void TimerSessionDerived(long now) => SetDeadline(ref _zeroKeysAt, now + WireGuardTimers.ZeroKeyMaterialAfter.Ticks, onlyIfUnset: false);

    /// <summary>Persistent keepalive changed: send one now-ish (as wg does when it is turned on).</summary>
    public void TimerPersistentKeepaliveChanged(long now)
    {
        if (PersistentKeepalive > 0)
        {
            SetDeadline(ref _persistentAt, now, onlyIfUnset: false);
        }
        else
        {
            Volatile.Write(ref _persistentAt, 0);
        }
    }

    public void StopTimers()
    {
        lock (_timerLock)
        {
            _retransmitAt = _keepaliveAt = _newHandshakeAt = _zeroKeysAt = _persistentAt = 0;
            Interlocked.Exchange(ref _armedAt, long.MaxValue); // entries still in the scheduler are stale now
        }
    }

    private static long RekeyTimeoutWithJitter() =>
        WireGuardTimers.RekeyTimeout.Ticks + (Random.Shared.Next(WireGuardTimers.MaxJitterMilliseconds + 1) * TimeSpan.TicksPerMillisecond);

    private void SetDeadline(ref long field, long at, bool onlyIfUnset)
    {
        lock (_timerLock)
        {
            if (_disposed || (onlyIfUnset && field != 0))
            {
                return;
            }

            Volatile.Write(ref field, at);
            if (at < _armedAt)
            {
                Interlocked.Exchange(ref _armedAt, at);
                _engine.Timers.Schedule(this, at);
            }
        }
    }

    /// <summary>Whether a scheduler entry for <paramref name="at"/> is still wanted (not removed, still the armed deadline).</summary>
    public bool IsArmedFor(long at) => !IsRemoved && !Volatile.Read(ref _disposed) && Interlocked.Read(ref _armedAt) == at;

    /// <summary>The scheduler's wake-up for deadline <paramref name="at"/>; ignored unless it is still the one armed.</summary>
    public void OnTimerDue(long at)
    {
        bool retransmit = false, keepalive = false, newHandshake = false, zeroKeys = false, persistent = false;
        lock (_timerLock)
        {
            if (_disposed || Interlocked.Read(ref _armedAt) != at)
            {
                return;
            }

            Interlocked.Exchange(ref _armedAt, long.MaxValue);
            var now = _engine.NowTicks;
            retransmit = Due(ref _retransmitAt, now);
            keepalive = Due(ref _keepaliveAt, now);
            newHandshake = Due(ref _newHandshakeAt, now);
            zeroKeys = Due(ref _zeroKeysAt, now);
            persistent = Due(ref _persistentAt, now);
            if (keepalive && _needAnotherKeepalive)
            {
                _needAnotherKeepalive = false;
                _keepaliveAt = now + WireGuardTimers.KeepaliveTimeout.Ticks;
            }

            var next = long.MaxValue;
            foreach (var deadline in (ReadOnlySpan<long>)[_retransmitAt, _keepaliveAt, _newHandshakeAt, _zeroKeysAt, _persistentAt])
            {
                if (deadline != 0 && deadline < next)
                {
                    next = deadline;
                }
            }

            Interlocked.Exchange(ref _armedAt, next);
            if (next != long.MaxValue)
            {
                _engine.Timers.Schedule(this, next);
            }
        }

        if (retransmit)
        {
            _engine.OnRetransmitHandshake(this);
        }

        if (newHandshake)
        {
            _engine.OnNewHandshake(this);
        }

        if (keepalive || persistent)
        {
            _engine.OnKeepalive(this);
        }

        if (zeroKeys)
        {
            _engine.OnZeroKeyMaterial(this);
        }
    }

    /// <summary>After giving up: no passive keepalive, and erase what is left after 3 x Reject-After-Time unless already scheduled.</summary>
    public void TimerGaveUp(long now)
    {
        Volatile.Write(ref _keepaliveAt, 0);
        SetDeadline(ref _zeroKeysAt, now + WireGuardTimers.ZeroKeyMaterialAfter.Ticks, onlyIfUnset: true);
    }

    private static bool Due(ref long deadline, long now)
    {
        if (deadline != 0 && deadline <= now)
        {
            deadline = 0;
            return true;
        }

        return false;
    }

    public void Dispose()
    {
        lock (_timerLock)
        {
            _disposed = true;
        }

        Interlocked.Exchange(ref _armedAt, long.MaxValue);
        DropStaged();
        ClearKeypairs();
        lock (HandshakeLock)
        {
            Handshake.Clear();
            CryptographicOperations.ZeroMemory(Handshake.PresharedKey);
            CryptographicOperations.ZeroMemory(Handshake.StaticStatic);
        }
    }
}
