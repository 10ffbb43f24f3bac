using System.Net;
using System.Net.Sockets;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>The data path allocation counter: what registered threads allocate, readable from another thread.</summary>
public sealed class DataPathAllocationsTests
{
    /// <summary>Keeps the last datagram in one reused buffer (no allocation), so a loop can feed it to the other engine.</summary>
    private sealed class LastDatagramTransport : IWireGuardTransport
    {
        public byte[] Last { get; } = new byte[2048];

        public int LastLength { get; private set; }

        public int TunPackets { get; private set; }

        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination)
        {
            datagram.CopyTo(Last);
            LastLength = datagram.Length;
        }

        public void WriteToTun(ReadOnlySpan<byte> ipPacket) => TunPackets++;
    }

    [Fact]
    public void What_a_registered_thread_allocates_is_counted_and_readable_from_another_thread()
    {
        var counter = new DataPathAllocations();
        DataPathThread? registered = null;
        var worker = new Thread(() =>
        {
            registered = counter.Register("worker");
            var keep = new List<byte[]>();
            for (var i = 0; i < 100; i++)
            {
                keep.Add(new byte[1024]);
            }

            registered.Sample(packets: 100);
            GC.KeepAlive(keep);
        });
        worker.Start();
        worker.Join();

        Assert.InRange(counter.AllocatedBytes, 100 * 1024, 1024 * 1024);
        Assert.Equal(100, counter.Packets);
        Assert.Equal("worker", Assert.Single(counter.Threads).Name);

        // only the registering thread may sample (another thread's figure would be meaningless)
        Assert.Throws<InvalidOperationException>(() => registered!.Sample());
    }

    [Fact]
    public void Encrypting_and_decrypting_on_a_registered_thread_allocates_nothing_in_the_steady_state()
    {
        var time = new FakeTimeProvider();
        var aTransport = new LastDatagramTransport();
        var bTransport = new LastDatagramTransport();
        using var aKey = WireGuardSecretKey.GeneratePrivateKey();
        using var bKey = WireGuardSecretKey.GeneratePrivateKey();
        using var a = new WireGuardEngine(aTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = aKey };
        using var b = new WireGuardEngine(bTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = bKey };
        var aEndpoint = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 51820);
        var aAddress = aEndpoint.Serialize();
        var bEndpoint = new IPEndPoint(IPAddress.Parse("198.51.100.1"), 51820);
        a.SetPeer(new WireGuardPeerConfig { PublicKey = b.PublicKey, Endpoint = bEndpoint, AllowedIps = [EnginePair.BTunnel] });
        b.SetPeer(new WireGuardPeerConfig { PublicKey = a.PublicKey, AllowedIps = [EnginePair.ATunnel] });
        var packet = EnginePair.AToB(1000);
        a.HandleTunPacket(packet); // initiation
        b.HandleDatagram(aTransport.Last.AsSpan(0, aTransport.LastLength), aEndpoint);
        a.HandleDatagram(bTransport.Last.AsSpan(0, bTransport.LastLength), bEndpoint); // response; A sends the queued packet
        b.HandleDatagram(aTransport.Last.AsSpan(0, aTransport.LastLength), aAddress);
        Assert.Equal(1, bTransport.TunPackets);

        void RoundTrips(int count)
        {
            for (var i = 0; i < count; i++)
            {
                a.HandleTunPacket(packet);
                b.HandleDatagram(aTransport.Last.AsSpan(0, aTransport.LastLength), aAddress);
            }
        }

        RoundTrips(100); // warm-up
        var thread = a.DataPathAllocations.Register("test");
        RoundTrips(5000);
        thread.Sample(packets: 5000);

        Assert.Equal(5101, bTransport.TunPackets);
        Assert.Equal(5000, a.DataPathAllocations.Packets);
        Assert.Equal(0, a.DataPathAllocations.AllocatedBytes);
    }

    [Theory]
    [InlineData(typeof(WireGuardPeer))]
    [InlineData(typeof(Keypair))]
    [InlineData(typeof(PeerTimerScheduler))]
    public void Locks_the_data_path_takes_are_monitors_which_allocate_nothing_when_contended(Type type)
    {
        // On Linux a thread that blocks on a System.Threading.Lock allocates (its wait state, then the lock's wait
        // event: 392 B and 56 B, once each), at the first moment a reader meets the timer thread on that lock: seen as
        // 56-88 B in about one iperf3 run in ten. A contended monitor allocates nothing. The handshake lock is the
        // exception: it is taken to make a new session, which allocates its keypair anyway.
        var locks = type.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)
            .Where(f => f.FieldType == typeof(Lock) && !f.Name.Contains("HandshakeLock", StringComparison.Ordinal))
            .Select(f => f.Name)
            .ToList();
        Assert.Empty(locks);
        Assert.Contains(type.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic), f => f.Name.EndsWith("Lock", StringComparison.OrdinalIgnoreCase) && f.FieldType == typeof(object));

        // and the property this relies on, on this runtime: a blocked monitor waiter allocates nothing
        var monitor = new object();
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            lock (monitor)
            {
                held.Set();
                release.Wait();
            }
        });
        holder.Start();
        held.Wait();
        long allocated = -1;
        var waiter = new Thread(() =>
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            lock (monitor)
            {
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            }
        });
        waiter.Start();
        Assert.True(SpinWait.SpinUntil(() => (waiter.ThreadState & ThreadState.WaitSleepJoin) != 0, TimeSpan.FromSeconds(10)), "the waiter never blocked");
        release.Set();
        waiter.Join();
        holder.Join();
        Assert.Equal(0, allocated);
    }
}
