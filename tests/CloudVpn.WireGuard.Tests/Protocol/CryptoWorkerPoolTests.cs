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
}
