using System.Net;
using System.Net.Sockets;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>The <see cref="SocketAddress"/> overload of HandleDatagram: same behaviour, no allocation for known endpoints.</summary>
public sealed class EngineSocketAddressTests
{
    private sealed class CapturingTransport : IWireGuardTransport
    {
        public List<byte[]> Sent { get; } = [];

        public int TunPackets { get; private set; }

        public bool Capture { get; set; } = true;

        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination)
        {
            if (Capture)
            {
                Sent.Add(datagram.ToArray());
            }
        }

        public void WriteToTun(ReadOnlySpan<byte> ipPacket) => TunPackets++;
    }

    [Fact]
    public void A_socket_address_from_a_real_receive_drives_handshake_data_and_roaming_without_allocating()
    {
        // what Socket.ReceiveFrom(Span, flags, SocketAddress) reports for a loopback sender
        using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        using var receiver = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        sender.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        receiver.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        sender.SendTo(new byte[] { 1 }, receiver.LocalEndPoint!);
        var received = new SocketAddress(AddressFamily.InterNetwork);
        Assert.Equal(1, receiver.ReceiveFrom(new byte[16], SocketFlags.None, received));
        var aEndpoint = (IPEndPoint)sender.LocalEndPoint!;
        Assert.Equal(aEndpoint.Serialize(), received);

        var time = new FakeTimeProvider();
        var aTransport = new CapturingTransport();
        var bTransport = new CapturingTransport();
        using var aKey = WireGuardSecretKey.GeneratePrivateKey();
        using var bKey = WireGuardSecretKey.GeneratePrivateKey();
        using var a = new WireGuardEngine(aTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = aKey };
        using var b = new WireGuardEngine(bTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = bKey };
        var bEndpoint = new IPEndPoint(IPAddress.Parse("198.51.100.1"), 51820);
        a.SetPeer(new WireGuardPeerConfig { PublicKey = b.PublicKey, Endpoint = bEndpoint, AllowedIps = [EnginePair.BTunnel] });
        b.SetPeer(new WireGuardPeerConfig { PublicKey = a.PublicKey, AllowedIps = [EnginePair.ATunnel] });

        // handshake: A's initiation reaches B with the socket address as its source
        a.HandleTunPacket(EnginePair.AToB());
        b.HandleDatagram(aTransport.Sent[^1], received);
        a.HandleDatagram(bTransport.Sent[^1], bEndpoint);
        b.HandleDatagram(aTransport.Sent[^1], received); // the queued packet
        Assert.Equal(1, bTransport.TunPackets);
        Assert.Equal(aEndpoint, Assert.Single(b.GetPeers()).Endpoint);

        // steady state: transport data from the known address allocates nothing
        aTransport.Sent.Clear();
        var packet = EnginePair.AToB(500);
        for (var i = 0; i < 200; i++)
        {
            a.HandleTunPacket(packet);
        }

        var datagrams = aTransport.Sent.ToArray();
        b.HandleDatagram(datagrams[0], received); // warm-up
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 1; i < datagrams.Length; i++)
        {
            b.HandleDatagram(datagrams[i], received);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(201, bTransport.TunPackets);
        Assert.Equal(0, allocated);

        // roaming: a different address moves the endpoint
        var moved = new IPEndPoint(IPAddress.Parse("203.0.113.5"), 1234);
        a.HandleTunPacket(packet);
        b.HandleDatagram(aTransport.Sent[^1], moved.Serialize());
        Assert.Equal(moved, Assert.Single(b.GetPeers()).Endpoint);
        Assert.Equal(0, b.Counters.TotalDrops);
    }

    [Fact]
    public void A_non_ip_socket_address_is_dropped_and_counted()
    {
        using var pair = new EnginePair();
        pair.B.HandleDatagram(new byte[32], new SocketAddress(AddressFamily.Unix, 16));
        Assert.Equal(1, pair.B.Counters.TotalDrops);
    }
}
