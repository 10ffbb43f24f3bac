namespace CloudVpn.WireGuard.Protocol;

/// <summary>WireGuard message types, sizes and field offsets (all integers little-endian).</summary>
internal static class MessageFormat
{
    public const byte Initiation = 1;
    public const byte Response = 2;
    public const byte CookieReply = 3;
    public const byte Transport = 4;

    public const int InitiationLength = 148;
    public const int ResponseLength = 92;
    public const int CookieReplyLength = 64;
    public const int TransportHeaderLength = 16;
    public const int TransportOverhead = TransportHeaderLength + Aead.TagLength;
    public const int PaddingMultiple = 16;

    // handshake initiation
    public const int InitiationSender = 4;
    public const int InitiationEphemeral = 8;
    public const int InitiationStatic = 40;
    public const int InitiationStaticLength = 32 + Aead.TagLength;
    public const int InitiationTimestamp = 88;
    public const int InitiationTimestampLength = Tai64N.Length + Aead.TagLength;
    public const int InitiationMac1 = 116;
    public const int InitiationMac2 = 132;

    // handshake response
    public const int ResponseSender = 4;
    public const int ResponseReceiver = 8;
    public const int ResponseEphemeral = 12;
    public const int ResponseEmpty = 44;
    public const int ResponseMac1 = 60;
    public const int ResponseMac2 = 76;

    // cookie reply
    public const int CookieReceiver = 4;
    public const int CookieNonce = 8;
    public const int CookieEncrypted = 32;
    public const int CookieEncryptedLength = Blake2s.MacLength + Aead.TagLength;

    // transport data
    public const int TransportReceiver = 4;
    public const int TransportCounter = 8;

    /// <summary>Writes the type byte and the three reserved zero bytes.</summary>
    public static void WriteType(Span<byte> message, byte type)
    {
        message[0] = type;
        message[1] = 0;
        message[2] = 0;
        message[3] = 0;
    }

    /// <summary>
    /// Padded plaintext length: a multiple of 16, but not past the MTU (a packet already longer than the MTU is only
    /// rounded up to the multiple).
    /// </summary>
    public static int PaddedLength(int length, int mtu)
    {
        var padded = (length + PaddingMultiple - 1) & ~(PaddingMultiple - 1);
        if (mtu > 0 && padded > mtu && length <= mtu)
        {
            padded = mtu;
        }

        return padded;
    }
}

/// <summary>TAI64N timestamps (12 bytes, big-endian), with the nanoseconds rounded down as the reference implementations do.</summary>
internal static class Tai64N
{
    public const int Length = 12;
    private const ulong Base = 0x400000000000000aUL;
    private const int WhitenerMaskNanoseconds = 0x1000000; // about 16.8 ms

    public static void Write(Span<byte> output, DateTimeOffset time)
    {
        var unix = time.ToUnixTimeSeconds();
        var nanoseconds = (int)(time.UtcTicks % TimeSpan.TicksPerSecond * 100);
        nanoseconds -= nanoseconds % WhitenerMaskNanoseconds;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(output, Base + (ulong)unix);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(output[8..], (uint)nanoseconds);
    }

    /// <summary>True when <paramref name="candidate"/> is strictly after <paramref name="previous"/> (big-endian compare).</summary>
    public static bool IsAfter(ReadOnlySpan<byte> candidate, ReadOnlySpan<byte> previous) =>
        candidate[..Length].SequenceCompareTo(previous[..Length]) > 0;
}
