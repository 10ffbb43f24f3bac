using System.Buffers.Binary;
using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>Every malformed or unauthenticated input is dropped and counted; nothing throws out of HandleDatagram.</summary>
public sealed class EngineMalformedInputTests
{
    private static void AssertDropped(WireGuardEngine engine, WireGuardDropReason reason, byte[] datagram, IPEndPoint source)
    {
        var before = engine.Counters.Drops(reason);
        var total = engine.Counters.TotalDrops;
        engine.HandleDatagram(datagram, source);
        Assert.Equal(before + 1, engine.Counters.Drops(reason));
        Assert.Equal(total + 1, engine.Counters.TotalDrops);
    }

    private static byte[] Message(byte type, int length)
    {
        var message = new byte[length];
        Random.Shared.NextBytes(message);
        if (length >= 4)
        {
            message[0] = type;
            message[1] = message[2] = message[3] = 0;
        }

        return message;
    }

    /// <summary>Fills mac1 (and a zero mac2) as a sender would for a message to <paramref name="receiver"/>.</summary>
    private static void AddMacs(byte[] message, WireGuardPublicKey receiver)
    {
        var generator = new CookieGenerator(receiver.Bytes);
        generator.AddMacs(message, 0);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void Datagrams_shorter_than_a_header_are_dropped(int length)
    {
        using var pair = new EnginePair();
        AssertDropped(pair.B, WireGuardDropReason.InvalidLength, new byte[length], pair.AEndpoint);
    }

    [Theory]
    [InlineData(1, 147)]
    [InlineData(1, 149)]
    [InlineData(2, 91)]
    [InlineData(2, 93)]
    [InlineData(3, 63)]
    [InlineData(3, 65)]
    [InlineData(4, 31)]
    [InlineData(4, 16)]
    public void Messages_of_the_wrong_length_are_dropped(byte type, int length)
    {
        using var pair = new EnginePair();
        AssertDropped(pair.B, WireGuardDropReason.InvalidLength, Message(type, length), pair.AEndpoint);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(255)]
    public void Unknown_message_types_are_dropped(byte type)
    {
        using var pair = new EnginePair();
        AssertDropped(pair.B, WireGuardDropReason.UnknownType, Message(type, 148), pair.AEndpoint);
    }

    [Fact]
    public void Non_zero_reserved_bytes_are_dropped()
    {
        using var pair = new EnginePair();
        var message = Message(1, 148);
        message[2] = 1;
        AssertDropped(pair.B, WireGuardDropReason.UnknownType, message, pair.AEndpoint);
    }

    [Fact]
    public void Handshake_messages_with_a_bad_mac1_are_dropped_before_any_work()
    {
        using var pair = new EnginePair();
        AssertDropped(pair.B, WireGuardDropReason.InvalidMac1, Message(1, 148), pair.AEndpoint);
        AssertDropped(pair.B, WireGuardDropReason.InvalidMac1, Message(2, 92), pair.AEndpoint);

        // a real initiation with one bit flipped after mac1 was computed
        pair.A.HandleTunPacket(EnginePair.AToB());
        var initiation = pair.ATransport.TakeOutbox().Single().Datagram;
        initiation[50] ^= 1;
        AssertDropped(pair.B, WireGuardDropReason.InvalidMac1, initiation, pair.AEndpoint);
    }

    [Fact]
    public void Initiation_with_valid_mac1_but_tampered_ciphertext_fails()
    {
        using var pair = new EnginePair();
        pair.A.HandleTunPacket(EnginePair.AToB());
        var initiation = pair.ATransport.TakeOutbox().Single().Datagram;
        initiation[MessageFormat.InitiationStatic + 3] ^= 0x80;
        AddMacs(initiation, pair.B.PublicKey);
        AssertDropped(pair.B, WireGuardDropReason.HandshakeFailed, initiation, pair.AEndpoint);
        Assert.Equal(0, pair.B.Counters.HandshakeResponsesSent);
    }

    [Fact]
    public void A_replayed_initiation_is_dropped()
    {
        using var pair = new EnginePair();
        pair.A.HandleTunPacket(EnginePair.AToB());
        var initiation = pair.ATransport.TakeOutbox().Single().Datagram;
        pair.B.HandleDatagram(initiation, pair.AEndpoint);
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);
        pair.Time.Advance(TimeSpan.FromSeconds(1)); // past the 20 ms flood limit: only the timestamp rejects it
        AssertDropped(pair.B, WireGuardDropReason.HandshakeReplayed, initiation, pair.AEndpoint);
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);
    }

    [Fact]
    public void Initiations_faster_than_one_per_20_ms_are_dropped_even_with_a_newer_timestamp()
    {
        using var pair = new EnginePair();
        byte[] FreshInitiation()
        {
            // a re-added peer forgets when it last initiated, so A initiates again at once
            pair.A.RemovePeer(pair.B.PublicKey);
            pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, Endpoint = pair.BEndpoint, AllowedIps = [EnginePair.BTunnel] });
            pair.A.HandleTunPacket(EnginePair.AToB());
            return pair.ATransport.TakeOutbox().Single().Datagram;
        }

        pair.B.HandleDatagram(FreshInitiation(), pair.AEndpoint);
        Assert.Equal(1, pair.B.Counters.HandshakeResponsesSent);

        // 17.5 ms later the (whitened, 2^24 ns) timestamp has moved on, but it is within 20 ms
        pair.Time.Advance(TimeSpan.FromMilliseconds(17.5));
        AssertDropped(pair.B, WireGuardDropReason.HandshakeReplayed, FreshInitiation(), pair.AEndpoint);

        pair.Time.Advance(TimeSpan.FromMilliseconds(17.5));
        pair.B.HandleDatagram(FreshInitiation(), pair.AEndpoint);
        Assert.Equal(2, pair.B.Counters.HandshakeResponsesSent);
    }

    [Fact]
    public void Messages_for_unknown_receiver_indices_are_dropped()
    {
        using var pair = new EnginePair();
        AssertDropped(pair.B, WireGuardDropReason.UnknownReceiverIndex, Message(4, 64), pair.AEndpoint);
        AssertDropped(pair.B, WireGuardDropReason.UnknownReceiverIndex, Message(3, 64), pair.AEndpoint);
        var response = Message(2, 92);
        AddMacs(response, pair.B.PublicKey);
        AssertDropped(pair.B, WireGuardDropReason.UnknownReceiverIndex, response, pair.AEndpoint);
    }

    [Fact]
    public void Transport_replays_old_counters_and_tampering_are_dropped()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.A.HandleTunPacket(EnginePair.AToB());
        var datagram = pair.ATransport.TakeOutbox().Single().Datagram;
        pair.B.HandleDatagram(datagram, pair.AEndpoint);
        var delivered = pair.BTransport.Tun.Count;

        AssertDropped(pair.B, WireGuardDropReason.ReplayedCounter, datagram, pair.AEndpoint);

        var tampered = (byte[])datagram.Clone();
        tampered[^1] ^= 1;
        BinaryPrimitives.WriteUInt64LittleEndian(tampered.AsSpan(8), 1_000_000); // a fresh counter, but a wrong tag
        AssertDropped(pair.B, WireGuardDropReason.DecryptFailed, tampered, pair.AEndpoint);

        var truncated = datagram[..^5];
        BinaryPrimitives.WriteUInt64LittleEndian(truncated.AsSpan(8), 1_000_001);
        AssertDropped(pair.B, WireGuardDropReason.DecryptFailed, truncated, pair.AEndpoint);
        Assert.Equal(delivered, pair.BTransport.Tun.Count);
    }

    [Fact]
    public void A_counter_older_than_the_replay_window_is_dropped_but_one_inside_is_accepted()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.ATransport.TakeOutbox();
        var datagrams = new List<byte[]>();
        for (var i = 0; i < 8300; i++)
        {
            pair.A.HandleTunPacket(EnginePair.AToB(payloadLength: 0));
        }

        datagrams.AddRange(pair.ATransport.TakeOutbox().Select(d => d.Datagram));
        var oldest = datagrams[0];
        var insideWindow = datagrams[8300 - 100];
        foreach (var datagram in datagrams.Skip(1).Where(d => d != insideWindow))
        {
            pair.B.HandleDatagram(datagram, pair.AEndpoint);
        }

        Assert.Equal(0, pair.B.Counters.TotalDrops);
        AssertDropped(pair.B, WireGuardDropReason.ReplayedCounter, oldest, pair.AEndpoint);
        var count = pair.BTransport.Tun.Count;
        pair.B.HandleDatagram(insideWindow, pair.AEndpoint); // late but within the window: accepted once
        Assert.Equal(count + 1, pair.BTransport.Tun.Count);
    }

    [Fact]
    public void Decrypted_packets_from_outside_the_peers_allowed_ips_are_dropped()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.A.HandleTunPacket(EnginePair.Ipv4("10.9.9.9", "10.0.0.2"));
        var datagram = pair.ATransport.TakeOutbox().Single().Datagram;
        var delivered = pair.BTransport.Tun.Count;
        AssertDropped(pair.B, WireGuardDropReason.SourceNotAllowed, datagram, pair.AEndpoint);
        Assert.Equal(delivered, pair.BTransport.Tun.Count);
    }

    [Fact]
    public void Decrypted_packets_that_are_not_ip_are_dropped()
    {
        using var pair = new EnginePair();
        pair.Connect();
        var packet = EnginePair.AToB();
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), 2000); // total length past the packet
        pair.A.HandleTunPacket(packet);
        AssertDropped(pair.B, WireGuardDropReason.InvalidInnerPacket, pair.ATransport.TakeOutbox().Single().Datagram, pair.AEndpoint);
    }

    [Fact]
    public void Tun_packets_that_are_not_ip_or_have_no_route_are_dropped()
    {
        using var pair = new EnginePair();
        pair.A.HandleTunPacket([]);
        pair.A.HandleTunPacket([0x45, 0, 0]);
        pair.A.HandleTunPacket(new byte[39].Prepend((byte)0x60).ToArray()[..39]);
        Assert.Equal(3, pair.A.Counters.Drops(WireGuardDropReason.InvalidTunPacket));
        pair.A.HandleTunPacket(EnginePair.Ipv4("10.0.0.1", "10.0.0.3"));
        pair.A.HandleTunPacket(EnginePair.Ipv6("fd00::1", "fd00::3"));
        Assert.Equal(2, pair.A.Counters.Drops(WireGuardDropReason.NoRoute));
        Assert.Empty(pair.ATransport.AllSent);
    }

    [Fact]
    public void Handshakes_without_a_private_key_are_dropped()
    {
        using var pair = new EnginePair();
        pair.A.HandleTunPacket(EnginePair.AToB());
        var initiation = pair.ATransport.TakeOutbox().Single().Datagram;
        pair.B.PrivateKey = null;
        AssertDropped(pair.B, WireGuardDropReason.NoPrivateKey, initiation, pair.AEndpoint);
    }

    [Fact]
    public void Random_garbage_never_throws_and_every_datagram_is_counted()
    {
        using var pair = new EnginePair();
        pair.Connect();
        var random = new Random(1234);
        var lengths = new[] { 0, 1, 4, 16, 31, 32, 33, 63, 64, 65, 91, 92, 93, 147, 148, 149, 1500 };
        const int Count = 3000;
        var before = pair.B.Counters.TotalDrops;
        for (var i = 0; i < Count; i++)
        {
            var message = new byte[lengths[random.Next(lengths.Length)]];
            random.NextBytes(message);
            if (message.Length >= 4 && random.Next(4) != 0)
            {
                message[0] = (byte)random.Next(1, 5);
                message[1] = message[2] = message[3] = 0;
            }

            pair.B.HandleDatagram(message, pair.AEndpoint);
        }

        Assert.Equal(before + Count, pair.B.Counters.TotalDrops);
        Assert.Equal(0, pair.B.Counters.Drops(WireGuardDropReason.InternalError));
    }
}
