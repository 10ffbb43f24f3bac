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
}
