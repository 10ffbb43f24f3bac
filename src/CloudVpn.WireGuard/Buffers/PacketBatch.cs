using System.Net;
using System.Net.Sockets;

namespace CloudVpn.WireGuard.Buffers;

/// <summary>
/// A batch of packets in one pinned arena, owned by one thread and reused batch after batch: the unit the data path
/// moves between the TUN device, the engine and the UDP socket. Entry <c>i</c> is
/// <c>Arena[Offsets[i] .. Offsets[i] + Lengths[i]]</c>.
/// </summary>
/// <remarks>
/// <para>Contract for producers that fill a batch with IP packets read from the TUN device: every entry has
/// <see cref="Headroom"/> writable bytes before it and <see cref="Tailroom"/> after it that belong to that entry alone,
/// so the engine can encrypt in place (transport header before, padding and tag after) without copying.</para>
/// <para>Contract for producers that fill a batch with received datagrams: entries may share a region (a GRO buffer
/// split in datagrams) but never overlap; <see cref="Sources"/>[i] holds the sender's address (raw, as the kernel
/// gave it). Consumers may rewrite an entry in place (decrypt) and shrink it (<see cref="Offsets"/> and
/// <see cref="Lengths"/> are theirs to change).</para>
/// <para>For sending, <see cref="Endpoints"/>[i] is the destination of entry i; null means the entry is not sent.</para>
/// </remarks>
public sealed class PacketBatch
{
    /// <summary>Bytes kept free before each TUN packet (the 16-byte transport header).</summary>
    public const int Headroom = 16;

    /// <summary>Bytes kept free after each TUN packet (padding to 16 and the 16-byte Poly1305 tag).</summary>
    public const int Tailroom = 32;

    /// <summary>The largest IP packet or datagram an entry holds.</summary>
    public const int MaxPacket = 65535;

    private readonly byte[] _arena;

    /// <summary>Creates a batch of up to <paramref name="capacity"/> entries over a pinned arena of <paramref name="arenaSize"/> bytes.</summary>
    public PacketBatch(int capacity, int arenaSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(arenaSize, Headroom + Tailroom + 1);
        Capacity = capacity;
        _arena = GC.AllocateArray<byte>(arenaSize, pinned: true);
        Offsets = new int[capacity];
        Lengths = new int[capacity];
        Endpoints = new IPEndPoint?[capacity];
        Sources = new SocketAddress[capacity];
        for (var i = 0; i < capacity; i++)
        {
            Sources[i] = new SocketAddress(AddressFamily.InterNetworkV6);
        }
    }

    /// <summary>How many entries the batch can hold.</summary>
    public int Capacity { get; }

    /// <summary>How many entries are filled.</summary>
    public int Count { get; set; }

    /// <summary>The whole arena (pinned for the batch's life, so its address may be handed to the kernel).</summary>
    public Span<byte> Arena => _arena;

    /// <summary>The arena array (pinned).</summary>
    public byte[] ArenaArray => _arena;

    /// <summary>Start of each entry in the arena.</summary>
    public int[] Offsets { get; }

    /// <summary>Length of each entry.</summary>
    public int[] Lengths { get; }

    /// <summary>Destination of each entry when the batch is sent (null: skip the entry).</summary>
    public IPEndPoint?[] Endpoints { get; }

    /// <summary>Source address of each received datagram (IPv6-sized, so any family fits).</summary>
    public SocketAddress[] Sources { get; }

    /// <summary>Entry <paramref name="index"/>.</summary>
    public Span<byte> Packet(int index) => _arena.AsSpan(Offsets[index], Lengths[index]);

    /// <summary>Appends an entry; false when the batch is full.</summary>
    public bool TryAdd(int offset, int length)
    {
        if (Count == Capacity || (uint)offset > (uint)_arena.Length || (uint)length > (uint)(_arena.Length - offset))
        {
            return false;
        }

        Offsets[Count] = offset;
        Lengths[Count] = length;
        Endpoints[Count] = null;
        Count++;
        return true;
    }

    /// <summary>Empties the batch (the arena is kept).</summary>
    public void Clear() => Count = 0;
}
