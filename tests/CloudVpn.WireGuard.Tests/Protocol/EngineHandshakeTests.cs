using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

public sealed class EngineHandshakeTests
{
    [Fact]
    public void Handshake_from_A_carries_the_queued_packet_and_data_flows_both_ways()
    {
        using var pair = new EnginePair();
        var packet = EnginePair.AToB();
        pair.A.HandleTunPacket(packet);

        // the packet waits for the handshake; only an initiation goes out
        var initiation = Assert.Single(pair.ATransport.Outbox);
        Assert.Equal(148, initiation.Datagram.Length);
        Assert.Equal(1, initiation.Datagram[0]);

        pair.Pump();
        Assert.Equal(1, pair.A.Counters.HandshakeInitiationsSent);
        Assert.Equal(1, pair.B.Counters.HandshakeInitiationsReceived);
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);
        Assert.Equal(1, pair.A.Counters.HandshakeResponsesReceived);
        Assert.Equal(packet, Assert.Single(pair.BTransport.Tun));

        var reply = EnginePair.BToA(100);
        pair.B.HandleTunPacket(reply);
        pair.Pump();
        Assert.Equal(reply, Assert.Single(pair.ATransport.Tun));
        Assert.Equal(0, pair.A.Counters.TotalDrops);
        Assert.Equal(0, pair.B.Counters.TotalDrops);

