using System.Buffers.Binary;
using System.Net;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>
/// The batched data path (<see cref="WireGuardEngine.HandleTunBatch"/>, <see cref="WireGuardEngine.HandleDatagramBatch"/>):
/// in place, in order, interoperable with the one-packet path, and every bad entry dropped and counted on its own.
/// </summary>
public sealed class EngineBatchTests
{
    private const int Stride = PacketBatch.Headroom + 1500 + PacketBatch.Tailroom;

    /// <summary>A batch laid out as a TUN reader lays it out: each packet with its headroom and tailroom.</summary>
    private static PacketBatch TunBatch(IReadOnlyList<byte[]> packets, int spare = 0)
    {
        var batch = new PacketBatch(Math.Max(1, packets.Count + spare), Math.Max(1, packets.Count + spare) * Stride);
        for (var i = 0; i < packets.Count; i++)
        {
            var offset = ((i + spare) * Stride) + PacketBatch.Headroom;
            packets[i].CopyTo(batch.Arena[offset..]);
            Assert.True(batch.TryAdd(offset, packets[i].Length));
        }

        return batch;
    }

    /// <summary>A batch as a UDP receiver fills it, every datagram from <paramref name="source"/>.</summary>
    private static PacketBatch DatagramBatch(IReadOnlyList<byte[]> datagrams, IPEndPoint source) =>
        DatagramBatch([.. datagrams.Select(d => (d, source))]);

    /// <summary>A batch as a UDP receiver fills it: datagrams back to back, each with its own source.</summary>
    internal static PacketBatch DatagramBatch(IReadOnlyList<(byte[] Datagram, IPEndPoint Source)> datagrams)
    {
        var batch = new PacketBatch(Math.Max(1, datagrams.Count), Math.Max(64, datagrams.Sum(d => d.Datagram.Length)));
        var offset = 0;
        for (var i = 0; i < datagrams.Count; i++)
        {
            var (datagram, source) = datagrams[i];
            datagram.CopyTo(batch.Arena[offset..]);
            Assert.True(batch.TryAdd(offset, datagram.Length));
            var address = source.Serialize();
            address.Buffer.Span.CopyTo(batch.Sources[i].Buffer.Span);
            batch.Sources[i].Size = address.Size;
            offset += datagram.Length;
        }

        return batch;
    }

