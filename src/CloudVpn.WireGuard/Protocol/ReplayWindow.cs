namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Sliding-window replay protection for transport counters (RFC 6479 style): a ring of 128 words of 64 bits, one word
/// kept spare, so the last 8128 counters below the highest seen are tracked. Not thread-safe: the keypair serializes
/// <see cref="TryAccept"/>; <see cref="MayAccept"/> is a lock-free early check before decryption.
/// </summary>
internal sealed class ReplayWindow
{
    private const int WordBits = 64;
    private const int RingWords = 128;
    public const ulong WindowSize = (RingWords - 1) * WordBits;

    private readonly ulong[] _ring = new ulong[RingWords];
    private ulong _highest;

    /// <summary>False when <paramref name="counter"/> is certainly a replay or too old (racy read; confirm with <see cref="TryAccept"/>).</summary>
    public bool MayAccept(ulong counter, ulong limit)
    {
        if (counter >= limit)
        {
            return false;
        }

        var highest = Volatile.Read(ref _highest);
        if (counter > highest)
        {
            return true;
        }

        if (highest - counter > WindowSize)
        {
            return false;
        }

        var word = Volatile.Read(ref _ring[(int)((counter / WordBits) % RingWords)]);
        return (word & (1UL << (int)(counter % WordBits))) == 0;
    }

    /// <summary>Records <paramref name="counter"/>; false when it was seen before, is too old, or is at or past <paramref name="limit"/>.</summary>
    public bool TryAccept(ulong counter, ulong limit)
    {
        if (counter >= limit)
        {
            return false;
        }

        var block = counter / WordBits;
        if (counter > _highest)
        {
            var current = _highest / WordBits;
            var advance = Math.Min(block - current, RingWords);
            for (ulong i = 1; i <= advance; i++)
            {
                _ring[(int)((current + i) % RingWords)] = 0;
            }

            Volatile.Write(ref _highest, counter);
        }
        else if (_highest - counter > WindowSize)
        {
            return false;
        }

        ref var slot = ref _ring[(int)(block % RingWords)];
        var bit = 1UL << (int)(counter % WordBits);
        if ((slot & bit) != 0)
        {
            return false;
        }

        slot |= bit;
        return true;
    }
}
