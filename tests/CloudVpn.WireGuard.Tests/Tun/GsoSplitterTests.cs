using System.Buffers.Binary;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Tun;
using static CloudVpn.WireGuard.Tests.Tun.PacketFactory;

namespace CloudVpn.WireGuard.Tests.Tun;

public sealed class GsoSplitterTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(31)]
    [InlineData(33)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(1499)]
    [InlineData(65535)]
    public void Wide_checksum_matches_the_plain_one_at_any_length_and_alignment(int length)
    {
        var data = Payload(length + 3, length);
        for (var start = 0; start < 3; start++)
        {
            var span = data.AsSpan(start, length);
            var expected = Sum(span);
            var wide = InternetChecksum.Fold(InternetChecksum.Add(span));
            Assert.Equal(expected, BinaryPrimitives.ReverseEndianness(wide));
        }
    }

    [Fact]
    public void Wide_checksum_keeps_every_carry_with_a_huge_accumulator()
    {
        var data = new byte[4099];
        data.AsSpan().Fill(0xff);
        data[100] = 0xfe;
        const ulong Initial = ulong.MaxValue - 5;
        var plain = Sum(data);
        Assert.Equal(plain, BinaryPrimitives.ReverseEndianness(InternetChecksum.Fold(InternetChecksum.Add(data))));
        var combined = (uint)InternetChecksum.Fold(InternetChecksum.Add(data)) + InternetChecksum.Fold(Initial);
        combined = (combined & 0xffff) + (combined >> 16);
        Assert.Equal((ushort)combined, InternetChecksum.Fold(InternetChecksum.Add(data, Initial)));
    }

    [Theory]
    [InlineData(false, 1000, 4500)]
    [InlineData(false, 1448, 65495 - 40)]
    [InlineData(true, 1001, 4999)]
    [InlineData(true, 1428, 30000)]
    [InlineData(false, 1200, 1200)]
    public void Tcp_super_packet_splits_into_valid_segments(bool v6, int mss, int payloadLength)
    {
        var payload = Payload(payloadLength, mss);
        var options = new byte[] { 1, 1, 8, 10, 0, 0, 1, 2, 0, 0, 3, 4 }; // NOP NOP timestamp
        var super = Tcp(v6, 0xfffff000, payload, Ack | Psh | Fin | Cwr | Ece, id: 0xfffe, options: options);
        var l4 = v6 ? 40 : 20;
        var header = Gso(v6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, mss, l4, 16, l4 + 32);
        MakePartial(super, v6, 6, l4 + 16);

        var batch = new PacketBatch(128, 256 * 1024);
        var next = 0;
        Assert.Equal(SplitResult.Done, GsoSplitter.Split(super, header, batch, ref next));

        var segments = (payloadLength + mss - 1) / mss;
        Assert.Equal(segments, batch.Count);
        var headerLength = l4 + 32;
        for (var i = 0; i < segments; i++)
        {
            var segment = batch.Packet(i);
            var expectedPayload = Math.Min(mss, payloadLength - (i * mss));
            Assert.Equal(headerLength + expectedPayload, segment.Length);
            Assert.True(ChecksumsValid(segment), $"segment {i} has a bad checksum");
            Assert.True(segment[headerLength..].SequenceEqual(payload.AsSpan(i * mss, expectedPayload)), $"segment {i} payload");
            Assert.Equal(0xfffff000u + (uint)(i * mss), BinaryPrimitives.ReadUInt32BigEndian(segment[(l4 + 4)..]));
            Assert.True(segment.Slice(l4 + 20, 12).SequenceEqual(options), "options are copied");
            var flags = segment[l4 + 13];
            Assert.Equal(i == segments - 1, (flags & (Psh | Fin)) == (Psh | Fin));
            Assert.Equal(i != segments - 1, (flags & (Psh | Fin)) == 0);
            Assert.Equal(i == 0, (flags & Cwr) != 0);
            Assert.True((flags & (Ack | Ece)) == (Ack | Ece));
            if (v6)
            {
                Assert.Equal(segment.Length - 40, BinaryPrimitives.ReadUInt16BigEndian(segment[4..]));
                Assert.Equal(0x23, segment[3]); // flow label kept
            }
            else
            {
                Assert.Equal(segment.Length, BinaryPrimitives.ReadUInt16BigEndian(segment[2..]));
                Assert.Equal((ushort)(0xfffe + i), BinaryPrimitives.ReadUInt16BigEndian(segment[4..])); // wraps
            }
        }

        AssertEntriesOwnTheirRoom(batch);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Udp_super_packet_splits_into_datagrams_with_their_own_lengths_and_checksums(bool v6)
    {
        var payload = Payload(3333, 3);
        var super = UdpPacket(v6, payload, id: 7);
        var l4 = v6 ? 40 : 20;
        MakePartial(super, v6, 17, l4 + 6);
        var batch = new PacketBatch(16, 64 * 1024);
        var next = 0;
        Assert.Equal(SplitResult.Done, GsoSplitter.Split(super, Gso(VirtioNetHeader.GsoUdpL4, 1200, l4, 6, l4 + 8), batch, ref next));
        Assert.Equal(3, batch.Count);
        for (var i = 0; i < 3; i++)
        {
            var d = batch.Packet(i);
            var expected = Math.Min(1200, 3333 - (i * 1200));
            Assert.Equal(8 + expected, BinaryPrimitives.ReadUInt16BigEndian(d[(l4 + 4)..]));
            Assert.True(ChecksumsValid(d), $"datagram {i}");
            Assert.True(d[(l4 + 8)..].SequenceEqual(payload.AsSpan(i * 1200, expected)));
        }
    }

    [Theory]
    [InlineData(false, 6, 16, 777)]
    [InlineData(true, 6, 16, 1)]
    [InlineData(false, 17, 6, 513)]
    [InlineData(true, 17, 6, 0)]
    public void A_partial_checksum_on_a_plain_packet_is_completed(bool v6, byte protocol, int checksumOffset, int payloadLength)
    {
        var packet = protocol == 6 ? Tcp(v6, 1, Payload(payloadLength, 9)) : UdpPacket(v6, Payload(payloadLength, 9));
        var original = packet.ToArray();
        var l4 = v6 ? 40 : 20;
        MakePartial(packet, v6, protocol, l4 + checksumOffset);
        Assert.False(packet.AsSpan().SequenceEqual(original)); // the test starts from a packet that really is incomplete

        var header = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = (ushort)l4, CsumOffset = (ushort)checksumOffset };
        var batch = new PacketBatch(4, 70_000);
        var next = 0;
        Assert.Equal(SplitResult.Done, GsoSplitter.Split(packet, header, batch, ref next));
        Assert.True(batch.Packet(0).SequenceEqual(original));
    }

    [Fact]
    public void A_packet_without_offload_work_is_copied_as_it_is()
    {
        var packet = Tcp(false, 1, Payload(100, 1));
        var batch = new PacketBatch(4, 70_000);
        var next = 0;
        Assert.Equal(SplitResult.Done, GsoSplitter.Split(packet, default, batch, ref next));
        Assert.True(batch.Packet(0).SequenceEqual(packet));
    }

    [Fact]
    public void A_full_batch_is_resumed_at_the_next_segment()
    {
        var payload = Payload(5000, 5);
        var super = Tcp(false, 10, payload, Ack | Psh);
        var header = Gso(VirtioNetHeader.GsoTcpV4, 1000, 20, 16, 40);
        var batch = new PacketBatch(3, 64 * 1024);
        var next = 0;
        Assert.Equal(SplitResult.BatchFull, GsoSplitter.Split(super, header, batch, ref next));
        Assert.Equal(3, next);
        Assert.Equal(3, batch.Count);
        Assert.Equal(10u + 2000, BinaryPrimitives.ReadUInt32BigEndian(batch.Packet(2)[24..]));
        batch.Clear();
        Assert.Equal(SplitResult.Done, GsoSplitter.Split(super, header, batch, ref next));
        Assert.Equal(0, next);
        Assert.Equal(2, batch.Count);
        Assert.Equal(10u + 3000, BinaryPrimitives.ReadUInt32BigEndian(batch.Packet(0)[24..]));
        Assert.Equal(Psh, batch.Packet(1)[33] & Psh);
        Assert.Equal(0, batch.Packet(0)[33] & Psh);
        Assert.True(ChecksumsValid(batch.Packet(1)));
    }

    [Fact]
    public void A_small_arena_fills_by_bytes_not_only_by_count()
    {
        var super = Tcp(false, 10, Payload(5000, 5));
        var batch = new PacketBatch(64, 2 * (PacketBatch.Headroom + 1040 + PacketBatch.Tailroom + 8));
        var next = 0;
        Assert.Equal(SplitResult.BatchFull, GsoSplitter.Split(super, Gso(VirtioNetHeader.GsoTcpV4, 1000, 20, 16, 40), batch, ref next));
        Assert.Equal(2, batch.Count);
        AssertEntriesOwnTheirRoom(batch);
    }

    [Theory]
    [InlineData("v6-packet-v4-gso")]
    [InlineData("truncated-tcp-header")]
    [InlineData("zero-gso-size")]
    [InlineData("csum-start-wrong")]
    [InlineData("ufo")]
    [InlineData("csum-beyond-end")]
    public void Malformed_input_is_refused_and_adds_nothing(string what)
    {
        var v6 = what == "v6-packet-v4-gso";
        var packet = Tcp(v6, 1, Payload(3000, 1));
        var header = Gso(VirtioNetHeader.GsoTcpV4, 1000, 20, 16, 40);
        switch (what)
        {
            case "truncated-tcp-header":
                packet = packet[..30];
                break;
            case "zero-gso-size":
                header.GsoSize = 0;
                break;
            case "csum-start-wrong":
                header.CsumStart = 24;
                break;
            case "ufo":
                header.GsoType = VirtioNetHeader.GsoUdp;
                break;
            case "csum-beyond-end":
                header = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsCsum, CsumStart = 20, CsumOffset = 3019 };
                break;
        }

        var batch = new PacketBatch(8, 64 * 1024);
        var next = 0;
        Assert.Equal(SplitResult.Invalid, GsoSplitter.Split(packet, header, batch, ref next));
        Assert.Equal(0, batch.Count);
    }

    internal static VirtioNetHeader Gso(byte type, int size, int l4, int checksumOffset, int headerLength) => new()
    {
        Flags = VirtioNetHeader.FlagNeedsCsum,
        GsoType = type,
        GsoSize = (ushort)size,
        HeaderLength = (ushort)headerLength,
        CsumStart = (ushort)l4,
        CsumOffset = (ushort)checksumOffset,
    };

    /// <summary>Replaces the checksum by the folded pseudo-header sum, as the kernel hands over a CHECKSUM_PARTIAL packet.</summary>
    internal static void MakePartial(byte[] packet, bool v6, byte protocol, int checksumAt)
    {
        var l4 = v6 ? 40 : 20;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(checksumAt), PseudoSum(v6, packet, protocol, packet.Length - l4));
    }

    internal static void AssertEntriesOwnTheirRoom(PacketBatch batch)
    {
        var end = -1;
        for (var i = 0; i < batch.Count; i++)
        {
            var start = batch.Offsets[i] - PacketBatch.Headroom;
            Assert.True(start > end, $"entry {i}'s headroom overlaps the entry before");
            end = batch.Offsets[i] + batch.Lengths[i] + PacketBatch.Tailroom - 1;
            Assert.True(end < batch.Arena.Length, $"entry {i}'s tailroom is outside the arena");
        }
    }
}
