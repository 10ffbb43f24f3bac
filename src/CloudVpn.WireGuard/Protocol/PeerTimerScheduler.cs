namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// One timer for all the peers of an engine: a min-heap of (peer, deadline) entries and a single <see cref="ITimer"/>
/// armed at the earliest. A peer keeps its deadlines in fields as before and asks for a wake-up when its earliest one
/// moves earlier; entries are never removed, a popped entry that no longer matches the peer's armed deadline is
/// stale and skipped. This replaces one <see cref="ITimer"/> per peer (a few hundred bytes and a timer-queue entry
/// each), so 100 000 idle peers cost nothing here and an idle peer has no entry at all.
/// </summary>
/// <remarks>
/// Due peers are handled in deadline order on the thread the timer fires on, one at a time and without the heap's lock,
/// so a peer's timer work may schedule again. A synchronous timer (a fake clock firing inside
/// <see cref="ITimer.Change"/>) never runs peer work under the heap's lock: the nested tick is deferred to the caller.
/// </remarks>
internal sealed class PeerTimerScheduler : IDisposable
{
    private readonly Func<long> _now;
    private readonly Action<Exception> _onError;
    private readonly ITimer _timer;
    private readonly object _lock = new(); // a monitor, not a Lock: see WireGuardPeer's data path locks
    private const int MinCompactionSize = 1024;

    // Sized up front (16 KiB each per engine): entries are added by the data path threads (a reader moving a deadline
    // earlier), so the heap must not grow under them; up to the first compaction it never does, and with at most
    // MinCompactionSize / 2 live peers it never grows at all.
    private readonly PriorityQueue<WireGuardPeer, long> _heap = new(MinCompactionSize + 1);
    private long _armedFor = long.MaxValue;
    private int _compactAbove = MinCompactionSize;
    private (WireGuardPeer Peer, long At)[] _scratch = new (WireGuardPeer, long)[MinCompactionSize + 1];
    private int _removedSinceCompaction;
    private bool _tickPending;
    private bool _disposed;

    /// <summary>
    /// Creates the scheduler on <paramref name="time"/>; <paramref name="now"/> reads engine ticks (the deadlines'
    /// clock); <paramref name="onError"/> hears of a peer's timer work that threw (the other peers still run).
    /// </summary>
    public PeerTimerScheduler(TimeProvider time, Func<long> now, Action<Exception> onError)
    {
        _now = now;
        _onError = onError;
        _timer = time.CreateTimer(static state => ((PeerTimerScheduler)state!).OnTick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Entries in the heap (live and stale), for diagnostics and tests.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _heap.Count;
            }
        }
    }

    /// <summary>Wakes <paramref name="peer"/> (<see cref="WireGuardPeer.OnTimerDue"/>) at engine tick <paramref name="at"/>.</summary>
    public void Schedule(WireGuardPeer peer, long at)
    {
        bool runNow;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _heap.Enqueue(peer, at);
            if (_heap.Count > _compactAbove)
            {
                Compact();
            }

            if (at >= _armedFor)
            {
                return;
            }

            Arm(at, _now());
            runNow = _tickPending;
        }

        if (runNow)
        {
            OnTick();
        }
    }

    /// <summary>
    /// Drops stale entries (removed peers, deadlines no longer armed) once the heap holds more than twice what was
    /// live at the last compaction, so removed peers are released and churn cannot grow the heap. Safe because a peer
    /// schedules every deadline it arms after arming it. Runs under the lock; allocates nothing.
    /// </summary>
    private void Compact()
    {
        var count = _heap.Count;
        if (_scratch.Length < count)
        {
            _scratch = new (WireGuardPeer, long)[count * 2]; // many live peers: grows with them, not per packet
        }

        var live = 0;
        while (_heap.TryDequeue(out var peer, out var at))
        {
            if (peer.IsArmedFor(at))
            {
                _scratch[live++] = (peer, at);
            }
        }

        for (var i = 0; i < live; i++)
        {
            _heap.Enqueue(_scratch[i].Peer, _scratch[i].At);
            _scratch[i] = default;
        }

        _compactAbove = Math.Max(MinCompactionSize, live * 2);
        _removedSinceCompaction = 0;
    }

    /// <summary>
    /// A peer was removed: once the removals since the last compaction are more than half the heap, compact it (so
    /// removed peers are released without waiting for their deadlines; amortized O(1) per removal).
    /// </summary>
    public void PeerRemoved()
    {
        lock (_lock)
        {
            if (!_disposed && ++_removedSinceCompaction * 2 > _heap.Count)
            {
                Compact();
            }
        }
    }

    private void Arm(long at, long now)
    {
        _armedFor = at;
        _timer.Change(at == long.MaxValue ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(Math.Max(0, at - now)), Timeout.InfiniteTimeSpan);
    }

    private void OnTick()
    {
        if (Monitor.IsEntered(_lock))
        {
            // fired synchronously inside Change under our lock: the caller runs the tick once the lock is released
            _tickPending = true;
            return;
        }

        while (true)
        {
            WireGuardPeer peer;
            long at;
            lock (_lock)
            {
                if (_disposed)
                {
                    return;
                }

                _tickPending = false;
                var now = _now();
                if (!_heap.TryPeek(out peer!, out at) || at > now)
                {
                    Arm(_heap.Count == 0 ? long.MaxValue : at, now);
                    if (!_tickPending)
                    {
                        return;
                    }

                    continue;
                }

                _heap.Dequeue();
            }

            try
            {
                peer.OnTimerDue(at);
            }
#pragma warning disable CA1031 // one peer's failure must not stop the timers of the others
            catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
            {
                _onError(e);
            }
        }
    }

    /// <summary>Stops the timer; later schedules are ignored.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _heap.Clear();
        }

        _timer.Dispose();
    }
}
