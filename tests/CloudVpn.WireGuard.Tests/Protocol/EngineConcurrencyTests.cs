using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

public sealed class EngineConcurrencyTests
{
    /// <summary>Delivers each datagram synchronously on the sending thread, as a device with several UDP readers would.</summary>
    /// <remarks>Its <see cref="WriteToTun"/> counts what the owning engine decrypted.</remarks>
    private sealed class ForwardingTransport(IPEndPoint source) : IWireGuardTransport
    {
        private int _tunPackets;

        public WireGuardEngine? Other { get; set; }

        public int TunPackets => Volatile.Read(ref _tunPackets);

        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination) => Other!.HandleDatagram(datagram, source);

        public void WriteToTun(ReadOnlySpan<byte> ipPacket) => Interlocked.Increment(ref _tunPackets);
    }

    [Fact]
    public async Task Many_threads_sending_both_ways_lose_nothing_and_break_nothing()
    {
        var time = new FakeTimeProvider();
        var aEndpoint = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 51820);
        var bEndpoint = new IPEndPoint(IPAddress.Parse("198.51.100.1"), 51820);
        var aTransport = new ForwardingTransport(aEndpoint); // what A sends arrives at B from aEndpoint
        var bTransport = new ForwardingTransport(bEndpoint);
        using var aKey = WireGuardSecretKey.GeneratePrivateKey();
        using var bKey = WireGuardSecretKey.GeneratePrivateKey();
        using var a = new WireGuardEngine(aTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = aKey };
        using var b = new WireGuardEngine(bTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = bKey };
        aTransport.Other = b;
        bTransport.Other = a;
        a.SetPeer(new WireGuardPeerConfig { PublicKey = b.PublicKey, AllowedIps = [EnginePair.BTunnel], Endpoint = bEndpoint });
        b.SetPeer(new WireGuardPeerConfig { PublicKey = a.PublicKey, AllowedIps = [EnginePair.ATunnel] });
        a.HandleTunPacket(EnginePair.AToB()); // handshake; the queued packet confirms B's side
        Assert.Equal(1, bTransport.TunPackets);

        const int Threads = 3;
        const int PerThread = 4000;
        var aPacket = EnginePair.AToB(200);
        var bPacket = EnginePair.BToA(1000);
        var tasks = new List<Task>();
        for (var t = 0; t < Threads; t++)
        {
            tasks.Add(Task.Run(() =>
            {
                for (var i = 0; i < PerThread; i++)
                {
                    a.HandleTunPacket(aPacket);
                }
            }));
            tasks.Add(Task.Run(() =>
            {
                for (var i = 0; i < PerThread; i++)
                {
                    b.HandleTunPacket(bPacket);
                }
            }));
        }

        await Task.WhenAll(tasks);
        Assert.Equal(0, a.Counters.TotalDrops);
        Assert.Equal(0, b.Counters.TotalDrops);
        Assert.Equal(1 + (Threads * PerThread), bTransport.TunPackets); // B's TUN: the first packet and the stress
        Assert.Equal(Threads * PerThread, aTransport.TunPackets);
        Assert.Equal(1, a.Counters.HandshakesCompleted);
    }

    /// <summary>Synchronous delivery that can be cut, with a hook on TUN writes (to answer from inside the engine's call).</summary>
    private sealed class ReentrantTransport(IPEndPoint source) : IWireGuardTransport
    {
        public WireGuardEngine? Other { get; set; }

        public bool Up { get; set; }

        public Action<byte[]>? OnTun { get; set; }

        public List<byte[]> Tun { get; } = [];

        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination)
        {
            if (Up)
            {
                Other!.HandleDatagram(datagram, source);
            }
        }

        public void WriteToTun(ReadOnlySpan<byte> ipPacket)
        {
            var packet = ipPacket.ToArray();
            Tun.Add(packet);
            OnTun?.Invoke(packet);
        }
    }

    [Fact]
    public void Queued_packets_flush_in_order_even_when_the_transport_calls_back_into_the_engine()
    {
        var time = new FakeTimeProvider();
        var aEndpoint = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 51820);
        var bEndpoint = new IPEndPoint(IPAddress.Parse("198.51.100.1"), 51820);
        var aTransport = new ReentrantTransport(aEndpoint);
        var bTransport = new ReentrantTransport(bEndpoint);
        using var aKey = WireGuardSecretKey.GeneratePrivateKey();
        using var bKey = WireGuardSecretKey.GeneratePrivateKey();
        using var a = new WireGuardEngine(aTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = aKey };
        using var b = new WireGuardEngine(bTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = bKey };
        aTransport.Other = b;
        bTransport.Other = a;
        a.SetPeer(new WireGuardPeerConfig { PublicKey = b.PublicKey, AllowedIps = [EnginePair.BTunnel], Endpoint = bEndpoint });
        b.SetPeer(new WireGuardPeerConfig { PublicKey = a.PublicKey, AllowedIps = [EnginePair.ATunnel] });

        // both sides queue packets while the network is down (B does not even know A's endpoint yet)
        for (byte i = 0; i < 3; i++)
        {
            a.HandleTunPacket(EnginePair.AToB(fill: (byte)(0x20 + i)));
            b.HandleTunPacket(EnginePair.BToA(fill: (byte)(0x10 + i)));
        }

        // A answers each of B's packets from inside the delivery, while its own queue is being flushed
        aTransport.OnTun = packet =>
        {
            if (packet[^1] is >= 0x10 and < 0x20)
            {
                a.HandleTunPacket(EnginePair.AToB(fill: (byte)(packet[^1] + 0x20)));
            }
        };
        aTransport.Up = bTransport.Up = true;
        time.Advance(TimeSpan.FromSeconds(6)); // A's retransmission: the whole exchange happens inside this call

        Assert.Equal(new byte[] { 0x10, 0x11, 0x12 }, aTransport.Tun.Select(p => p[^1]));
        Assert.Equal(new byte[] { 0x20, 0x21, 0x22, 0x30, 0x31, 0x32 }, bTransport.Tun.Select(p => p[^1]).Order());
        Assert.Equal(new byte[] { 0x20, 0x21, 0x22 }, bTransport.Tun.Select(p => p[^1]).Where(f => f < 0x30)); // A's queue kept its order
        Assert.Equal(0, a.Counters.Drops(WireGuardDropReason.InternalError));
        Assert.Equal(0, b.Counters.Drops(WireGuardDropReason.InternalError));
    }
}
