using System.Buffers.Binary;
using CloudVpn.WireGuard.Buffers;

namespace CloudVpn.WireGuard.Tun;

/// <summary>What <see cref="GsoSplitter.Split"/> did with one packet read from the TUN device.</summary>
internal enum SplitResult
{
    /// <summary>Every segment is in the batch.</summary>
    Done,

    /// <summary>The batch filled up: hand it over, clear it and call again with the same segment index.</summary>
    BatchFull,

    /// <summary>The packet or its virtio_net_hdr is malformed (nothing was added for it).</summary>
    Invalid,
}

/// <summary>
/// Turns what one read of an <c>IFF_VNET_HDR</c> TUN device returned into IP packets in a <see cref="PacketBatch"/>:
/// a TCP or UDP super-packet (GSO) becomes MSS-sized segments with their own IP lengths, IPv4 identification and
/// header checksum, TCP sequence numbers and flags, and full TCP/UDP checksums; a non-GSO packet with a partial checksum
/// (NEEDS_CSUM) gets its checksum completed. Each entry is placed with <see cref="PacketBatch.Headroom"/> bytes before
/// and <see cref="PacketBatch.Tailroom"/> after it that belong to it alone. No allocation.
/// </summary>
internal static class GsoSplitter
{
    private const byte ProtocolTcp = 6;
    private const byte ProtocolUdp = 17;
    private const byte TcpFin = 0x01;
    private const byte TcpPsh = 0x08;
    private const byte TcpCwr = 0x80;

    /// <summary>
    /// Adds the packet (or the segments of the super-packet, starting at <paramref name="nextSegment"/>) to
    /// <paramref name="batch"/>. On <see cref="SplitResult.BatchFull"/>, <paramref name="nextSegment"/> says where to
    /// resume; it is 0 again after <see cref="SplitResult.Done"/>.
    /// </summary>
    public static SplitResult Split(ReadOnlySpan<byte> packet, in VirtioNetHeader header, PacketBatch batch, ref int nextSegment)
    {
        var gsoType = (byte)(header.GsoType & ~VirtioNetHeader.GsoEcn);
        if (gsoType == VirtioNetHeader.GsoNone)
        {
            return AddWhole(packet, header, batch);
        }

        if (packet.Length < 20 || header.GsoSize == 0)
        {
            return SplitResult.Invalid;
        }

        var version = packet[0] >> 4;
        int l4 = header.CsumStart;
        bool isTcp;
        switch (gsoType)
        {
            case VirtioNetHeader.GsoTcpV4 when version == 4 && l4 == (packet[0] & 0x0f) * 4 && l4 >= 20:
            case VirtioNetHeader.GsoTcpV6 when version == 6 && l4 >= 40:
                isTcp = true;
                break;
            case VirtioNetHeader.GsoUdpL4 when (version == 4 && l4 == (packet[0] & 0x0f) * 4 && l4 >= 20) || (version == 6 && l4 >= 40):
                isTcp = false;
                break;
            default:
                return SplitResult.Invalid;
        }

        if (l4 + (isTcp ? 20 : 8) > packet.Length)
        {
            return SplitResult.Invalid;
        }

        var l4HeaderLength = isTcp ? (packet[l4 + 12] >> 4) * 4 : 8;
        var headerLength = l4 + l4HeaderLength;
        if (l4HeaderLength < (isTcp ? 20 : 8) || headerLength > packet.Length)
        {
            return SplitResult.Invalid;
        }

        int mss = header.GsoSize;
        var payload = packet.Length - headerLength;
        var segments = payload <= mss ? 1 : (payload + mss - 1) / mss;
        var addressOffset = version == 4 ? 12 : 8;
        var addressLength = version == 4 ? 4 : 16;
        var firstId = version == 4 ? BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) : (ushort)0;
        var firstSeq = isTcp ? BinaryPrimitives.ReadUInt32BigEndian(packet[(l4 + 4)..]) : 0u;

