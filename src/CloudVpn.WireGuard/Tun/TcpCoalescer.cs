using System.Buffers.Binary;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Interop;

namespace CloudVpn.WireGuard.Tun;

/// <summary>
/// GRO-like merging of the TCP segments in a batch before they are written to an offloading TUN device. Segments of
/// one flow (same addresses and ports) with contiguous sequence numbers, the same IP fields (and, without DF,
/// consecutive IPv4 identifications), ACK number, flags (only
/// ACK, PSH on the last) and options, and equal payload sizes (a shorter one ends the run) become one super-packet
/// (up to 64 KiB) written with a virtio_net_hdr GSO_TCPV4/TCPV6, NEEDS_CSUM and the partial pseudo-header checksum:
/// the kernel takes it as one packet instead of dozens. Everything else is written as it is. The plan is a list of
/// items in the order of their first packet (so the order within each flow is kept); the payloads are gathered by
/// <c>writev</c> straight from the batch (no copy) and the batch's bytes are not changed. One instance per thread;
/// its arrays grow with the largest batch seen, then nothing is allocated.
/// </summary>
internal sealed unsafe class TcpCoalescer
{
    /// <summary>Most packets merged into one super-packet.</summary>
    public const int MaxSegments = 64;

    /// <summary>iovecs one item needs at most: the header block and one per payload.</summary>
    public const int MaxVectors = 1 + MaxSegments;

    /// <summary>Scratch bytes for the virtio_net_hdr and a copy of the IP and TCP headers.</summary>
    public const int MaxHeaderBytes = VirtioNetHeader.Size + 60 + 60;

    private const byte TcpAck = 0x10;
    private const byte TcpPsh = 0x08;

    private int[] _head = [];
    private int[] _tail = [];
    private int[] _count = [];
    private int[] _payloadBytes = [];
    private int[] _gsoSize = [];
    private int[] _headerLength = [];
    private uint[] _nextSeq = [];
    private bool[] _open = [];
    private int[] _next = [];

    /// <summary>Items (super-packets or single packets) planned for the batch last passed to <see cref="Plan"/>.</summary>
    public int ItemCount { get; private set; }

    /// <summary>How many of the batch's packets item <paramref name="item"/> carries.</summary>
    public int PacketCount(int item) => _count[item];

    /// <summary>Groups the batch's entries (those with a length above zero) into items.</summary>
    public void Plan(PacketBatch batch)
    {
        // sized for the batch's capacity, not its count: the arrays are made once per thread (at the first packet), not
        // again each time a fuller batch arrives during bulk traffic
        EnsureCapacity(Math.Max(batch.Capacity, batch.Count));
        ItemCount = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch.Lengths[i] <= 0)
            {
                continue;
            }

            _next[i] = -1;
            var packet = batch.Packet(i);
            if (!IsCandidate(packet, out var headerLength, out var seq, out var payload))
            {
                NewItem(i, open: false, headerLength: 0, seq: 0, payload: 0);
                continue;
            }

            var psh = (packet[(packet[0] >> 4 == 4 ? 20 : 40) + 13] & TcpPsh) != 0;
            var item = FindOpenItem(batch, packet);
            if (item >= 0 && CanAppend(batch, item, packet, headerLength, seq, payload))
            {
                _next[_tail[item]] = i;
                _tail[item] = i;
                _count[item]++;
                _payloadBytes[item] += payload;
                _nextSeq[item] = seq + (uint)payload;
                if (psh || payload < _gsoSize[item] || _count[item] == MaxSegments || _headerLength[item] + _payloadBytes[item] + _gsoSize[item] > PacketBatch.MaxPacket)
                {
                    _open[item] = false;
                }

                continue;
            }

            if (item >= 0)
            {
                _open[item] = false; // a newer run of the flow starts; the older one is written first
            }

