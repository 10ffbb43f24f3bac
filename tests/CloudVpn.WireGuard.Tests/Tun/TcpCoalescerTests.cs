using System.Buffers.Binary;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Tun;
using static CloudVpn.WireGuard.Tests.Tun.PacketFactory;

namespace CloudVpn.WireGuard.Tests.Tun;

public sealed class TcpCoalescerTests
{
    private static readonly byte[] Timestamps = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7];

    [Theory]
    [InlineData(false, 1000, 333)]
    [InlineData(true, 1000, 333)]
    [InlineData(false, 1001, 1001)]
    [InlineData(true, 1427, 1)]
    public void A_run_of_one_flow_becomes_one_super_packet_that_splits_back_to_the_same_bytes(bool v6, int mss, int lastPayload)
    {
        var packets = new List<byte[]>();
        for (var i = 0; i < 20; i++)
        {
            var size = i == 19 ? lastPayload : mss;
            packets.Add(Tcp(v6, 7000 + (uint)(i * mss), Payload(size, i), (byte)(i == 19 ? Ack | Psh : Ack), id: (ushort)(500 + i), options: Timestamps));
        }

        var batch = BatchOf(packets);
        var coalescer = new TcpCoalescer();
        coalescer.Plan(batch);
        Assert.Equal(1, coalescer.ItemCount);
        Assert.Equal(20, coalescer.PacketCount(0));

        var written = new byte[70_000];
        var length = coalescer.CopyItem(0, batch, written);
        var header = VirtioNetHeader.Read(written);
        var l4 = v6 ? 40 : 20;
        Assert.Equal(VirtioNetHeader.FlagNeedsCsum, header.Flags);
        Assert.Equal(v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, header.GsoType);
        Assert.Equal(mss, header.GsoSize);
        Assert.Equal(l4 + 32, header.HeaderLength);
        Assert.Equal(l4, header.CsumStart);
        Assert.Equal(16, header.CsumOffset);

        var super = written.AsSpan(VirtioNetHeader.Size, length - VirtioNetHeader.Size);
        Assert.Equal(l4 + 32 + (19 * mss) + lastPayload, super.Length);
        Assert.Equal(super.Length - (v6 ? 40 : 0), BinaryPrimitives.ReadUInt16BigEndian(super[(v6 ? 4 : 2)..]));
        if (!v6)
        {
            Assert.Equal(0xffff, Sum(super[..20])); // a valid IPv4 header checksum
        }

        Assert.Equal(PseudoSum(v6, super, 6, super.Length - l4), BinaryPrimitives.ReadUInt16BigEndian(super[(l4 + 16)..])); // partial, for NEEDS_CSUM
        Assert.Equal(Ack | Psh, super[l4 + 13]);

        var back = new PacketBatch(64, 128 * 1024);
        var next = 0;
        Assert.Equal(SplitResult.Done, GsoSplitter.Split(super, header, back, ref next));
        Assert.Equal(20, back.Count);
        for (var i = 0; i < 20; i++)
        {
            Assert.True(back.Packet(i).SequenceEqual(packets[i]), $"segment {i} differs after coalesce and split");
        }
    }

    [Fact]
    public void Interleaved_flows_are_merged_each_in_its_own_order_and_other_packets_pass_alone()
    {
        var a = Enumerable.Range(0, 4).Select(i => Tcp(false, 100 + (uint)(i * 500), Payload(500, i), sourcePort: 1111)).ToArray();
        var b = Enumerable.Range(0, 2).Select(i => Tcp(false, 9000 + (uint)(i * 700), Payload(700, 10 + i), sourcePort: 2222)).ToArray();
        var udp = UdpPacket(false, Payload(100, 3));
        var batch = BatchOf([a[0], b[0], a[1], b[1], a[2], udp, a[3]]);
        var coalescer = new TcpCoalescer();
        coalescer.Plan(batch);

        Assert.Equal(3, coalescer.ItemCount);
        Assert.Equal([4, 2, 1], Enumerable.Range(0, 3).Select(coalescer.PacketCount));
        var buffer = new byte[70_000];
        var n = coalescer.CopyItem(0, batch, buffer);
        Assert.True(buffer.AsSpan(VirtioNetHeader.Size + 40, n - VirtioNetHeader.Size - 40).SequenceEqual(a.SelectMany(p => p[40..]).ToArray()));
        n = coalescer.CopyItem(2, batch, buffer);
        Assert.True(buffer.AsSpan(0, VirtioNetHeader.Size).ToArray().All(x => x == 0), "a single packet gets a zero virtio_net_hdr");
        Assert.True(buffer.AsSpan(VirtioNetHeader.Size, n - VirtioNetHeader.Size).SequenceEqual(udp));
    }

    [Theory]
    [InlineData("seq-gap", 2)]
    [InlineData("other-ack", 2)]
    [InlineData("other-options", 2)]
    [InlineData("bad-checksum", 3)]
    [InlineData("psh-in-the-middle", 2)]
    [InlineData("short-in-the-middle", 2)]
    [InlineData("longer-after", 2)]
    [InlineData("fin", 3)]
    [InlineData("syn", 3)]
    [InlineData("no-ack", 3)]
    [InlineData("other-ttl", 2)]
    [InlineData("ipv4-fragment", 3)]
    [InlineData("zero-payload", 3)]
    [InlineData("ipv4-id-gap-without-df", 2)]
    [InlineData("ipv4-id-gap-with-df", 1)]
    [InlineData("nothing-wrong", 1)]
    public void Segments_that_must_not_merge_stay_apart(string what, int items)
    {
        var p = Enumerable.Range(0, 3).Select(i => Tcp(false, 1000 + (uint)(i * 800), Payload(800, i), options: Timestamps)).ToArray();
        switch (what)
        {
            case "seq-gap":
                p[2] = Tcp(false, 1000 + 1600 + 1, Payload(800, 2), options: Timestamps);
                break;
            case "other-ack":
                p[2] = Tcp(false, 2600, Payload(800, 2), ack: 9999, options: Timestamps);
                break;
            case "other-options":
                p[2] = Tcp(false, 2600, Payload(800, 2), options: [1, 1, 8, 10, 0, 0, 0, 10, 0, 0, 0, 7]);
                break;
            case "bad-checksum":
                p[1][^1] ^= 1; // the payload changed after the checksum was computed
                break;
            case "psh-in-the-middle":
                p[1] = Tcp(false, 1800, Payload(800, 1), Ack | Psh, options: Timestamps);
                break;
            case "short-in-the-middle":
                p[1] = Tcp(false, 1800, Payload(400, 1), options: Timestamps);
                p[2] = Tcp(false, 2200, Payload(800, 2), options: Timestamps);
                break;
            case "longer-after":
                p[0] = Tcp(false, 1000, Payload(400, 0), options: Timestamps);
                p[1] = Tcp(false, 1400, Payload(800, 1), options: Timestamps);
                p[2] = Tcp(false, 2200, Payload(800, 2), options: Timestamps);
                break;
            case "fin":
                p[1] = Tcp(false, 1800, Payload(800, 1), Ack | Fin, options: Timestamps);
                break;
            case "syn":
                p[1] = Tcp(false, 1800, Payload(800, 1), Ack | Syn, options: Timestamps);
                break;
            case "no-ack":
                p[1] = Tcp(false, 1800, Payload(800, 1), Psh, options: Timestamps);
                break;
            case "other-ttl":
                p[2] = Tcp(false, 2600, Payload(800, 2), options: Timestamps, ttl: 63);
                break;
            case "ipv4-fragment":
                p[1][6] |= 0x20; // more fragments
                FinishTransport(p[1], false, 6);
                break;
            case "ipv4-id-gap-without-df":
            case "ipv4-id-gap-with-df":
                for (var i = 0; i < 3; i++)
                {
                    p[i][5] = (byte)(i == 2 ? 9 : i); // identifications 0, 1, 9
                    if (what == "ipv4-id-gap-without-df")
                    {
                        p[i][6] = 0;
                    }

                    FinishTransport(p[i], false, 6);
                }

                break;
            case "zero-payload":
                p[1] = Tcp(false, 1800, [], options: Timestamps);
                break;
        }

        var batch = BatchOf(p);
        var coalescer = new TcpCoalescer();
        coalescer.Plan(batch);
        Assert.Equal(items, coalescer.ItemCount);
        Assert.Equal(3, Enumerable.Range(0, coalescer.ItemCount).Sum(coalescer.PacketCount));
    }

    [Theory]
    [InlineData(60, 1400)]
    [InlineData(100, 100)]
    [InlineData(3, 30000)]
    public void Super_packets_stay_within_64_KiB_and_the_segment_limit(int count, int mss)
    {
        var packets = Enumerable.Range(0, count).Select(i => Tcp(true, (uint)(i * mss), Payload(mss, i))).ToList();
        var batch = BatchOf(packets);
        var coalescer = new TcpCoalescer();
        coalescer.Plan(batch);
        var buffer = new byte[200_000];
        var total = 0;
        var next = 0;
        var back = new PacketBatch(256, 512 * 1024);
        for (var item = 0; item < coalescer.ItemCount; item++)
        {
            Assert.True(coalescer.PacketCount(item) <= TcpCoalescer.MaxSegments);
            var n = coalescer.CopyItem(item, batch, buffer);
            Assert.True(n - VirtioNetHeader.Size <= PacketBatch.MaxPacket, $"item {item} is {n - VirtioNetHeader.Size} bytes");
            total += coalescer.PacketCount(item);
            Assert.Equal(SplitResult.Done, GsoSplitter.Split(buffer.AsSpan(VirtioNetHeader.Size, n - VirtioNetHeader.Size), VirtioNetHeader.Read(buffer), back, ref next));
        }

        Assert.Equal(count, total);
        Assert.Equal(count, back.Count);
        for (var i = 0; i < count; i++)
        {
            Assert.True(back.Packet(i).SequenceEqual(packets[i]), $"packet {i}");
        }
    }

    [Fact]
    public void Empty_entries_are_skipped()
    {
        var batch = BatchOf([Tcp(false, 1, Payload(10, 1)), Tcp(false, 11, Payload(10, 2))]);
        batch.Lengths[0] = 0;
        var coalescer = new TcpCoalescer();
        coalescer.Plan(batch);
        Assert.Equal(1, coalescer.ItemCount);
        Assert.Equal(1, coalescer.PacketCount(0));
    }

    [Fact]
    public void Fuller_and_fuller_batches_of_one_reader_allocate_nothing_after_its_first()
    {
        // A UDP reader's batch holds up to 4096 segments (64 messages of up to 64 GRO segments); under bulk traffic its
        // batches fill up gradually. The plan's arrays are sized once for the batch's capacity, not again for each
        // fuller batch (which cost 50-250 KB per iperf3 run on the receiving side).
        // 7 flows interleaved, 85 or 86 segments each
        var packets = Enumerable.Range(0, 600).Select(i => Tcp(false, 1 + (uint)(i / 7 * 100), Payload(100, i), sourcePort: (ushort)(1000 + (i % 7)))).ToList();
        var batch = new PacketBatch(4096, 600 * 256);
        foreach (var p in packets)
        {
            Assert.True(GsoSplitter.TryReserve(batch, p.Length, out var offset));
            p.CopyTo(batch.Arena[offset..]);
        }

        var full = batch.Count;
        var coalescer = new TcpCoalescer();
        batch.Count = 1;
        coalescer.Plan(batch); // the first packet of the reader (a ping, say): the arrays are made here
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var count = 2; count <= full; count++)
        {
            batch.Count = count;
            coalescer.Plan(batch);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(14, coalescer.ItemCount); // two super-packets per flow (64 segments at most each): still planned right
        Assert.Equal(0, allocated);
    }

    internal static PacketBatch BatchOf(IReadOnlyList<byte[]> packets)
    {
        var batch = new PacketBatch(Math.Max(1, packets.Count), packets.Sum(p => p.Length + 64) + 64);
        foreach (var p in packets)
        {
            Assert.True(GsoSplitter.TryReserve(batch, p.Length, out var offset));
            p.CopyTo(batch.Arena[offset..]);
        }

        return batch;
    }
}
