namespace CloudVpn.WireGuard.Protocol;

/// <summary>Work over the items of a batch, split in ranges that may run on different threads.</summary>
internal interface IRangeWork
{
    /// <summary>Processes items <paramref name="start"/> (inclusive) to <paramref name="end"/> (exclusive).</summary>
    void Process(int start, int end);
}

/// <summary>
/// Spreads the cryptography of a batch over cores: the thread that owns the batch (a TUN or UDP reader) posts it, the
/// workers and the owner take ranges of items until none is left, and the owner returns once every range is done. The
/// owner then handles the results in batch order, so per-peer order is what it was on the wire or the TUN device; the
/// workers only ever seal or open independent packets. No allocation per batch, nor any growth under load: each owner
/// reuses one <see cref="Job"/>, the work is an object it keeps, not a closure, and a posted job sits in one of a
/// fixed set of slots (made with the pool) until its owner is done with it, not in a queue that grows when the
/// workers fall behind.
/// </summary>
internal sealed class CryptoWorkerPool : IDisposable
{
    /// <summary>Owners that can share the workers at the same moment (a further one does its batch alone).</summary>
    internal const int Slots = 16;

    private readonly Job?[] _posted = new Job?[Slots];
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread[] _threads;
    private readonly DataPathAllocations? _allocations;
    private volatile bool _stopping;

    /// <summary>
    /// Starts <paramref name="workers"/> threads (0: the owner does everything itself); each registers with
    /// <paramref name="allocations"/>, when given, so that what it allocates counts as data path allocations.
    /// </summary>
    public CryptoWorkerPool(int workers, DataPathAllocations? allocations = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(workers);
        _allocations = allocations;
        _threads = new Thread[workers];
        for (var i = 0; i < workers; i++)
        {
            _threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"wg-crypto {i}" };
            _threads[i].Start(i);
        }
    }

    /// <summary>Worker threads (the owner of a batch works too).</summary>
    public int Workers => _threads.Length;

    /// <summary>Batches below this size are done by the owner alone (handing over costs more than it saves).</summary>
    public int MinParallelItems { get; init; } = 8;

    /// <summary>One batch being processed; its owner reuses it for the next batch.</summary>
    internal sealed class Job
    {
        internal IRangeWork? Work;
        internal int Items;
        internal int ChunkSize;
        internal int Pending;

        // chunk count (high 32 bits) and next chunk to claim (low 32 bits), in one word so that a claim reads both
        // of the same batch: a worker still holding this job from an earlier batch either claims nothing (that
        // batch is exhausted) or a valid chunk of the batch posted since
        internal long State;

        /// <summary>Claims and runs ranges until none is left.</summary>
        internal void Help()
        {
            while (true)
            {
                var state = Interlocked.Increment(ref State);
                var chunk = (int)(state & 0xFFFF_FFFF) - 1;
                var chunks = (int)(state >> 32);
                if (chunk >= chunks)
                {
                    return;
                }

                var start = chunk * ChunkSize;
                var end = Math.Min(start + ChunkSize, Items);
                try
                {
                    Work!.Process(start, end);
                }
                finally
                {
                    Interlocked.Decrement(ref Pending);
                }
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> over <paramref name="items"/> items with the workers' help and returns when all are
    /// done. <paramref name="job"/> belongs to the calling thread (one per owner, reused).
    /// </summary>
    public void Run(Job job, IRangeWork work, int items)
    {
        if (items <= 0)
        {
            return;
        }

        var workers = _threads.Length;
        if (workers == 0 || items < MinParallelItems || _stopping)
        {
            work.Process(0, items);
            return;
        }

        // small ranges balance the load; not so small that claiming them costs more than the crypto
        var chunkSize = Math.Max(2, items / ((workers + 1) * 2));
        var chunks = (items + chunkSize - 1) / chunkSize;

        var slot = ClaimSlot(job);
        if (slot < 0)
        {
            work.Process(0, items); // more owners at once than slots: this one does its batch alone
            return;
        }

        job.Work = work;
        job.Items = items;
        job.ChunkSize = chunkSize;
        Volatile.Write(ref job.Pending, chunks);
        Interlocked.Exchange(ref job.State, (long)chunks << 32);
        _wake.Release(Math.Min(workers, chunks - 1));

        job.Help();
        var spin = default(SpinWait);
        while (Volatile.Read(ref job.Pending) > 0)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        // a worker that still holds the job (it read the slot before this) claims nothing of a finished batch
        Volatile.Write(ref _posted[slot], null);
    }

    /// <summary>Puts <paramref name="job"/> in a free slot; returns it, or -1 when every slot is taken.</summary>
    private int ClaimSlot(Job job)
    {
        // a plain loop: Array.IndexOf would create an equality comparer at its first call, on a reader thread
        for (var i = 0; i < _posted.Length; i++)
        {
            if (Volatile.Read(ref _posted[i]) is null && Interlocked.CompareExchange(ref _posted[i], job, null) is null)
            {
                return i;
            }
        }

        return -1;
    }

    private void WorkerLoop(object? index)
    {
        // On .NET 10 a thread's first untimed SemaphoreSlim.Wait that blocks allocates 64 bytes when it is woken (once;
        // the second costs nothing), which here would be at the first batch of bulk traffic. After one short timed wait
        // it allocates nothing (measured in a small program: 64 B, then 0 B; with a 1 ms timed wait first: 0 B and
        // 0 B), so each worker makes that wait before its counting starts. A wake it takes is given back.
        if (_wake.Wait(1))
        {
            _wake.Release();
        }

        var allocations = _allocations?.Register($"crypto-worker {index}");
        while (true)
        {
            _wake.Wait();
            if (_stopping)
            {
                return;
            }

            for (var i = 0; i < _posted.Length; i++)
            {
                var job = Volatile.Read(ref _posted[i]);
                if (job is null)
                {
                    continue;
                }

                try
                {
                    job.Help();
                }
#pragma warning disable CA1031 // a worker must outlive a faulty range; the work records its own per-item failures
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }

            allocations?.Sample();
        }
    }

    /// <summary>Stops the workers (a batch in progress finishes on its owner's thread).</summary>
    public void Dispose()
    {
        _stopping = true;
        if (_threads.Length > 0)
        {
            _wake.Release(_threads.Length);
        }
        foreach (var thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(2));
        }

        _wake.Dispose();
    }
}