        // the responder learned A's endpoint from the handshake; both record the handshake time
        var bView = Assert.Single(pair.B.GetPeers());
        Assert.Equal(pair.AEndpoint, bView.Endpoint);
        Assert.Equal(pair.Time.GetUtcNow(), bView.LastHandshake);
        Assert.Equal(pair.Time.GetUtcNow(), Assert.Single(pair.A.GetPeers()).LastHandshake);
    }

    [Fact]
    public void Handshake_from_B_works_the_other_way()
    {
        using var pair = new EnginePair(aKnowsBEndpoint: false, bKnowsAEndpoint: true);
        var packet = EnginePair.BToA();
        pair.B.HandleTunPacket(packet);
        pair.Pump();
        Assert.Equal(packet, Assert.Single(pair.ATransport.Tun));
        Assert.Equal(1, pair.B.Counters.HandshakeInitiationsSent);
        Assert.Equal(1, pair.A.Counters.HandshakeResponsesSent);

        var back = EnginePair.AToB();
        pair.A.HandleTunPacket(back);
        pair.Pump();
        Assert.Equal(back, Assert.Single(pair.BTransport.Tun));
    }

    [Fact]
    public void Transport_messages_are_padded_to_16_and_a_keepalive_is_32_bytes()
    {
        using var pair = new EnginePair();

        // persistent keepalive on a peer without a session starts a handshake; with nothing queued, the initiator
        // confirms the new session with a keepalive right after the response
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, PersistentKeepalive = 25 });
        pair.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, pair.A.Counters.HandshakeResponsesReceived);
        Assert.Equal(32, pair.ATransport.AllSent[^1].Datagram.Length);
        Assert.Equal(4, pair.ATransport.AllSent[^1].Datagram[0]);
        Assert.Equal(1, pair.A.Counters.KeepalivesSent);

        pair.ATransport.AllSent.Clear();
        pair.A.HandleTunPacket(EnginePair.AToB(payloadLength: 1)); // 21-byte IP packet -> 32 bytes padded
        var sent = Assert.Single(pair.ATransport.AllSent);
        Assert.Equal(16 + 32 + 16, sent.Datagram.Length);
        pair.Pump();
        Assert.Equal(21, pair.BTransport.Tun[^1].Length);
    }

    [Fact]
    public void Padding_never_goes_past_the_mtu()
    {
        using var pair = new EnginePair();
        pair.A.Mtu = 1420;
        pair.Connect();
        pair.ATransport.AllSent.Clear();
        pair.A.HandleTunPacket(EnginePair.AToB(payloadLength: 1419 - 20)); // 1419 bytes: padding to 1424 would pass the MTU
        Assert.Equal(16 + 1420 + 16, Assert.Single(pair.ATransport.AllSent).Datagram.Length);
        pair.Pump();
        Assert.Equal(1419, pair.BTransport.Tun[^1].Length);
    }

    [Fact]
    public void Ipv6_packets_are_routed_and_delivered()
    {
        using var pair = new EnginePair();
        pair.Connect();
        var packet = EnginePair.Ipv6("fd00::1", "fd00::2", 33);
        pair.A.HandleTunPacket(packet);
        pair.Pump();
        Assert.Equal(packet, pair.BTransport.Tun[^1]);
    }

    [Fact]
    public void Preshared_key_on_both_sides_works()
    {
        using var pair = new EnginePair(withPsk: true);
        var packet = pair.Connect();
        Assert.Equal(packet, Assert.Single(pair.BTransport.Tun));
        Assert.True(Assert.Single(pair.A.GetPeers()).HasPresharedKey);
    }

    [Fact]
    public void Preshared_key_mismatch_fails_the_handshake()
    {
        using var pair = new EnginePair(withPsk: true);
        using var other = WireGuardSecretKey.GeneratePresharedKey();
        pair.B.SetPeer(new WireGuardPeerConfig { PublicKey = pair.A.PublicKey, PresharedKey = other });
        pair.Connect();

        // B answers (it cannot tell), but A cannot authenticate the response: no session, nothing delivered
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);
        Assert.Equal(0, pair.A.Counters.HandshakeResponsesReceived);
        Assert.Equal(1, pair.A.Counters.Drops(WireGuardDropReason.HandshakeFailed));
        Assert.Empty(pair.BTransport.Tun);
        Assert.Null(Assert.Single(pair.A.GetPeers()).LastHandshake);
    }

    [Fact]
    public void Removing_the_psk_with_a_zero_key_on_both_sides_works()
    {
        using var pair = new EnginePair(withPsk: true);
        using var zero = new WireGuardSecretKey(new byte[32]);
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, PresharedKey = zero });
        pair.B.SetPeer(new WireGuardPeerConfig { PublicKey = pair.A.PublicKey, PresharedKey = zero });
        Assert.False(Assert.Single(pair.A.GetPeers()).HasPresharedKey);
        var packet = pair.Connect();
        Assert.Equal(packet, Assert.Single(pair.BTransport.Tun));
    }

    [Fact]
    public void Unknown_peer_key_fails_the_handshake()
    {
        using var pair = new EnginePair();
        pair.B.RemovePeer(pair.A.PublicKey);
        pair.Connect();
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.HandshakeFailed));
        Assert.Equal(0, pair.B.Counters.HandshakeResponsesSent);
    }

    [Fact]
    public void Roaming_the_responder_follows_the_initiators_new_address()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.AEndpoint = new IPEndPoint(IPAddress.Parse("203.0.113.7"), 40000);
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump();
        Assert.Equal(pair.AEndpoint, Assert.Single(pair.B.GetPeers()).Endpoint);

        var reply = EnginePair.BToA();
        pair.B.HandleTunPacket(reply);
        Assert.Equal(pair.AEndpoint, pair.BTransport.Outbox[^1].Destination);
        pair.Pump();
        Assert.Equal(reply, pair.ATransport.Tun[^1]);
    }

    [Fact]
    public void Counters_count_whole_datagrams_as_rx_and_tx_bytes()
    {
        using var pair = new EnginePair();
        pair.Connect();
        var a = Assert.Single(pair.A.GetPeers());
        var b = Assert.Single(pair.B.GetPeers());
        var aSent = pair.ATransport.AllSent.Sum(d => (long)d.Datagram.Length);
        Assert.Equal(aSent, a.TxBytes);
        Assert.Equal(aSent, b.RxBytes);
        Assert.Equal(a.RxBytes, b.TxBytes);
        Assert.Equal(148 + 16 + 48 + 16, aSent); // the initiation, then the queued 40-byte packet padded to 48
        // and whole datagrams as packets: the initiation and the data packet one way, the response the other
        Assert.Equal(pair.ATransport.AllSent.Count, a.TxPackets);
        Assert.Equal(2, a.TxPackets);
        Assert.Equal(a.TxPackets, b.RxPackets);
        Assert.Equal(b.TxPackets, a.RxPackets);
        Assert.Equal(1, b.TxPackets);
    }

    [Fact]
    public void Changing_the_private_key_forces_a_new_handshake()
    {
        using var pair = new EnginePair();
        pair.Connect();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        pair.B.PrivateKey = newKey;
        Assert.Equal(newKey.GetPublicKey(), pair.B.PublicKey);
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, AllowedIps = [EnginePair.BTunnel], Endpoint = pair.BEndpoint });
        pair.A.RemovePeer(Assert.Single(pair.A.GetPeers(), p => p.PublicKey != pair.B.PublicKey).PublicKey);

        pair.Time.Advance(TimeSpan.FromSeconds(6)); // past Rekey-Timeout, so a new initiation may go out
        pair.Pump();
        var packet = EnginePair.AToB(fill: 0x42);
        pair.A.HandleTunPacket(packet);
        pair.Pump();
        Assert.Equal(packet, pair.BTransport.Tun[^1]);
        Assert.Equal(2, pair.B.Counters.HandshakeResponsesSent);
    }

    [Fact]
    public void Simultaneous_initiations_converge_to_a_session()
    {
        using var pair = new EnginePair(aKnowsBEndpoint: true, bKnowsAEndpoint: true);
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.B.HandleTunPacket(EnginePair.BToA());
        pair.Advance(TimeSpan.FromSeconds(30));
        pair.A.HandleTunPacket(EnginePair.AToB(fill: 1));
        pair.B.HandleTunPacket(EnginePair.BToA(fill: 2));
        pair.Pump();
        Assert.Contains(pair.BTransport.Tun, p => p[^1] == 1);
        Assert.Contains(pair.ATransport.Tun, p => p[^1] == 2);
    }
}