            NewItem(i, open: !psh, headerLength, seq + (uint)payload, payload);
        }
    }

    /// <summary>
    /// Writes the virtio_net_hdr and the (adjusted) headers of item <paramref name="item"/> into
    /// <paramref name="scratch"/> and returns their length; the payloads follow (see
    /// <see cref="BuildVectors"/>). A single packet gets a zero header and is written whole after it.
    /// </summary>
    public int BuildHeader(int item, PacketBatch batch, Span<byte> scratch)
    {
        var first = _head[item];
        if (_count[item] == 1)
        {
            scratch[..VirtioNetHeader.Size].Clear();
            return VirtioNetHeader.Size;
        }

        var headerLength = _headerLength[item];
        var source = batch.Packet(first);
        var headers = scratch.Slice(VirtioNetHeader.Size, headerLength);
        source[..headerLength].CopyTo(headers);
        var total = headerLength + _payloadBytes[item];
        var version = headers[0] >> 4;
        int l4;
        if (version == 4)
        {
            l4 = 20;
            BinaryPrimitives.WriteUInt16BigEndian(headers[2..], (ushort)total);
            headers[10] = 0;
            headers[11] = 0;
            InternetChecksum.WriteComplement(headers[10..], InternetChecksum.Add(headers[..20]));
        }
        else
        {
            l4 = 40;
            BinaryPrimitives.WriteUInt16BigEndian(headers[4..], (ushort)(total - 40));
        }

        var last = batch.Packet(_tail[item]);
        headers[l4 + 13] |= (byte)(last[l4 + 13] & TcpPsh);
        var addressOffset = version == 4 ? 12 : 8;
        var addressLength = version == 4 ? 4 : 16;
        var pseudo = InternetChecksum.PseudoHeader(
            headers.Slice(addressOffset, addressLength), headers.Slice(addressOffset + addressLength, addressLength), 6, total - l4);
        InternetChecksum.WritePartial(headers[(l4 + 16)..], pseudo);

        new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsCsum,
            GsoType = version == 4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6,
            HeaderLength = (ushort)headerLength,
            GsoSize = (ushort)_gsoSize[item],
            CsumStart = (ushort)l4,
            CsumOffset = 16,
        }.Write(scratch);
        return VirtioNetHeader.Size + headerLength;
    }

    /// <summary>Fills iovecs for item <paramref name="item"/>: the header block in <paramref name="scratch"/>, then the
    /// payloads in the (pinned) arena at <paramref name="arena"/>. Returns the number of iovecs.</summary>
    public int BuildVectors(int item, PacketBatch batch, byte* arena, Span<byte> scratch, byte* scratchPointer, LinuxTun.IoVec* vectors)
    {
        var headerBytes = BuildHeader(item, batch, scratch);
        vectors[0] = new LinuxTun.IoVec { Base = scratchPointer, Length = (nuint)headerBytes };
        var skip = _count[item] == 1 ? 0 : _headerLength[item];
        var n = 1;
        for (var e = _head[item]; e >= 0; e = _next[e])
        {
            vectors[n++] = new LinuxTun.IoVec { Base = arena + batch.Offsets[e] + skip, Length = (nuint)(batch.Lengths[e] - skip) };
        }

        return n;
    }

    /// <summary>Copies item <paramref name="item"/> as it is written (virtio_net_hdr, headers, payloads) into
    /// <paramref name="destination"/>; returns the length. For tests and benchmarks.</summary>
    public int CopyItem(int item, PacketBatch batch, Span<byte> destination)
    {
        var length = BuildHeader(item, batch, destination);
        var skip = _count[item] == 1 ? 0 : _headerLength[item];
        for (var e = _head[item]; e >= 0; e = _next[e])
        {
            var part = batch.Packet(e)[skip..];
            part.CopyTo(destination[length..]);
            length += part.Length;
        }

        return length;
    }

    private void NewItem(int entry, bool open, int headerLength, uint seq, int payload)
    {
        var item = ItemCount++;
        _head[item] = entry;
        _tail[item] = entry;
        _count[item] = 1;
        _payloadBytes[item] = payload;
        _gsoSize[item] = payload;
        _headerLength[item] = headerLength;
        _nextSeq[item] = seq;
        _open[item] = open;
    }

    private int FindOpenItem(PacketBatch batch, ReadOnlySpan<byte> packet)
    {
        var v4 = packet[0] >> 4 == 4;
        for (var item = ItemCount - 1; item >= 0; item--)
        {
            if (!_open[item])
            {
                continue;
            }

            var other = batch.Packet(_head[item]);
            if (other[0] >> 4 != packet[0] >> 4)
            {
                continue;
            }

            // Addresses, then ports (the first four bytes of the TCP header).
            var same = v4
                ? packet.Slice(12, 8).SequenceEqual(other.Slice(12, 8)) && packet.Slice(20, 4).SequenceEqual(other.Slice(20, 4))
                : packet.Slice(8, 32).SequenceEqual(other.Slice(8, 32)) && packet.Slice(40, 4).SequenceEqual(other.Slice(40, 4));
            if (same)
            {
                return item;
            }
        }

        return -1;
    }

    private bool CanAppend(PacketBatch batch, int item, ReadOnlySpan<byte> packet, int headerLength, uint seq, int payload)
    {
        if (seq != _nextSeq[item] || headerLength != _headerLength[item] || payload > _gsoSize[item]
            || _headerLength[item] + _payloadBytes[item] + payload > PacketBatch.MaxPacket)
        {
            return false;
        }

        var first = batch.Packet(_head[item]);
        var l4 = packet[0] >> 4 == 4 ? 20 : 40;
        if (l4 == 20)
        {
            // TOS, DF/MF bits and TTL; without DF the identification must go up by one per segment, as the kernel
            // gives it to the segments it cuts from the super-packet (fragment reassembly relies on it).
            if (packet[1] != first[1] || (packet[6] & 0xe0) != (first[6] & 0xe0) || packet[8] != first[8]
                || ((first[6] & 0x40) == 0
                    && BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) != (ushort)(BinaryPrimitives.ReadUInt16BigEndian(first[4..]) + _count[item])))
            {
                return false;
            }
        }
        else if (!packet[..4].SequenceEqual(first[..4]) || packet[7] != first[7])
        {
            // Version, traffic class, flow label; hop limit.
            return false;
        }

        // ACK number, data offset, flags other than PSH (the first packet has none), window is taken from the first.
        return packet.Slice(l4 + 8, 5).SequenceEqual(first.Slice(l4 + 8, 5))
            && (packet[l4 + 13] & ~TcpPsh) == first[l4 + 13]
            && packet.Slice(l4 + 20, headerLength - l4 - 20).SequenceEqual(first.Slice(l4 + 20, headerLength - l4 - 20));
    }

    /// <summary>A TCP segment that may be merged: no IPv4 options or fragments, no IPv6 extension headers, lengths that
    /// agree, ACK set and no flag but ACK and PSH, a payload, and valid checksums (the merged packet's checksum is
    /// trusted by the kernel, so a damaged segment must not hide in it).</summary>
    private static bool IsCandidate(ReadOnlySpan<byte> packet, out int headerLength, out uint seq, out int payload)
    {
        headerLength = 0;
        seq = 0;
        payload = 0;
        int l4;
        if (packet.Length >= 40 && packet[0] == 0x45)
        {
            if (packet[9] != 6 || BinaryPrimitives.ReadUInt16BigEndian(packet[2..]) != packet.Length
                || (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3fff) != 0
                || !InternetChecksum.IsValid(InternetChecksum.Add(packet[..20])))
            {
                return false;
            }

            l4 = 20;
        }
        else if (packet.Length >= 60 && packet[0] >> 4 == 6)
        {
            if (packet[6] != 6 || BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) + 40 != packet.Length)
            {
                return false;
            }

            l4 = 40;
        }
        else
        {
            return false;
        }

        var tcpLength = (packet[l4 + 12] >> 4) * 4;
        var flags = packet[l4 + 13];
        if (tcpLength < 20 || l4 + tcpLength >= packet.Length || (flags & TcpAck) == 0 || (flags & ~(TcpAck | TcpPsh)) != 0
            || (packet[l4 + 12] & 0x0f) != 0)
        {
            return false;
        }

        var addressOffset = l4 == 20 ? 12 : 8;
        var addressLength = l4 == 20 ? 4 : 16;
        var sum = InternetChecksum.PseudoHeader(
            packet.Slice(addressOffset, addressLength), packet.Slice(addressOffset + addressLength, addressLength), 6, packet.Length - l4);
        if (!InternetChecksum.IsValid(InternetChecksum.Add(packet[l4..], sum)))
        {
            return false;
        }

        headerLength = l4 + tcpLength;
        seq = BinaryPrimitives.ReadUInt32BigEndian(packet[(l4 + 4)..]);
        payload = packet.Length - headerLength;
        return true;
    }

    private void EnsureCapacity(int count)
    {
        if (_next.Length >= count)
        {
            return;
        }

        var size = count;
        _head = new int[size];
        _tail = new int[size];
        _count = new int[size];
        _payloadBytes = new int[size];
        _gsoSize = new int[size];
        _headerLength = new int[size];
        _nextSeq = new uint[size];
        _open = new bool[size];
        _next = new int[size];
    }
}