        for (var i = nextSegment; i < segments; i++)
        {
            var segmentPayload = Math.Min(mss, payload - (i * mss));
            var total = headerLength + segmentPayload;
            if (!TryReserve(batch, total, out var offset))
            {
                nextSegment = i;
                return SplitResult.BatchFull;
            }

            var segment = batch.Arena.Slice(offset, total);
            packet[..headerLength].CopyTo(segment);
            packet.Slice(headerLength + (i * mss), segmentPayload).CopyTo(segment[headerLength..]);

            if (version == 4)
            {
                BinaryPrimitives.WriteUInt16BigEndian(segment[2..], (ushort)total);
                BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(firstId + i));
                segment[10] = 0;
                segment[11] = 0;
                InternetChecksum.WriteComplement(segment[10..], InternetChecksum.Add(segment[..l4]));
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(total - 40));
            }

            int checksumAt;
            byte protocol;
            if (isTcp)
            {
                BinaryPrimitives.WriteUInt32BigEndian(segment[(l4 + 4)..], firstSeq + (uint)(i * mss));
                ref var flags = ref segment[l4 + 13];
                if (i != segments - 1)
                {
                    flags &= unchecked((byte)~(TcpFin | TcpPsh));
                }

                if (i != 0)
                {
                    flags &= unchecked((byte)~TcpCwr);
                }

                checksumAt = l4 + 16;
                protocol = ProtocolTcp;
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(segment[(l4 + 4)..], (ushort)(total - l4));
                checksumAt = l4 + 6;
                protocol = ProtocolUdp;
            }

            segment[checksumAt] = 0;
            segment[checksumAt + 1] = 0;
            var sum = InternetChecksum.PseudoHeader(
                segment.Slice(addressOffset, addressLength), segment.Slice(addressOffset + addressLength, addressLength), protocol, total - l4);
            sum = InternetChecksum.Add(segment[l4..], sum);
            InternetChecksum.WriteComplement(segment[checksumAt..], sum);
            if (protocol == ProtocolUdp && segment[checksumAt] == 0 && segment[checksumAt + 1] == 0)
            {
                segment[checksumAt] = 0xff; // UDP sends a computed zero as all ones (zero means "no checksum")
                segment[checksumAt + 1] = 0xff;
            }
        }

        nextSegment = 0;
        return SplitResult.Done;
    }

    /// <summary>Adds an entry of <paramref name="length"/> bytes after the last one (headroom before, tailroom after,
    /// 8-byte aligned) and returns its offset; false when the batch or its arena is full.</summary>
    public static bool TryReserve(PacketBatch batch, int length, out int offset)
    {
        var cursor = batch.Count == 0 ? 0 : batch.Offsets[batch.Count - 1] + batch.Lengths[batch.Count - 1] + PacketBatch.Tailroom;
        cursor = (cursor + 7) & ~7;
        offset = cursor + PacketBatch.Headroom;
        if (batch.Count == batch.Capacity || offset + length + PacketBatch.Tailroom > batch.Arena.Length)
        {
            return false;
        }

        return batch.TryAdd(offset, length);
    }

    private static SplitResult AddWhole(ReadOnlySpan<byte> packet, in VirtioNetHeader header, PacketBatch batch)
    {
        var needsChecksum = (header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0;
        if (needsChecksum && header.CsumStart + header.CsumOffset + 2 > packet.Length)
        {
            return SplitResult.Invalid;
        }

        if (packet.IsEmpty)
        {
            return SplitResult.Invalid;
        }

        if (!TryReserve(batch, packet.Length, out var offset))
        {
            return SplitResult.BatchFull;
        }

        var entry = batch.Arena.Slice(offset, packet.Length);
        packet.CopyTo(entry);
        if (needsChecksum)
        {
            // The field holds the folded pseudo-header sum; the sum from csum_start to the end, inverted, completes it.
            var at = header.CsumStart + header.CsumOffset;
            InternetChecksum.WriteComplement(entry[at..], InternetChecksum.Add(entry[header.CsumStart..]));
            if (header.CsumOffset == 6 && entry[at] == 0 && entry[at + 1] == 0)
            {
                entry[at] = 0xff; // UDP: a computed zero is sent as all ones
                entry[at + 1] = 0xff;
            }
        }

        return SplitResult.Done;
    }
}
