using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>Rekey, reject, keepalive, retries and give-up, driven by a fake clock.</summary>
public sealed class EngineTimerTests
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Fact]
    public void Initiator_rekeys_when_sending_after_120_seconds_and_traffic_continues()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.Advance(TimeSpan.FromSeconds(119), Second);
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump();
        Assert.Equal(1, pair.A.Counters.HandshakeInitiationsSent); // not yet

        pair.Advance(TimeSpan.FromSeconds(2), Second);
        var packet = EnginePair.AToB(fill: 7);
        pair.A.HandleTunPacket(packet); // sent with the old keypair, then a rekey
        Assert.Equal(2, pair.A.Counters.HandshakeInitiationsSent);
        pair.Pump();
        Assert.Equal(packet, pair.BTransport.Tun[^1]);
        Assert.Equal(2, pair.A.Counters.HandshakeResponsesReceived);

        // the new session carries data both ways and B confirms it on the first packet under it
        var next = EnginePair.AToB(fill: 8);
        pair.A.HandleTunPacket(next);
        var reply = EnginePair.BToA(fill: 9);
        pair.B.HandleTunPacket(reply);
        pair.Pump();
        Assert.Equal(next, pair.BTransport.Tun[^1]);
        Assert.Equal(reply, pair.ATransport.Tun[^1]);
        Assert.Equal(0, pair.A.Counters.TotalDrops);
        Assert.Equal(0, pair.B.Counters.TotalDrops);
    }

    [Fact]
    public void Responder_does_not_rekey_on_time_alone()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.B.HandleTunPacket(EnginePair.BToA());
        pair.Pump();
        pair.Advance(TimeSpan.FromSeconds(125), Second);
        pair.B.HandleTunPacket(EnginePair.BToA());
        pair.Pump();
        Assert.Equal(0, pair.B.Counters.HandshakeInitiationsSent);
    }

    [Fact]
    public void A_keypair_is_not_used_past_180_seconds_in_either_direction()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.NetworkUp = false;

        // capture a datagram encrypted now, deliver it after Reject-After-Time
        pair.A.HandleTunPacket(EnginePair.AToB());
        var old = pair.ATransport.TakeOutbox().Single(d => d.Datagram[0] == 4).Datagram;
        pair.Advance(TimeSpan.FromSeconds(181), Second);
        pair.NetworkUp = true;
        pair.B.HandleDatagram(old, pair.AEndpoint);
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.KeypairExpired));

        // A does not encrypt with the expired keypair: the packet waits for a new handshake
        pair.ATransport.AllSent.Clear();
        var packet = EnginePair.AToB(fill: 3);
        pair.A.HandleTunPacket(packet);
        Assert.DoesNotContain(pair.ATransport.AllSent, d => d.Datagram[0] == 4);
        Assert.Contains(pair.ATransport.AllSent, d => d.Datagram[0] == 1);
        pair.Pump();
        Assert.Equal(packet, pair.BTransport.Tun[^1]);
    }

    [Fact]
    public void Receiver_sends_a_keepalive_after_10_seconds_of_silence()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump();
        Assert.Equal(0, pair.B.Counters.KeepalivesSent);

        pair.Advance(TimeSpan.FromSeconds(9.5));
        Assert.Equal(0, pair.B.Counters.KeepalivesSent);
        pair.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, pair.B.Counters.KeepalivesSent);
        Assert.Equal(32, pair.BTransport.AllSent[^1].Datagram.Length);

        // the keepalive is authenticated data for A, and nothing more happens without traffic
        pair.Advance(TimeSpan.FromSeconds(60), Second);
        Assert.Equal(1, pair.B.Counters.KeepalivesSent);
        Assert.Equal(0, pair.A.Counters.TotalDrops);
    }

    [Fact]
    public void A_reply_within_10_seconds_replaces_the_keepalive()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Pump();
        pair.Advance(TimeSpan.FromSeconds(5));
        pair.B.HandleTunPacket(EnginePair.BToA());
        pair.Advance(TimeSpan.FromSeconds(20), Second);
        Assert.Equal(0, pair.B.Counters.KeepalivesSent);
    }

    [Fact]
    public void Persistent_keepalive_is_sent_every_interval_when_idle()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, PersistentKeepalive = 25 });
        pair.Advance(TimeSpan.FromSeconds(1));
        var first = pair.A.Counters.KeepalivesSent;
        Assert.Equal(1, first); // turning it on sends one at once

        // the interval counts from the last authenticated packet either way (B's passive keepalive at ~10 s pushes
        // it out), so the link is never silent for more than 25 s
        var lastSent = pair.Time.GetUtcNow();
        var longestSilence = TimeSpan.Zero;
        for (var i = 0; i < 100; i++)
        {
            var before = pair.ATransport.AllSent.Count + pair.BTransport.AllSent.Count;
            pair.Advance(Second, Second);
            if (pair.ATransport.AllSent.Count + pair.BTransport.AllSent.Count > before)
            {
                lastSent = pair.Time.GetUtcNow();
            }

            longestSilence = TimeSpan.FromTicks(Math.Max(longestSilence.Ticks, (pair.Time.GetUtcNow() - lastSent).Ticks));
        }

        Assert.InRange(pair.A.Counters.KeepalivesSent - first, 3, 4);
        Assert.True(longestSilence <= TimeSpan.FromSeconds(25), $"the link was silent for {longestSilence}");
    }

    [Fact]
    public void No_answer_to_sent_data_starts_a_new_handshake_after_15_seconds()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.NetworkUp = false;
        pair.A.HandleTunPacket(EnginePair.AToB());
        pair.Advance(TimeSpan.FromSeconds(14), Second);
        Assert.Equal(1, pair.A.Counters.HandshakeInitiationsSent);
        pair.Advance(TimeSpan.FromSeconds(2), Second);
        Assert.Equal(2, pair.A.Counters.HandshakeInitiationsSent);
    }

    [Fact]
    public void Handshake_is_retried_every_5_seconds_with_jitter_and_given_up_after_20_attempts()
    {
        using var pair = new EnginePair();
        pair.NetworkUp = false;
        pair.A.HandleTunPacket(EnginePair.AToB());
        Assert.Equal(1, pair.A.Counters.HandshakeInitiationsSent);

        pair.Advance(TimeSpan.FromSeconds(4.9));
        Assert.Equal(1, pair.A.Counters.HandshakeInitiationsSent);
        pair.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(2, pair.A.Counters.HandshakeInitiationsSent);

        // 100 ms steps: the fake clock runs a timer at the end of the step it falls in, so coarse steps would
        // stretch every interval. At 95.4 s, 17 to 19 retries went out and nobody gave up yet.
        pair.Advance(TimeSpan.FromSeconds(90));
        Assert.InRange(pair.A.Counters.HandshakeInitiationsSent, 18, 20);
        Assert.Equal(0, pair.A.Counters.HandshakeGiveUps);
        pair.Advance(TimeSpan.FromSeconds(20));

        // the reference implementations: 19 retries after the first initiation, then give up ("after 20 attempts")
        Assert.Equal(1 + 19, pair.A.Counters.HandshakeInitiationsSent);
        Assert.Equal(1, pair.A.Counters.HandshakeGiveUps);
        Assert.Equal(1, pair.A.Counters.Drops(WireGuardDropReason.QueueOverflow)); // the queued packet was dropped

        // given up means quiet, until new traffic asks again
        pair.Advance(TimeSpan.FromSeconds(200), TimeSpan.FromSeconds(5));
        Assert.Equal(20, pair.A.Counters.HandshakeInitiationsSent);
        pair.NetworkUp = true;
        var packet = EnginePair.AToB();
        pair.A.HandleTunPacket(packet);
        pair.Pump();
        Assert.Equal(packet, pair.BTransport.Tun[^1]);
    }

    [Fact]
    public void A_lost_response_is_recovered_by_the_retry()
    {
        using var pair = new EnginePair();
        var packet = EnginePair.AToB();
        pair.A.HandleTunPacket(packet);
        pair.B.HandleDatagram(pair.ATransport.TakeOutbox().Single().Datagram, pair.AEndpoint);
        pair.BTransport.TakeOutbox(); // the response is lost
        pair.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(packet, Assert.Single(pair.BTransport.Tun));
        Assert.Equal(2, pair.A.Counters.HandshakeInitiationsSent);
    }

    [Fact]
    public void Key_material_is_erased_after_540_seconds_without_a_handshake()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.NetworkUp = false;
        pair.Advance(TimeSpan.FromSeconds(541), TimeSpan.FromSeconds(5));

        // a datagram under the old session now names an unknown index
        pair.NetworkUp = true;
        pair.ATransport.TakeOutbox();
        pair.BTransport.TakeOutbox();
        pair.B.HandleTunPacket(EnginePair.BToA());
        var sent = pair.BTransport.TakeOutbox();
        Assert.DoesNotContain(sent, d => d.Datagram[0] == 4);
    }
}

