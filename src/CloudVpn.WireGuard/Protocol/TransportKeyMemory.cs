using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Where the transport keys live: 64-byte slots (a keypair's send and receive key) in native slabs that are locked in
/// RAM (<c>mlock</c>: never written to swap) and left out of core dumps (<c>MADV_DONTDUMP</c>), both best effort as
/// libsodium's guarded memory does them. A slot is zeroed when it is given back. This replaced one NSec <c>Key</c> per
/// transport key: each was its own <c>sodium_malloc</c> (an mmap of three pages with guard pages, mprotect and mlock,
/// 26 us to import and free, twice per handshake on each side, and 8 KiB of locked memory per keypair); a slot costs a
/// lock and 64 bytes. Slabs are kept for the life of the process (their number follows the most keypairs alive at once).
/// Use-after-free is ruled out by <see cref="Keypair"/>'s reference count: a slot is given back only when the last
/// packet using the keys is done.
/// </summary>
internal static unsafe partial class TransportKeyMemory
{
    public const int SlotSize = 64;
    private const int SlabSize = 64 * 1024;
    private const int MadvDontDump = 16;
    private static readonly object s_lock = new(); // a monitor, not a Lock: a blocked Lock allocates, and the last release of a keypair can happen on a data path thread
    private static nint[] s_free = new nint[SlabSize / SlotSize];
    private static int s_freeCount;
    private static int s_slabs;
    private static bool s_locked = true;

    /// <summary>Slabs allocated so far (each 64 KiB, 1024 slots).</summary>
    public static int Slabs => Volatile.Read(ref s_slabs);

    /// <summary>Whether every slab so far could be locked in RAM (false when RLIMIT_MEMLOCK refused one).</summary>
    public static bool AllLocked => Volatile.Read(ref s_locked);

    /// <summary>A zeroed 64-byte slot.</summary>
    public static nint Rent()
    {
        lock (s_lock)
        {
            if (s_freeCount == 0)
            {
                AddSlab();
            }

            return s_free[--s_freeCount];
        }
    }

    /// <summary>Zeroes the slot and takes it back.</summary>
    public static void Return(nint slot)
    {
        CryptographicOperations.ZeroMemory(new Span<byte>((void*)slot, SlotSize));
        lock (s_lock)
        {
            if (s_freeCount == s_free.Length)
            {
                Array.Resize(ref s_free, s_free.Length * 2);
            }

            s_free[s_freeCount++] = slot;
        }
    }

    private static void AddSlab()
    {
        var slab = (byte*)NativeMemory.AlignedAlloc(SlabSize, 4096);
        new Span<byte>(slab, SlabSize).Clear();
        if (mlock(slab, SlabSize) != 0)
        {
            s_locked = false;
        }

        _ = madvise(slab, SlabSize, MadvDontDump);
        if (s_free.Length < s_freeCount + (SlabSize / SlotSize))
        {
            Array.Resize(ref s_free, s_freeCount + (SlabSize / SlotSize));
        }

        for (var offset = SlabSize - SlotSize; offset >= 0; offset -= SlotSize)
        {
            s_free[s_freeCount++] = (nint)(slab + offset);
        }

        s_slabs++;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mlock(void* address, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(void* address, nuint length, int advice);
}
