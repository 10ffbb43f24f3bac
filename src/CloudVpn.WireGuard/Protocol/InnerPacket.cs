using System.Buffers.Binary;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>The few IPv4/IPv6 header fields cryptokey routing needs.</summary>
internal static class InnerPacket
{
    /// <summary>The destination address (4 or 16 bytes) of an IP packet from the TUN device.</summary>
    public static bool TryGetDestination(ReadOnlySpan<byte> packet, out ReadOnlySpan<byte> destination)
    {
        destination = default;
        if (packet.IsEmpty)
        {
            return false;
        }

        switch (packet[0] >> 4)
        {
            case 4 when packet.Length >= 20:
                destination = packet.Slice(16, 4);
                return true;
            case 6 when packet.Length >= 40:
                destination = packet.Slice(24, 16);
                return true;
            default:
                return false;
        }
    }

    /// <summary>The source address and the real length (without padding) of a decrypted IP packet.</summary>
    public static bool TryGetSourceAndLength(ReadOnlySpan<byte> packet, out ReadOnlySpan<byte> source, out int length)
    {
        source = default;
        length = 0;
        if (packet.IsEmpty)
        {
            return false;
        }

        switch (packet[0] >> 4)
        {
            case 4 when packet.Length >= 20:
                length = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
                if (length < 20 || length > packet.Length)
                {
                    return false;
                }

                source = packet.Slice(12, 4);
                return true;
            case 6 when packet.Length >= 40:
                length = 40 + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
                if (length > packet.Length)
                {
                    return false;
                }

                source = packet.Slice(8, 16);
                return true;
            default:
                return false;
        }
    }
}