/// <summary>The message-count limits, reached by moving the send counter (no test could send 2^60 packets).</summary>
public sealed class EngineMessageLimitTests
{
    [Fact]
    public void Past_rekey_after_messages_the_sender_starts_a_new_handshake_and_the_packet_still_arrives()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.Advance(TimeSpan.FromSeconds(6)); // past Rekey-Timeout since the first initiation
        pair.A.FindPeer(pair.B.PublicKey)!.Current!.SkipSendCounterTo((1UL << 60) + 1);
        var packet = EnginePair.AToB(fill: 5);
        pair.A.HandleTunPacket(packet);
        Assert.Equal(2, pair.A.Counters.HandshakeInitiationsSent);
        pair.Pump();
        Assert.Equal(packet, pair.BTransport.Tun[^1]); // a far-ahead counter is fine for the replay window
        Assert.Equal(2, pair.A.Counters.HandshakeResponsesReceived);
    }

    [Fact]
    public void At_reject_after_messages_the_keypair_is_not_used_and_the_packet_waits_for_a_new_session()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.Advance(TimeSpan.FromSeconds(6));
        pair.A.FindPeer(pair.B.PublicKey)!.Current!.SkipSendCounterTo(ulong.MaxValue - (1UL << 13));
        pair.ATransport.AllSent.Clear();
        var packet = EnginePair.AToB(fill: 6);
        pair.A.HandleTunPacket(packet);
        Assert.DoesNotContain(pair.ATransport.AllSent, d => d.Datagram[0] == 4);
        pair.Pump();
        Assert.Equal(packet, pair.BTransport.Tun[^1]);
        Assert.Equal(0, pair.B.Counters.TotalDrops);
    }

    [Fact]
    public void The_receiver_refuses_counters_at_reject_after_messages()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.A.FindPeer(pair.B.PublicKey)!.Current!.SkipSendCounterTo(ulong.MaxValue - (1UL << 13) - 1);
        pair.A.HandleTunPacket(EnginePair.AToB()); // the last allowed counter
        var last = pair.ATransport.TakeOutbox().Single(d => d.Datagram[0] == 4).Datagram;
        pair.B.HandleDatagram(last, pair.AEndpoint);
        Assert.Equal(0, pair.B.Counters.TotalDrops);

        // forge the header to the limit: the receiver refuses it before decrypting
        var forged = (byte[])last.Clone();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(forged.AsSpan(8), ulong.MaxValue - (1UL << 13));
        pair.B.HandleDatagram(forged, pair.AEndpoint);
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.ReplayedCounter));
    }
}
