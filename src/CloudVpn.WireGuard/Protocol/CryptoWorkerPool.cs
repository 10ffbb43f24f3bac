using System.Collections.Concurrent;

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
/// workers only ever seal or open independent packets. No allocation per batch: each owner reuses one
/// <see cref="Job"/>, and the work is an object it keeps, not a closure.
/// </summary>
internal sealed class CryptoWorkerPool : IDisposable
{
    private readonly ConcurrentQueue<Job> _queue = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread[] _threads;
    private volatile bool _stopping;

    /// <summary>Starts <paramref name="workers"/> threads (0: the owner does everything itself).</summary>
    public CryptoWorkerPool(int workers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(workers);
        _threads = new Thread[workers];
        for (var i = 0; i < workers; i++)
        {
            _threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"wg-crypto {i}" };
            _threads[i].Start();
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

        job.Work = work;
        job.Items = items;
        job.ChunkSize = chunkSize;
        Volatile.Write(ref job.Pending, chunks);
        Interlocked.Exchange(ref job.State, (long)chunks << 32);

        _queue.Enqueue(job);
        _wake.Release(Math.Min(workers, chunks - 1));

        job.Help();
        var spin = default(SpinWait);
        while (Volatile.Read(ref job.Pending) > 0)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    private void WorkerLoop()
    {
        while (true)
        {
            _wake.Wait();
            if (_stopping)
            {
                return;
            }

            while (_queue.TryDequeue(out var job))
            {
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
