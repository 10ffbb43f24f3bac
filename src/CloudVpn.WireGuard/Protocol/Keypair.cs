namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// One session's transport keys: send key and counter, receive key and replay window. Readers take a reference
/// (<see cref="TryAcquire"/>/<see cref="Release"/>) so the keys are erased only when the last packet using them is done.
/// </summary>
internal sealed class Keypair
{
    private const int RetiredFlag = 1 << 30;

    private nint _keys; // TransportKeyMemory slot: send key, then receive key; 0 once erased
    private readonly ReplayWindow _replay = new();
    private readonly object _replayLock = new(); // a monitor, not a Lock: see WireGuardPeer's data path locks
    private long _sendCounter = -1;
    private int _references;
    private int _disposed;
    private bool _sendExhausted;

    public Keypair(WireGuardPeer peer, ReadOnlySpan<byte> sendKey, ReadOnlySpan<byte> receiveKey, bool initiator, uint localIndex, uint remoteIndex, long createdTicks,
        StaticIdentity? identity = null)
    {
        Peer = peer;
        Identity = identity;
        if (sendKey.Length != 32 || receiveKey.Length != 32)
        {
            throw new ArgumentException("Transport keys are 32 bytes each.");
        }

        _keys = TransportKeyMemory.Rent();
        sendKey.CopyTo(KeyBytes(0));
        receiveKey.CopyTo(KeyBytes(32));
        IsInitiator = initiator;
        LocalIndex = localIndex;
        RemoteIndex = remoteIndex;
        CreatedTicks = createdTicks;
    }

    public WireGuardPeer Peer { get; }

    /// <summary>The local static identity the session was derived under (a key change expires sessions of other identities).</summary>
    public StaticIdentity? Identity { get; }

    public bool IsInitiator { get; }

    public uint LocalIndex { get; }

    public uint RemoteIndex { get; }

    public long CreatedTicks { get; }

    /// <summary>The send key (empty once erased); read only while holding a reference (<see cref="TryAcquire"/>).</summary>
    public ReadOnlySpan<byte> SendKey => KeyBytes(0);

    /// <summary>The receive key (empty once erased); read only while holding a reference.</summary>
    public ReadOnlySpan<byte> ReceiveKey => KeyBytes(32);

    private unsafe Span<byte> KeyBytes(int offset)
    {
        var keys = Volatile.Read(ref _keys);
        return keys == 0 ? [] : new Span<byte>((byte*)keys + offset, 32);
    }

    /// <summary>Moves the send counter (tests of the message limits, which no test could reach by sending).</summary>
    internal void SkipSendCounterTo(ulong next) => Volatile.Write(ref _sendCounter, (long)(next - 1));

    /// <summary>Takes the next send counter (the first is 0).</summary>
    public ulong NextSendCounter() => (ulong)Interlocked.Increment(ref _sendCounter);

    /// <summary>True once <see cref="ExhaustSendCounter"/> was called: the keypair no longer sends.</summary>
    public bool SendExhausted => Volatile.Read(ref _sendExhausted);

    /// <summary>Stops sending with this keypair so the next packet starts a handshake (used when the private key changes).</summary>
    public void ExhaustSendCounter() => Volatile.Write(ref _sendExhausted, true);

    public bool MayAccept(ulong counter) => _replay.MayAccept(counter, WireGuardTimers.RejectAfterMessages);

    public bool TryAcceptCounter(ulong counter)
    {
        lock (_replayLock)
        {
            return _replay.TryAccept(counter, WireGuardTimers.RejectAfterMessages);
        }
    }

    public bool TryAcquire()
    {
        while (true)
        {
            var current = Volatile.Read(ref _references);
            if ((current & RetiredFlag) != 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == RetiredFlag)
        {
            DisposeKeys();
        }
    }

    /// <summary>No new users; the keys are erased when the current ones are done.</summary>
    public void Retire()
    {
        var previous = Interlocked.Or(ref _references, RetiredFlag);
        if (previous == 0)
        {
            DisposeKeys();
        }
    }

    private void DisposeKeys()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            TransportKeyMemory.Return(Interlocked.Exchange(ref _keys, 0));
        }
    }
}
