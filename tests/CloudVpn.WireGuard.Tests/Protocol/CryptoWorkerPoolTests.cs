using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>The pool that spreads a batch's cryptography over cores: every item exactly once, done when Run returns.</summary>
public sealed class CryptoWorkerPoolTests
{
    /// <summary>Counts how often each item was processed and by how many threads.</summary>
    private sealed class CountingWork(int capacity) : IRangeWork
    {
        public int[] Hits { get; } = new int[capacity];

        public HashSet<int> Threads { get; } = [];

        public void Process(int start, int end)
        {
            lock (Threads)
            {
                Threads.Add(Environment.CurrentManagedThreadId);
            }

            for (var i = start; i < end; i++)
            {
                Interlocked.Increment(ref Hits[i]);
                Thread.SpinWait(200); // long enough that the workers get a share
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void Every_item_is_processed_exactly_once_and_before_Run_returns_batch_after_batch(int workers)
    {
        using var pool = new CryptoWorkerPool(workers);
        var job = new CryptoWorkerPool.Job();
        var random = new Random(7);
        var threads = new HashSet<int>();
        for (var round = 0; round < 600; round++)
        {
            var items = random.Next(0, 130);
            var work = new CountingWork(130);
            pool.Run(job, work, items);
            for (var i = 0; i < 130; i++)
            {
                Assert.Equal(i < items ? 1 : 0, work.Hits[i]);
            }

            threads.UnionWith(work.Threads);
        }

        // with workers, some batches were shared; without, the owner did everything
        if (workers == 0)
        {
            Assert.Single(threads);
        }
        else
        {
            Assert.True(threads.Count > 1, "no batch was ever shared with a worker");
        }
    }

    [Fact]
    public async Task Two_owners_share_the_workers_without_mixing_their_batches()
    {
        using var pool = new CryptoWorkerPool(2);
        var failures = 0;
        var owners = Enumerable.Range(0, 2).Select(seed => Task.Factory.StartNew(() =>
        {
            var job = new CryptoWorkerPool.Job();
            var random = new Random(seed);
            for (var round = 0; round < 400; round++)
            {
                var items = random.Next(1, 100);
                var work = new CountingWork(100);
                pool.Run(job, work, items);
                for (var i = 0; i < 100; i++)
                {
                    if (work.Hits[i] != (i < items ? 1 : 0))
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            }
        }, TaskCreationOptions.LongRunning)).ToArray();

        await Task.WhenAll(owners).WaitAsync(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken);
        Assert.Equal(0, failures);
    }

    [Fact]
    public void A_small_batch_stays_on_the_owner_thread()
    {
        using var pool = new CryptoWorkerPool(3) { MinParallelItems = 8 };
        var work = new CountingWork(7);
        pool.Run(new CryptoWorkerPool.Job(), work, 7);
        Assert.Equal([Environment.CurrentManagedThreadId], work.Threads);
    }

    /// <summary>Touches its items and nothing else (allocates nothing).</summary>
    private sealed class QuietWork : IRangeWork
    {
        public int[] Hits { get; } = new int[64];

        public void Process(int start, int end)
        {
            for (var i = start; i < end; i++)
            {
                Interlocked.Increment(ref Hits[i]);
            }
        }
    }

    /// <summary>A range taken by a worker keeps that worker busy until released; the owner's own ranges wait for that.</summary>
    private sealed class StallingWork(int ownerThread) : IRangeWork
    {
        public ManualResetEventSlim WorkerStalled { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public void Process(int start, int end)
        {
            if (Environment.CurrentManagedThreadId != ownerThread)
            {
                WorkerStalled.Set();
                Release.Wait(TimeSpan.FromSeconds(30));
            }
            else
            {
                WorkerStalled.Wait(TimeSpan.FromSeconds(30));
            }
        }
    }

    [Fact]
    public async Task Batches_posted_while_the_workers_are_busy_allocate_nothing_and_workers_are_counted()
    {
        // While the only worker is held up (on a busy machine: descheduled), an owner goes on posting batch after
        // batch and does them alone. Jobs used to pile up in a queue then, which grew a segment now and then on the
        // owner's thread (1-4 KB seen in bulk runs); a fixed slot per posted job does not grow.
        var allocations = new DataPathAllocations();
        using var pool = new CryptoWorkerPool(1, allocations);
        var job = new CryptoWorkerPool.Job();
        var work = new QuietWork();
        pool.Run(job, work, 64); // warm-up: the paths taken once

        StallingWork? stalling = null;
        var stalled = Task.Factory.StartNew(() =>
        {
            stalling = new StallingWork(Environment.CurrentManagedThreadId);
            pool.Run(new CryptoWorkerPool.Job(), stalling, 16);
        }, TaskCreationOptions.LongRunning);
        Assert.True(SpinWait.SpinUntil(() => stalling?.WorkerStalled.IsSet == true, TimeSpan.FromSeconds(30)), "the worker took no range");

        var owner = allocations.Register("owner");
        for (var round = 0; round < 1000; round++)
        {
            pool.Run(job, work, 64);
        }

        owner.Sample(packets: 1000 * 64);
        stalling!.Release.Set();
        await stalled.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.All(work.Hits, hits => Assert.Equal(1001, hits));
        Assert.Equal(0, owner.AllocatedBytes);

        // the worker registered itself and allocates nothing per batch either
        var worker = Assert.Single(allocations.Threads, t => t.Name == "crypto-worker 0");
        var workerBefore = worker.AllocatedBytes;
        for (var round = 0; round < 2000; round++)
        {
            pool.Run(job, work, 64);
        }

        Assert.Equal(workerBefore, worker.AllocatedBytes);
    }

    [Fact]
    public async Task More_owners_at_once_than_slots_each_get_their_batches_done()
    {
        using var pool = new CryptoWorkerPool(1);
        var owners = CryptoWorkerPool.Slots + 4;
        var failures = 0;
        using var start = new Barrier(owners);
        var tasks = Enumerable.Range(0, owners).Select(seed => Task.Factory.StartNew(() =>
        {
            var job = new CryptoWorkerPool.Job();
            start.SignalAndWait(TestContext.Current.CancellationToken);
            for (var round = 0; round < 50; round++)
            {
                var work = new CountingWork(64);
                pool.Run(job, work, 64);
                if (work.Hits.Any(h => h != 1))
                {
                    Interlocked.Increment(ref failures);
                }
            }
        }, TaskCreationOptions.LongRunning)).ToArray();

        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken);
        Assert.Equal(0, failures);
    }
}
