using System.Buffers.Binary;
using System.Net;

namespace CloudVpn.WireGuard.Tests.Tun;

/// <summary>
/// Builds and checks IPv4/IPv6 TCP and UDP packets for the offload tests with a deliberately plain RFC 1071 checksum
/// (16-bit big-endian words, one at a time), independent of the wide implementation under test.
/// </summary>
internal static class PacketFactory
{
    public const byte Fin = 0x01;
    public const byte Syn = 0x02;
    public const byte Psh = 0x08;
    public const byte Ack = 0x10;
    public const byte Ece = 0x40;
    public const byte Cwr = 0x80;

    public static readonly IPAddress Src4 = IPAddress.Parse("10.1.0.1");
    public static readonly IPAddress Dst4 = IPAddress.Parse("10.1.0.2");
    public static readonly IPAddress Src6 = IPAddress.Parse("fd00::1");
    public static readonly IPAddress Dst6 = IPAddress.Parse("fd00::2:1");

    /// <summary>Plain ones'-complement sum of 16-bit big-endian words (odd byte padded), folded, not inverted.</summary>
    public static ushort Sum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        var sum = initial;
        for (var i = 0; i + 1 < data.Length; i += 2)
        {
            sum += (uint)((data[i] << 8) | data[i + 1]);
            sum = (sum & 0xffff) + (sum >> 16);
        }

        if (data.Length % 2 == 1)
        {
            sum += (uint)data[^1] << 8;
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)sum;
    }

    public static ushort PseudoSum(bool v6, ReadOnlySpan<byte> packet, byte protocol, int l4Length)
    {
        var addresses = v6 ? packet.Slice(8, 32) : packet.Slice(12, 8);
        uint s = Sum(addresses);
        s += protocol;
        s += (uint)l4Length;
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        return (ushort)s;
    }

    public static int L4Offset(ReadOnlySpan<byte> packet) => packet[0] >> 4 == 4 ? (packet[0] & 0x0f) * 4 : 40;

    /// <summary>True when the IPv4 header checksum (if any) and the TCP/UDP checksum are right.</summary>
    public static bool ChecksumsValid(ReadOnlySpan<byte> packet)
    {
        var v6 = packet[0] >> 4 == 6;
        var l4 = L4Offset(packet);
        if (!v6 && Sum(packet[..l4]) != 0xffff)
        {
            return false;
        }

        var protocol = v6 ? packet[6] : packet[9];
        return (ushort)(Sum(packet[l4..], PseudoSum(v6, packet, protocol, packet.Length - l4))) == 0xffff;
    }

    public static byte[] Tcp(bool v6, uint seq, ReadOnlySpan<byte> payload, byte flags = Ack, uint ack = 5000, ushort id = 100,
        byte[]? options = null, ushort sourcePort = 40000, ushort destinationPort = 5201, byte ttl = 64)
    {
        options ??= [];
        var ipLength = v6 ? 40 : 20;
        var tcpLength = 20 + options.Length;
        var packet = new byte[ipLength + tcpLength + payload.Length];
        WriteIp(packet, v6, 6, id, ttl);
        var tcp = packet.AsSpan(ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], ack);
        tcp[12] = (byte)((tcpLength / 4) << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 502);
        options.CopyTo(tcp[20..]);
        payload.CopyTo(tcp[tcpLength..]);
        FinishTransport(packet, v6, 6);
        return packet;
    }

    public static byte[] UdpPacket(bool v6, ReadOnlySpan<byte> payload, ushort id = 100)
    {
        var ipLength = v6 ? 40 : 20;
        var packet = new byte[ipLength + 8 + payload.Length];
        WriteIp(packet, v6, 17, id, 64);
        var udp = packet.AsSpan(ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 40001);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 4789);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + payload.Length));
        payload.CopyTo(udp[8..]);
        FinishTransport(packet, v6, 17);
        return packet;
    }

    /// <summary>Recomputes the IPv4 header checksum and the TCP/UDP checksum of a packet the test changed.</summary>
    public static void FinishTransport(byte[] packet, bool v6, byte protocol)
    {
        var l4 = v6 ? 40 : 20;
        if (!v6)
        {
            packet[10] = 0;
            packet[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), (ushort)~Sum(packet.AsSpan(0, 20)));
        }

        var at = l4 + (protocol == 6 ? 16 : 6);
        packet[at] = 0;
        packet[at + 1] = 0;
        var c = (ushort)~Sum(packet.AsSpan(l4), PseudoSum(v6, packet, protocol, packet.Length - l4));
        if (protocol == 17 && c == 0)
        {
            c = 0xffff;
        }

        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(at), c);
    }

    /// <summary>Deterministic payload bytes (so a misplaced byte is visible).</summary>
    public static byte[] Payload(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static void WriteIp(Span<byte> packet, bool v6, byte protocol, ushort id, byte ttl)
    {
        if (v6)
        {
            packet[0] = 0x60;
            packet[1] = 0x01; // a traffic class / flow label to carry along
            packet[3] = 0x23;
            BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)(packet.Length - 40));
            packet[6] = protocol;
            packet[7] = ttl;
            Src6.GetAddressBytes().CopyTo(packet[8..]);
            Dst6.GetAddressBytes().CopyTo(packet[24..]);
        }
        else
        {
            packet[0] = 0x45;
            packet[1] = 0x10;
            BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)packet.Length);
            BinaryPrimitives.WriteUInt16BigEndian(packet[4..], id);
            packet[6] = 0x40; // DF
            packet[8] = ttl;
            packet[9] = protocol;
            Src4.GetAddressBytes().CopyTo(packet[12..]);
            Dst4.GetAddressBytes().CopyTo(packet[16..]);
        }
    }
}
