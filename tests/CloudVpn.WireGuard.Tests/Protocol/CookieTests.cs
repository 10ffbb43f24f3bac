using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

public sealed class CookieTests
{
    [Fact]
    public void Under_load_the_responder_demands_a_cookie_and_the_retry_with_mac2_succeeds()
    {
        using var pair = new EnginePair();
        pair.B.HandshakeLoadThreshold = 0; // always under load
        var packet = EnginePair.AToB();
        pair.A.HandleTunPacket(packet);
        pair.Pump();

        Assert.Equal(1, pair.B.Counters.CookieRepliesSent);
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.CookieRequired));
        Assert.Equal(1, pair.A.Counters.CookieRepliesReceived);
        Assert.Equal(0, pair.B.Counters.HandshakeResponsesSent);

        pair.Advance(TimeSpan.FromSeconds(6)); // the retransmission carries mac2
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);
        Assert.Equal(packet, Assert.Single(pair.BTransport.Tun));
    }

    [Fact]
    public void The_cookie_is_bound_to_the_source_address()
    {
        using var pair = new EnginePair();
        pair.B.HandshakeLoadThreshold = 0;
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump();
        Assert.Equal(1, pair.A.Counters.CookieRepliesReceived);

        // A moves before retrying: its mac2 is for the old address, so B asks again
        pair.AEndpoint = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("203.0.113.9"), 1234);
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey });
        pair.Time.Advance(TimeSpan.FromSeconds(5.4));
        var retry = pair.ATransport.TakeOutbox().Single().Datagram;
        pair.B.HandleDatagram(retry, pair.AEndpoint);
        Assert.Equal(2, pair.B.Counters.Drops(WireGuardDropReason.CookieRequired));
    }

    [Fact]
    public void A_cookie_reply_that_does_not_authenticate_is_dropped()
    {
        using var pair = new EnginePair();
        pair.B.HandshakeLoadThreshold = 0;
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.B.HandleDatagram(pair.ATransport.TakeOutbox().Single().Datagram, pair.AEndpoint);
        var reply = pair.BTransport.TakeOutbox().Single().Datagram;
        Assert.Equal(64, reply.Length);
        reply[40] ^= 1;
        pair.A.HandleDatagram(reply, pair.BEndpoint);
        Assert.Equal(1, pair.A.Counters.Drops(WireGuardDropReason.InvalidCookieReply));
        Assert.Equal(0, pair.A.Counters.CookieRepliesReceived);
    }

    [Fact]
    public void Under_load_a_source_is_limited_to_a_burst_of_handshakes()
    {
        using var pair = new EnginePair();
        pair.B.HandshakeLoadThreshold = 0;
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump(); // cookie obtained
        pair.Time.Advance(TimeSpan.FromSeconds(5.4)); // retransmission with a valid mac2
        var initiation = pair.ATransport.TakeOutbox().Single().Datagram;

        for (var i = 0; i < 10; i++)
        {
            pair.B.HandleDatagram(initiation, pair.AEndpoint);
        }

        // one accepted, then replays (timestamp) until the bucket of 5 is empty, then rate limited
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);
        Assert.Equal(4, pair.B.Counters.Drops(WireGuardDropReason.HandshakeReplayed));
        Assert.Equal(5, pair.B.Counters.Drops(WireGuardDropReason.RateLimited));
    }

    [Fact]
    public void Not_under_load_no_cookie_is_asked_for()
    {
        using var pair = new EnginePair();
        pair.Connect();
        Assert.Equal(0, pair.B.Counters.CookieRepliesSent);
    }

    [Fact]
    public void A_burst_above_the_threshold_puts_the_engine_under_load()
    {
        using var pair = new EnginePair();
        pair.B.HandshakeLoadThreshold = 3;
        pair.A.HandleTunPacket(EnginePair.AToB());
        var initiation = pair.ATransport.TakeOutbox().Single().Datagram;
        for (var i = 0; i < 5; i++)
        {
            pair.B.HandleDatagram(initiation, pair.AEndpoint);
        }

        Assert.True(pair.B.Counters.CookieRepliesSent >= 1);
    }

    [Fact]
    public void Cookies_and_roaming_work_with_ipv6_endpoints()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.AEndpoint = new System.Net.IPEndPoint(System.Net.IPAddress.Parse("2001:db8::7"), 4000);
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump();
        Assert.Equal(pair.AEndpoint, Assert.Single(pair.B.GetPeers()).Endpoint);

        // a rekey under load from the IPv6 address: cookie, then the retry with mac2
        pair.B.HandshakeLoadThreshold = 0;
        pair.Advance(TimeSpan.FromSeconds(121), TimeSpan.FromSeconds(1));
        var packet = EnginePair.AToB(fill: 0x66);
        pair.A.HandleTunPacket(packet);
        pair.Pump();
        Assert.Equal(1, pair.B.Counters.CookieRepliesSent);
        pair.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(2, pair.B.Counters.HandshakeResponsesSent);
        var reply = EnginePair.BToA(fill: 0x67);
        pair.B.HandleTunPacket(reply);
        pair.Pump();
        Assert.Equal(reply, pair.ATransport.Tun[^1]);
    }
}