    private static List<byte[]> NumberedPackets(int count, int seed = 1)
    {
        var random = new Random(seed);
        var packets = new List<byte[]>();
        for (var i = 0; i < count; i++)
        {
            var packet = EnginePair.AToB(random.Next(0, 1400), fill: (byte)i);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)i); // IPv4 identification: the sequence
            packets.Add(packet);
        }

        return packets;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void A_batch_goes_through_in_order_and_intact_with_any_number_of_crypto_workers(int workers)
    {
        using var pair = new EnginePair();
        pair.A.CryptoWorkers = workers;
        pair.B.CryptoWorkers = workers;
        pair.Connect();
        pair.BTransport.Tun.Clear();

        for (var round = 0; round < 20; round++)
        {
            var packets = NumberedPackets(64, seed: round);
            pair.A.HandleTunBatch(TunBatch(packets));
            var sent = pair.ATransport.TakeOutbox();
            Assert.Equal(64, sent.Count);
            Assert.All(sent, s => Assert.Equal(pair.BEndpoint, s.Destination));
            Assert.All(sent, s => Assert.True((s.Datagram.Length - 32) % 16 == 0 || s.Datagram.Length - 32 == pair.A.Mtu)); // padded to 16, at most the MTU

            pair.B.HandleDatagramBatch(DatagramBatch(sent.Select(s => s.Datagram).ToList(), pair.AEndpoint));
            Assert.Equal(packets.Count, pair.BTransport.Tun.Count);
            for (var i = 0; i < packets.Count; i++)
            {
                Assert.Equal(packets[i], pair.BTransport.Tun[i]);
            }

            pair.BTransport.Tun.Clear();
        }

        Assert.Equal(0, pair.A.Counters.TotalDrops);
        Assert.Equal(0, pair.B.Counters.TotalDrops);
    }

    [Fact]
    public void The_batch_path_and_the_one_packet_path_understand_each_other()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.BTransport.Tun.Clear();

        // batch out, one at a time in
        var packets = NumberedPackets(10);
        pair.A.HandleTunBatch(TunBatch(packets));
        pair.Pump();
        Assert.Equal(packets, pair.BTransport.Tun);

        // one at a time out, batch in
        var back = Enumerable.Range(0, 10).Select(i => EnginePair.BToA(i * 100, (byte)i)).ToList();
        foreach (var packet in back)
        {
            pair.B.HandleTunPacket(packet);
        }

        var datagrams = pair.BTransport.TakeOutbox().Select(s => s.Datagram).ToList();
        pair.A.HandleDatagramBatch(DatagramBatch(datagrams, pair.BEndpoint));
        Assert.Equal(back, pair.ATransport.Tun);
    }

    [Fact]
    public void Bad_entries_in_a_received_batch_are_dropped_one_by_one_and_the_rest_arrive()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.BTransport.Tun.Clear();
        var packets = NumberedPackets(8);
        pair.A.HandleTunBatch(TunBatch(packets));
        var datagrams = pair.ATransport.TakeOutbox().Select(s => s.Datagram).ToList();

        var tampered = (byte[])datagrams[2].Clone();
        tampered[^1] ^= 1;
        var unknownReceiver = (byte[])datagrams[3].Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(unknownReceiver.AsSpan(4), BinaryPrimitives.ReadUInt32LittleEndian(unknownReceiver.AsSpan(4)) + 1);
        var input = new List<byte[]>
        {
            datagrams[0], datagrams[1], tampered, unknownReceiver, new byte[] { 4, 0, 0 }, new byte[] { 9, 0, 0, 0, 1, 2, 3 },
            datagrams[4], datagrams[4], datagrams[5],
        };

        var before = pair.B.Counters.TotalDrops;
        pair.B.HandleDatagramBatch(DatagramBatch(input, pair.AEndpoint));

        Assert.Equal([packets[0], packets[1], packets[4], packets[5]], pair.BTransport.Tun);
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.DecryptFailed));
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.ReplayedCounter));
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.UnknownReceiverIndex));
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.InvalidLength));
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.UnknownType));
        Assert.Equal(before + 5, pair.B.Counters.TotalDrops);

        // what was dropped did not spoil the replay window for what comes later
        pair.B.HandleDatagramBatch(DatagramBatch([datagrams[2], datagrams[3], datagrams[6], datagrams[7]], pair.AEndpoint));
        Assert.Equal([packets[0], packets[1], packets[4], packets[5], packets[2], packets[3], packets[6], packets[7]], pair.BTransport.Tun);
    }

    [Fact]
    public void A_spoofed_inner_source_in_a_batch_is_dropped_and_its_neighbours_arrive()
    {
        using var pair = new EnginePair();
        pair.Connect();
        pair.BTransport.Tun.Clear();
        var good = EnginePair.AToB(100, 1);
        var spoofed = EnginePair.Ipv4("10.9.9.9", "10.0.0.2", 100, 2);
        pair.A.HandleTunBatch(TunBatch([good, spoofed, good]));
        var datagrams = pair.ATransport.TakeOutbox().Select(s => s.Datagram).ToList();
        Assert.Equal(3, datagrams.Count);

        pair.B.HandleDatagramBatch(DatagramBatch(datagrams, pair.AEndpoint));

        Assert.Equal([good, good], pair.BTransport.Tun);
        Assert.Equal(1, pair.B.Counters.Drops(WireGuardDropReason.SourceNotAllowed));
    }

    [Fact]
    public void Packets_before_a_session_wait_in_order_and_follow_the_handshake()
    {
        using var pair = new EnginePair();
        var packets = NumberedPackets(20);
        pair.A.HandleTunBatch(TunBatch(packets[..10]));
        var first = pair.ATransport.TakeOutbox();
        Assert.Single(first); // the initiation only: the data waits
        Assert.Equal(1, first[0].Datagram[0]);

        pair.A.HandleTunBatch(TunBatch(packets[10..]));
        Assert.Empty(pair.ATransport.Outbox); // still waiting, no second initiation within Rekey-Timeout

        // the handshake itself through batches: initiation -> B, response -> A
        pair.B.HandleDatagramBatch(DatagramBatch([first[0].Datagram], pair.AEndpoint));
        var response = pair.BTransport.TakeOutbox();
        Assert.Single(response);
        pair.A.HandleDatagramBatch(DatagramBatch([response[0].Datagram], pair.BEndpoint));

        pair.Pump();
        Assert.Equal(packets, pair.BTransport.Tun);
    }

    [Fact]
    public void Entries_without_a_route_or_without_an_ip_header_or_without_headroom_are_counted_and_skipped()
    {
        using var pair = new EnginePair();
        pair.Connect();
        var good = EnginePair.AToB(50);
        var noRoute = EnginePair.Ipv4("10.0.0.1", "10.7.7.7", 50);
        byte[] garbage = [0x11, 0x22, 0x33];
        var batch = TunBatch([good, noRoute, garbage, good], spare: 2);

        // two entries that break the contract: no headroom in front, no tailroom behind
        good.CopyTo(batch.Arena);
        Assert.True(batch.TryAdd(0, good.Length));
        var end = batch.Arena.Length - good.Length;
        good.CopyTo(batch.Arena[end..]);
        Assert.True(batch.TryAdd(end, good.Length));

        pair.A.HandleTunBatch(batch);

        Assert.Equal(2, pair.ATransport.TakeOutbox().Count);
        Assert.Equal(1, pair.A.Counters.Drops(WireGuardDropReason.NoRoute));
        Assert.Equal(1, pair.A.Counters.Drops(WireGuardDropReason.InvalidTunPacket));
        Assert.Equal(2, pair.A.Counters.Drops(WireGuardDropReason.InternalError));
        Assert.Null(batch.Endpoints[1]);
        Assert.Null(batch.Endpoints[4]);
        Assert.Null(batch.Endpoints[5]);
    }

    [Fact]
    public void The_steady_state_batch_path_allocates_nothing()
    {
        using var pair = new EnginePair();
        pair.A.CryptoWorkers = 0;
        pair.B.CryptoWorkers = 0;
        pair.Connect();
        var packets = NumberedPackets(32);
        var batch = TunBatch(packets);
        var source = pair.AEndpoint.Serialize();

        // A seals the batch in place; the same batch, now datagrams, goes into B as a UDP reader would hand it over
        void RoundTrip()
        {
            Refill(batch, packets);
            pair.A.HandleTunBatch(batch);
            for (var i = 0; i < batch.Count; i++)
            {
                source.Buffer.Span.CopyTo(batch.Sources[i].Buffer.Span);
                batch.Sources[i].Size = source.Size;
            }

            pair.B.HandleDatagramBatch(batch);
        }

        pair.ATransport.Discard = true;
        pair.BTransport.Discard = true;
        for (var round = 0; round < 3; round++)
        {
            RoundTrip();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var round = 0; round < 10; round++)
        {
            RoundTrip();
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);

        // and the packets did arrive: the last round's entries are B's plaintext packets
        for (var i = 0; i < packets.Count; i++)
        {
            Assert.Equal(packets[i], batch.Packet(i).ToArray());
        }

        Assert.Equal(0, pair.B.Counters.TotalDrops);
    }

    private static void Refill(PacketBatch batch, IReadOnlyList<byte[]> packets)
    {
        batch.Clear();
        for (var i = 0; i < packets.Count; i++)
        {
            var offset = (i * Stride) + PacketBatch.Headroom;
            packets[i].CopyTo(batch.Arena[offset..]);
            batch.TryAdd(offset, packets[i].Length);
        }
    }
}
