using System.Buffers.Binary;

namespace CloudVpn.WireGuard.Tun;

/// <summary>
/// <c>struct virtio_net_hdr</c> (10 bytes, little-endian as TUN uses it on little-endian hosts), which precedes every
/// packet read from or written to a TUN device opened with <c>IFF_VNET_HDR</c>.
/// </summary>
internal struct VirtioNetHeader
{
    public const int Size = 10;

    public const byte FlagNeedsCsum = 1;
    public const byte FlagDataValid = 2;

    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoUdpL4 = 5;
    public const byte GsoEcn = 0x80;

    public byte Flags;
    public byte GsoType;
    public ushort HeaderLength;
    public ushort GsoSize;
    public ushort CsumStart;
    public ushort CsumOffset;

    public static VirtioNetHeader Read(ReadOnlySpan<byte> source) => new()
    {
        Flags = source[0],
        GsoType = source[1],
        HeaderLength = BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
        GsoSize = BinaryPrimitives.ReadUInt16LittleEndian(source[4..]),
        CsumStart = BinaryPrimitives.ReadUInt16LittleEndian(source[6..]),
        CsumOffset = BinaryPrimitives.ReadUInt16LittleEndian(source[8..]),
    };

    public readonly void Write(Span<byte> destination)
    {
        destination[0] = Flags;
        destination[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], CsumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[8..], CsumOffset);
    }
}
