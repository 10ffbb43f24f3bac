namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Managed bytes allocated by the threads that carry packets (TUN readers, UDP readers, crypto workers), readable at
/// any time from any thread, e.g. by a bench script during an iperf3 run. Each data path thread registers once
/// (<see cref="Register"/>, on that thread) and calls <see cref="DataPathThread.Sample(int)"/> after each batch:
/// the sample is <see cref="GC.GetAllocatedBytesForCurrentThread"/> minus its value at registration (a read of the
/// thread's allocation context, a few nanoseconds, allocating nothing). The steady-state goal is zero.
/// </summary>
/// <remarks>
/// The counter sees what the data path threads themselves allocate, including inside the transport and the TUN/UDP
/// code they call; allocations made for them on other threads (timers, the thread pool) are not counted. Values are
/// as of each thread's last sample.
/// </remarks>
public sealed class DataPathAllocations
{
    private readonly Lock _lock = new();
    private DataPathThread[] _threads = [];

    /// <summary>Registers the calling thread under <paramref name="name"/>; call from the data path thread itself.</summary>
    public DataPathThread Register(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var thread = new DataPathThread(name);
        lock (_lock)
        {
            _threads = [.. _threads, thread];
        }

        thread.StartCounting(); // after the registration's own allocations
        return thread;
    }

    /// <summary>Bytes allocated by every registered thread since it registered (as of its last sample).</summary>
    public long AllocatedBytes
    {
        get
        {
            long total = 0;
            foreach (var thread in Volatile.Read(ref _threads))
            {
                total += thread.AllocatedBytes;
            }

            return total;
        }
    }

    /// <summary>Packets the registered threads reported with their samples.</summary>
    public long Packets
    {
        get
        {
            long total = 0;
            foreach (var thread in Volatile.Read(ref _threads))
            {
                total += thread.Packets;
            }

            return total;
        }
    }

    /// <summary>The registered threads (a snapshot), for a per-thread breakdown.</summary>
    public IReadOnlyList<DataPathThread> Threads => Volatile.Read(ref _threads);
}

/// <summary>One registered data path thread: its allocation baseline and last sample.</summary>
public sealed class DataPathThread
{
    private readonly int _threadId;
    private long _baseline;
    private long _allocated;
    private long _packets;

    internal DataPathThread(string name)
    {
        Name = name;
        _threadId = Environment.CurrentManagedThreadId;
    }

    internal void StartCounting() => _baseline = GC.GetAllocatedBytesForCurrentThread();

    /// <summary>The name given at registration (e.g. "tun-reader-0").</summary>
    public string Name { get; }

    /// <summary>Bytes this thread allocated from registration to its last sample.</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocated);

    /// <summary>Packets reported with the samples.</summary>
    public long Packets => Interlocked.Read(ref _packets);

    /// <summary>Records this thread's allocations so far and adds <paramref name="packets"/> handled since the last sample.</summary>
    /// <exception cref="InvalidOperationException">Called from another thread than the one that registered.</exception>
    public void Sample(int packets = 0)
    {
        if (Environment.CurrentManagedThreadId != _threadId)
        {
            throw new InvalidOperationException($"DataPathThread '{Name}' must be sampled on the thread that registered it.");
        }

        Volatile.Write(ref _allocated, GC.GetAllocatedBytesForCurrentThread() - _baseline);
        if (packets != 0)
        {
            Interlocked.Add(ref _packets, packets);
        }
    }
}
