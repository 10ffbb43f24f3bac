using System.Buffers.Binary;
using System.Text;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>
/// Writes one netlink message: the 16-byte <c>nlmsghdr</c>, a fixed family header, then type-length-value
/// attributes padded to 4 bytes, nested ones patched with their length when closed. Integers are host order
/// (little-endian on every platform we run), as netlink wants, except where an attribute says otherwise.
/// </summary>
internal sealed class NetlinkMessageBuilder
{
    public const int HeaderLength = 16;
    public const int AttributeHeaderLength = 4;
    public const ushort NestedFlag = 0x8000;

    private byte[] _buffer;
    private int _length;

    public NetlinkMessageBuilder(ushort type, ushort flags, int capacity = 256)
    {
        _buffer = new byte[Math.Max(capacity, 64)];
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(6), flags);
        _length = HeaderLength;
    }

    /// <summary>Bytes written so far (the message length once finished).</summary>
    public int Length => _length;

    public ushort Type => BinaryPrimitives.ReadUInt16LittleEndian(_buffer.AsSpan(4));

    public ushort Flags
    {
        get => BinaryPrimitives.ReadUInt16LittleEndian(_buffer.AsSpan(6));
        set => BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(6), value);
    }

    public static int Align(int length) => (length + 3) & ~3;

    /// <summary>Size of an attribute with a payload of <paramref name="payloadLength"/> bytes, padding included.</summary>
    public static int AttributeSize(int payloadLength) => Align(AttributeHeaderLength + payloadLength);

    /// <summary>Reserves a zeroed family header (ifinfomsg, genlmsghdr, ...) and returns it for filling.</summary>
    public Span<byte> AppendFamilyHeader(int length)
    {
        var span = Reserve(Align(length));
        return span[..length];
    }

    public void PutBytes(ushort type, ReadOnlySpan<byte> payload)
    {
        var span = Reserve(AttributeSize(payload.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(span, checked((ushort)(AttributeHeaderLength + payload.Length)));
        BinaryPrimitives.WriteUInt16LittleEndian(span[2..], type);
        payload.CopyTo(span[AttributeHeaderLength..]);
    }

    public void PutU8(ushort type, byte value) => PutBytes(type, [value]);

    public void PutU16(ushort type, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        PutBytes(type, b);
    }

    public void PutU32(ushort type, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        PutBytes(type, b);
    }

    public void PutU64(ushort type, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        PutBytes(type, b);
    }

    /// <summary>A NUL-terminated string attribute (NLA_NUL_STRING / NLA_STRING both accept it).</summary>
    public void PutString(ushort type, string value)
    {
        var count = Encoding.UTF8.GetByteCount(value);
        Span<byte> b = count < 256 ? stackalloc byte[count + 1] : new byte[count + 1];
        Encoding.UTF8.GetBytes(value, b);
        b[count] = 0;
        PutBytes(type, b);
    }

    /// <summary>Opens a nested attribute; returns its offset for <see cref="EndNested"/> or <see cref="Rollback"/>.</summary>
    public int BeginNested(ushort type)
    {
        var offset = _length;
        var span = Reserve(AttributeHeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(span[2..], (ushort)(type | NestedFlag));
        return offset;
    }

    public void EndNested(int offset)
    {
        var length = _length - offset;
        if (length > ushort.MaxValue)
        {
            throw new InvalidOperationException($"A nested netlink attribute of {length} bytes exceeds the 65535-byte limit; split the message.");
        }

        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(offset), (ushort)length);
    }

    /// <summary>Drops everything written after <paramref name="mark"/> (a length seen earlier).</summary>
    public void Rollback(int mark)
    {
        if (mark < HeaderLength || mark > _length)
        {
            throw new ArgumentOutOfRangeException(nameof(mark));
        }

        _buffer.AsSpan(mark, _length - mark).Clear();
        _length = mark;
    }

    /// <summary>Patches length, sequence number and port id and returns the finished message.</summary>
    public ReadOnlySpan<byte> Finish(uint sequence, uint portId = 0)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer, (uint)_length);
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(8), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(12), portId);
        return _buffer.AsSpan(0, _length);
    }

    /// <summary>The finished message as a new array (tests, and callers that keep messages).</summary>
    public byte[] ToArray(uint sequence = 0, uint portId = 0) => Finish(sequence, portId).ToArray();

    private Span<byte> Reserve(int count)
    {
        if (_length + count > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + count));
        }

        var span = _buffer.AsSpan(_length, count);
        span.Clear();
        _length += count;
        return span;
    }
}
