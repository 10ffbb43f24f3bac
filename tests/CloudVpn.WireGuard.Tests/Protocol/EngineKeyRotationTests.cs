using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>
/// The responder side of a private-key rotation (fake clock, two engines joined in memory): B is the gateway whose key
/// rotates, A a peer that moves from B's old public key to the new one. During the overlap B answers handshakes (and
/// cookies) under both keys, its own initiations use the key in force, and after retire the old key is refused.
/// </summary>
public sealed class EngineKeyRotationTests
{
    [Fact]
    public void During_the_overlap_the_responder_answers_under_the_old_and_the_new_key()
    {
        using var pair = new EnginePair();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        var oldPublic = pair.B.PublicKey;
        pair.Connect();

        pair.B.SetPrivateKeys(pair.BKey, newKey); // publish
        Assert.Equal(oldPublic, pair.B.PublicKey);
        Assert.Equal(newKey.GetPublicKey(), pair.B.AdditionalPublicKey);

        // a peer still on the old key: a fresh handshake is answered under the old key
        PointAAt(pair, oldPublic);
        var viaOld = SendAToB(pair, 0x11);
        Assert.Equal(viaOld, pair.BTransport.Tun[^1]);
        Assert.Equal(2, pair.B.Counters.HandshakeResponsesSent);

        // the same peer after learning the new key: its handshake goes to the new key and is answered
        PointAAt(pair, newKey.GetPublicKey());
        var viaNew = SendAToB(pair, 0x22);
        Assert.Equal(viaNew, pair.BTransport.Tun[^1]);
        Assert.Equal(3, pair.B.Counters.HandshakeResponsesSent);
        Assert.Equal(0, pair.B.Counters.Drops(WireGuardDropReason.InvalidMac1));
        Assert.Equal(0, pair.B.Counters.Drops(WireGuardDropReason.HandshakeFailed));

        // and B's answers reach A over that session
        var back = EnginePair.BToA(fill: 0x33);
        pair.B.HandleTunPacket(back);
        pair.Pump();
        Assert.Equal(back, pair.ATransport.Tun[^1]);
    }

    [Fact]
    public void A_session_made_under_the_new_key_survives_the_switch_and_the_switch_initiates_under_the_new_key()
    {
        using var pair = new EnginePair();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        pair.Connect();
        pair.B.SetPrivateKeys(pair.BKey, newKey);
        PointAAt(pair, newKey.GetPublicKey());
        SendAToB(pair, 0x01);
        var bInitiations = pair.B.Counters.HandshakeInitiationsSent;
        var handshakes = pair.B.Counters.HandshakesCompleted;

        pair.B.SetPrivateKeys(newKey, pair.BKey); // switch
        Assert.Equal(newKey.GetPublicKey(), pair.B.PublicKey);
        using (var additional = pair.B.AdditionalPrivateKey)
        {
            Assert.Equal(pair.BKey, additional);
        }

        // the session derived under the new key goes on: no handshake needed to send
        var packet = EnginePair.BToA(fill: 0x02);
        pair.B.HandleTunPacket(packet);
        pair.Pump();
        Assert.Equal(packet, pair.ATransport.Tun[^1]);
        Assert.Equal(bInitiations, pair.B.Counters.HandshakeInitiationsSent);
        Assert.Equal(handshakes, pair.B.Counters.HandshakesCompleted);
    }

    [Fact]
    public void The_switch_stops_sessions_made_under_the_old_key_and_the_next_packet_handshakes_under_the_new_key_at_once()
    {
        using var pair = new EnginePair(bKnowsAEndpoint: true);
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();

        // B itself initiated a moment ago (as on a rekey): after the switch it must not wait out Rekey-Timeout (5 s)
        pair.B.HandleTunPacket(EnginePair.BToA(fill: 0x05));
        pair.Pump();
        Assert.Equal(1, pair.B.Counters.HandshakeInitiationsSent);
        pair.Time.Advance(TimeSpan.FromSeconds(1));
        pair.B.SetPrivateKeys(pair.BKey, newKey);
        PointAAt(pair, newKey.GetPublicKey()); // A learns the new key but sends nothing
        var bInitiations = pair.B.Counters.HandshakeInitiationsSent;

        pair.B.SetPrivateKeys(newKey, pair.BKey); // switch: the session under the old key no longer sends
        var packet = EnginePair.BToA(fill: 0x06);
        pair.B.HandleTunPacket(packet);
        pair.Pump();

        Assert.Equal(bInitiations + 1, pair.B.Counters.HandshakeInitiationsSent);
        Assert.Equal(packet, pair.ATransport.Tun[^1]);
        var peer = Assert.Single(pair.A.GetPeers());
        Assert.Equal(newKey.GetPublicKey(), peer.PublicKey);
    }

