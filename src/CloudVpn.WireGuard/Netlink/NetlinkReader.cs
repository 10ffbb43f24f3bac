using System.Buffers.Binary;
using System.Text;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>One netlink message inside a received buffer.</summary>
internal readonly ref struct NetlinkMessage
{
    public NetlinkMessage(ushort type, ushort flags, uint sequence, uint portId, ReadOnlySpan<byte> payload)
    {
        Type = type;
        Flags = flags;
        Sequence = sequence;
        PortId = portId;
        Payload = payload;
    }

    public ushort Type { get; }

    public ushort Flags { get; }

    public uint Sequence { get; }

    public uint PortId { get; }

    /// <summary>Everything after the 16-byte header (family header, then attributes).</summary>
    public ReadOnlySpan<byte> Payload { get; }

    /// <summary>Attributes after a family header of <paramref name="familyHeaderLength"/> bytes.</summary>
    public NetlinkAttributes Attributes(int familyHeaderLength)
    {
        var start = NetlinkMessageBuilder.Align(familyHeaderLength);
        if (Payload.Length < start)
        {
            throw new NetlinkProtocolException($"Netlink message type {Type} is {Payload.Length} bytes, shorter than its {familyHeaderLength}-byte family header.");
        }

        return new NetlinkAttributes(Payload[start..]);
    }
}

/// <summary>Splits a received datagram into netlink messages.</summary>
internal ref struct NetlinkMessageEnumerator
{
    private ReadOnlySpan<byte> _remaining;

    public NetlinkMessageEnumerator(ReadOnlySpan<byte> datagram)
    {
        _remaining = datagram;
        Current = default;
    }

    public NetlinkMessage Current { get; private set; }

    public readonly NetlinkMessageEnumerator GetEnumerator() => this;

    public bool MoveNext()
    {
        if (_remaining.Length < NetlinkMessageBuilder.HeaderLength)
        {
            if (_remaining.Length != 0 && _remaining.ContainsAnyExcept((byte)0))
            {
                throw new NetlinkProtocolException($"Netlink datagram ends with {_remaining.Length} stray bytes (shorter than a message header).");
            }

            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(_remaining);
        if (length < NetlinkMessageBuilder.HeaderLength || length > _remaining.Length)
        {
            throw new NetlinkProtocolException($"Netlink message claims {length} bytes but {_remaining.Length} remain in the datagram.");
        }

        Current = new NetlinkMessage(
            BinaryPrimitives.ReadUInt16LittleEndian(_remaining[4..]),
            BinaryPrimitives.ReadUInt16LittleEndian(_remaining[6..]),
            BinaryPrimitives.ReadUInt32LittleEndian(_remaining[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(_remaining[12..]),
            _remaining[NetlinkMessageBuilder.HeaderLength..(int)length]);
        var next = Math.Min(NetlinkMessageBuilder.Align((int)length), _remaining.Length);
        _remaining = _remaining[next..];
        return true;
    }
}

/// <summary>A run of netlink attributes; enumerate it with <c>foreach</c>.</summary>
internal readonly ref struct NetlinkAttributes
{
    private readonly ReadOnlySpan<byte> _data;

    public NetlinkAttributes(ReadOnlySpan<byte> data) => _data = data;

    public NetlinkAttributeEnumerator GetEnumerator() => new(_data);
}

/// <summary>Walks attributes, checking every length against its container.</summary>
internal ref struct NetlinkAttributeEnumerator
{
    private ReadOnlySpan<byte> _remaining;

    public NetlinkAttributeEnumerator(ReadOnlySpan<byte> data)
    {
        _remaining = data;
        Current = default;
    }

    public NetlinkAttribute Current { get; private set; }

    public bool MoveNext()
    {
        if (_remaining.Length < NetlinkMessageBuilder.AttributeHeaderLength)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt16LittleEndian(_remaining);
        var rawType = BinaryPrimitives.ReadUInt16LittleEndian(_remaining[2..]);
        if (length < NetlinkMessageBuilder.AttributeHeaderLength || length > _remaining.Length)
        {
            throw new NetlinkProtocolException($"Netlink attribute type {rawType & 0x3fff} claims {length} bytes but {_remaining.Length} remain in its container.");
        }

        Current = new NetlinkAttribute((ushort)(rawType & 0x3fff), (rawType & NetlinkMessageBuilder.NestedFlag) != 0, _remaining[NetlinkMessageBuilder.AttributeHeaderLength..length]);
        var next = Math.Min(NetlinkMessageBuilder.Align(length), _remaining.Length);
        _remaining = _remaining[next..];
        return true;
    }
}

/// <summary>One attribute: its type (flags masked off) and payload, with typed readers that check the size.</summary>
internal readonly ref struct NetlinkAttribute
{
    public NetlinkAttribute(ushort type, bool isNested, ReadOnlySpan<byte> payload)
    {
        Type = type;
        IsNested = isNested;
        Payload = payload;
    }

    public ushort Type { get; }

    /// <summary>The NLA_F_NESTED flag was set (the kernel sets it on the nests it writes; not every family does).</summary>
    public bool IsNested { get; }

    public ReadOnlySpan<byte> Payload { get; }

    public NetlinkAttributes Nested => new(Payload);

    public byte U8 => Expect(1)[0];

    public ushort U16 => BinaryPrimitives.ReadUInt16LittleEndian(Expect(2));

    public ushort U16BigEndian => BinaryPrimitives.ReadUInt16BigEndian(Expect(2));

    public uint U32 => BinaryPrimitives.ReadUInt32LittleEndian(Expect(4));

    public int I32 => BinaryPrimitives.ReadInt32LittleEndian(Expect(4));

    public ulong U64 => BinaryPrimitives.ReadUInt64LittleEndian(Expect(8));

    /// <summary>A string attribute without its NUL terminator.</summary>
    public string String
    {
        get
        {
            var end = Payload.IndexOf((byte)0);
            return Encoding.UTF8.GetString(end < 0 ? Payload : Payload[..end]);
        }
    }

    /// <summary>The payload, which must be exactly <paramref name="length"/> bytes.</summary>
    public ReadOnlySpan<byte> Expect(int length) => Payload.Length == length
        ? Payload
        : throw new NetlinkProtocolException($"Netlink attribute type {Type} has {Payload.Length} bytes where {length} were expected.");
}
