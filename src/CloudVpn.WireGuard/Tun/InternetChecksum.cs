using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace CloudVpn.WireGuard.Tun;

/// <summary>
/// The Internet checksum (RFC 1071) computed wide: bytes are summed as native-order 64-bit words (vectorised where the
/// hardware allows) into an unfolded 64-bit accumulator, folded to 16 bits only at the end. Because the ones'-complement
/// sum is byte-order independent up to a final swap, a folded sum written back with the machine's byte order lands in
/// the packet in network order without any swapping. No allocation.
/// </summary>
internal static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> to <paramref name="accumulator"/> (ones' complement, unfolded). Every piece
    /// but the last summed into one accumulator must have an even length.</summary>
    public static ulong Add(ReadOnlySpan<byte> data, ulong accumulator = 0)
    {
        ulong sum = accumulator;
        ref var start = ref MemoryMarshal.GetReference(data);
        var length = data.Length;
        var offset = 0;

        if (Vector256.IsHardwareAccelerated && length >= 64)
        {
            // Widen 32-bit lanes into 64-bit lanes: 2^32 additions before a lane could overflow, far beyond 64 KiB.
            var a = Vector256<ulong>.Zero;
            var b = Vector256<ulong>.Zero;
            for (; offset + 32 <= length; offset += 32)
            {
                var v = Vector256.LoadUnsafe(ref Unsafe.As<byte, uint>(ref Unsafe.Add(ref start, offset)));
                var (lo, hi) = Vector256.Widen(v);
                a += lo;
                b += hi;
            }

            sum = AddCarry(sum, Fold64To32(Vector256.Sum(a)) + (ulong)Fold64To32(Vector256.Sum(b)));
        }
        else if (Vector128.IsHardwareAccelerated && length >= 32)
        {
            var a = Vector128<ulong>.Zero;
            var b = Vector128<ulong>.Zero;
            for (; offset + 16 <= length; offset += 16)
            {
                var v = Vector128.LoadUnsafe(ref Unsafe.As<byte, uint>(ref Unsafe.Add(ref start, offset)));
                var (lo, hi) = Vector128.Widen(v);
                a += lo;
                b += hi;
            }

            sum = AddCarry(sum, Fold64To32(Vector128.Sum(a)) + (ulong)Fold64To32(Vector128.Sum(b)));
        }

        for (; offset + 8 <= length; offset += 8)
        {
            sum = AddCarry(sum, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset)));
        }

        if (offset + 4 <= length)
        {
            sum = AddCarry(sum, Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, offset)));
            offset += 4;
        }

        if (offset + 2 <= length)
        {
            sum = AddCarry(sum, Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, offset)));
            offset += 2;
        }

        if (offset < length)
        {
            // The odd last byte is the high byte of a network-order word padded with zero.
            ulong last = Unsafe.Add(ref start, offset);
            sum = AddCarry(sum, BitConverter.IsLittleEndian ? last : last << 8);
        }

        return sum;
    }

    /// <summary>Adds a 16-bit value given in host order (a length, a protocol number) as the network-order word it is in a header.</summary>
    public static ulong AddWord(ushort hostOrderValue, ulong accumulator) =>
        AddCarry(accumulator, BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(hostOrderValue) : hostOrderValue);

    /// <summary>The pseudo-header sum (addresses, protocol, upper-layer length) of TCP/UDP over IPv4 or IPv6.</summary>
    public static ulong PseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int length)
    {
        var sum = Add(source);
        sum = Add(destination, sum);
        sum = AddWord(protocol, sum);
        return AddWord((ushort)length, sum);
    }

    /// <summary>Folds an accumulator to 16 bits (not inverted), in the machine's byte order.</summary>
    public static ushort Fold(ulong sum)
    {
        var s = (sum & 0xffffffff) + (sum >> 32);
        s = (s & 0xffffffff) + (s >> 32);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        return (ushort)s;
    }

    /// <summary>Writes the final checksum (folded and inverted) at <paramref name="destination"/>, in network order.</summary>
    public static void WriteComplement(Span<byte> destination, ulong sum) =>
        MemoryMarshal.Write(destination, (ushort)~Fold(sum));

    /// <summary>Writes the folded, not inverted, sum (a partial pseudo-header checksum for NEEDS_CSUM) in network order.</summary>
    public static void WritePartial(Span<byte> destination, ulong sum) => MemoryMarshal.Write(destination, Fold(sum));

    /// <summary>True when the data, checksum field included, sums to all ones (the checksum is right).</summary>
    public static bool IsValid(ulong sumIncludingChecksumField) => Fold(sumIncludingChecksumField) == 0xffff;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddCarry(ulong a, ulong b)
    {
        var s = a + b;
        return s + (s < b ? 1UL : 0UL);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Fold64To32(ulong s)
    {
        s = (s & 0xffffffff) + (s >> 32);
        return (uint)((s & 0xffffffff) + (s >> 32));
    }
}