    [Fact]
    public void Packets_for_a_peer_that_moved_to_the_new_key_wait_for_its_new_session_instead_of_going_out_on_the_old_one()
    {
        using var pair = new EnginePair();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        pair.Connect();
        pair.B.SetPrivateKeys(pair.BKey, newKey);
        PointAAt(pair, newKey.GetPublicKey()); // A forgets the old session with B's old key
        pair.Time.Advance(TimeSpan.FromSeconds(1));

        // A's initiation under the new key reaches B; B's response is still on the way
        pair.A.HandleTunPacket(EnginePair.AToB(fill: 0x09));
        var initiation = pair.ATransport.TakeOutbox().Single().Datagram;
        pair.B.HandleDatagram(initiation, pair.AEndpoint);
        var response = pair.BTransport.TakeOutbox().Single().Datagram;

        // meanwhile B has a packet for A: sent on the old session, A (which dropped it) would lose it
        var packet = EnginePair.BToA(fill: 0x0a);
        pair.B.HandleTunPacket(packet);
        Assert.DoesNotContain(pair.BTransport.TakeOutbox(), d => d.Datagram[0] == 4);

        // the response arrives, A confirms with its queued packet, B promotes the session and sends what waited
        pair.A.HandleDatagram(response, pair.BEndpoint);
        pair.Pump();
        Assert.Equal(packet, pair.ATransport.Tun[^1]);
        Assert.Equal(0, pair.A.Counters.Drops(WireGuardDropReason.UnknownReceiverIndex));
    }

    [Fact]
    public void After_retire_a_handshake_under_the_old_key_is_refused()
    {
        using var pair = new EnginePair();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        var oldPublic = pair.B.PublicKey;
        pair.Connect();
        pair.B.SetPrivateKeys(pair.BKey, newKey);
        pair.B.SetPrivateKeys(newKey, pair.BKey);
        pair.B.SetPrivateKeys(newKey, null); // retire
        Assert.Null(pair.B.AdditionalPrivateKey);
        Assert.Equal(default, pair.B.AdditionalPublicKey);

        PointAAt(pair, oldPublic);
        pair.A.HandleTunPacket(EnginePair.AToB(fill: 0x07));
        pair.Pump();
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.InvalidMac1));
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent); // only the first, before the rotation

        // the new key still works
        PointAAt(pair, newKey.GetPublicKey());
        var packet = SendAToB(pair, 0x08);
        Assert.Equal(packet, pair.BTransport.Tun[^1]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Under_load_the_cookie_reply_is_made_under_the_key_the_initiation_was_addressed_to(bool toNewKey)
    {
        using var pair = new EnginePair();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        var oldPublic = pair.B.PublicKey;
        pair.B.SetPrivateKeys(pair.BKey, newKey);
        pair.B.HandshakeLoadThreshold = 0; // always under load
        if (toNewKey)
        {
            PointAAt(pair, newKey.GetPublicKey());
        }

        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump();

        // A decrypts the cookie with a key derived from the public key it addressed: so the reply was made under it
        Assert.Equal(1, pair.B.Counters.CookieRepliesSent);
        Assert.Equal(1, pair.A.Counters.CookieRepliesReceived);
        Assert.Equal(0, pair.A.Counters.Drops(WireGuardDropReason.InvalidCookieReply));
        Assert.Equal(0, pair.B.Counters.HandshakeResponsesSent);

        pair.Advance(TimeSpan.FromSeconds(6)); // the retransmission carries mac2 under that key's cookie secret
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);
        Assert.Single(pair.BTransport.Tun);
        Assert.Equal(toNewKey ? newKey.GetPublicKey() : oldPublic, Assert.Single(pair.A.GetPeers()).PublicKey);
    }

    [Fact]
    public void Setting_the_private_key_keeps_the_additional_key_and_a_peer_with_either_own_key_is_ignored()
    {
        using var pair = new EnginePair();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        using var third = WireGuardSecretKey.GeneratePrivateKey();
        pair.B.AdditionalPrivateKey = newKey;
        pair.B.PrivateKey = third;
        using (var additional = pair.B.AdditionalPrivateKey)
        {
            Assert.Equal(newKey, additional);
        }

        pair.B.SetPeer(new WireGuardPeerConfig { PublicKey = newKey.GetPublicKey(), AllowedIps = [EnginePair.ATunnel] });
        Assert.DoesNotContain(pair.B.GetPeers(), p => p.PublicKey == newKey.GetPublicKey());

        // an additional key equal to the key in force is no additional key
        pair.B.SetPrivateKeys(third, third);
        Assert.Null(pair.B.AdditionalPrivateKey);
    }

    /// <summary>A's only peer becomes B under <paramref name="bPublic"/> (a peer agent swapping the gateway's key).</summary>
    private static void PointAAt(EnginePair pair, WireGuardPublicKey bPublic)
    {
        foreach (var peer in pair.A.GetPeers())
        {
            pair.A.RemovePeer(peer.PublicKey);
        }

        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = bPublic, AllowedIps = [EnginePair.BTunnel], Endpoint = pair.BEndpoint });
    }

    private static byte[] SendAToB(EnginePair pair, byte fill)
    {
        // past the responder's flood limit for this peer's initiations
        pair.Time.Advance(TimeSpan.FromSeconds(1));
        var packet = EnginePair.AToB(fill: fill);
        pair.A.HandleTunPacket(packet);
        pair.Pump();
        return packet;
    }
}
