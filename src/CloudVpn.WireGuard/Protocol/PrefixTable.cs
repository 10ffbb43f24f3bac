namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// The prefixes of one length: an open-addressing hash table (linear probing, at most half full) of (key, owner)
/// entries in one array, so a lookup usually touches one cache line where a node-based dictionary chases two pointers.
/// Lookups take no lock; changes are made by one writer at a time (the caller's lock).
/// </summary>
/// <remarks>
/// Lock-free reads: a slot's key is written once, before its owner is published with a release write, and never
/// changes while that array is in use (a removed entry keeps its key with a tombstone owner; only the same key may
/// take the slot back). Tombstones and growth are cleared by building a new array and publishing it; a reader on the
/// old array sees the table as it was.
/// </remarks>
/// <typeparam name="TPeer">The owner type.</typeparam>
internal sealed class PrefixTable<TPeer>
    where TPeer : class
{
    private static readonly object Tombstone = new();
    private Entry[] _entries = new Entry[8];
    private int _live;
    private int _used; // live + tombstones

    /// <summary>Entries owned by a peer.</summary>
    public int Count => _live;

    /// <summary>The owner of <paramref name="key"/>; lock-free.</summary>
    public bool TryGetValue(UInt128 key, out TPeer? owner)
    {
        var entries = Volatile.Read(ref _entries);
        var mask = entries.Length - 1;
        for (var i = Hash(key) & mask; ; i = (i + 1) & mask)
        {
            var value = Volatile.Read(ref entries[i].Owner);
            if (value is null)
            {
                owner = null;
                return false;
            }

            if (entries[i].Is(key))
            {
                owner = value as TPeer; // null for a tombstone
                return owner is not null;
            }
        }
    }

    /// <summary>Sets the owner of <paramref name="key"/> (caller holds the writer lock).</summary>
    public void Set(UInt128 key, TPeer owner)
    {
        if ((_used + 1) * 2 > _entries.Length)
        {
            Rebuild();
        }

        var entries = _entries;
        var mask = entries.Length - 1;
        for (var i = Hash(key) & mask; ; i = (i + 1) & mask)
        {
            var value = entries[i].Owner;
            if (value is null)
            {
                entries[i].High = (ulong)(key >> 64);
                entries[i].Low = (ulong)key;
                Volatile.Write(ref entries[i].Owner, owner); // publishes the key written above
                _live++;
                _used++;
                return;
            }

            if (entries[i].Is(key))
            {
                if (ReferenceEquals(value, Tombstone))
                {
                    _live++;
                }

                Volatile.Write(ref entries[i].Owner, owner);
                return;
            }
        }
    }

    /// <summary>Removes <paramref name="key"/> if <paramref name="owner"/> owns it (caller holds the writer lock).</summary>
    public bool TryRemove(UInt128 key, TPeer owner)
    {
        var entries = _entries;
        var mask = entries.Length - 1;
        for (var i = Hash(key) & mask; ; i = (i + 1) & mask)
        {
            var value = entries[i].Owner;
            if (value is null)
            {
                return false;
            }

            if (entries[i].Is(key))
            {
                if (!ReferenceEquals(value, owner))
                {
                    return false;
                }

                Volatile.Write(ref entries[i].Owner, Tombstone);
                _live--;
                if (_live * 8 < _used && _entries.Length > 8)
                {
                    Rebuild(); // mostly tombstones: shrink
                }

                return true;
            }
        }
    }

    private void Rebuild()
    {
        var capacity = 8;
        while (capacity < (_live + 1) * 2)
        {
            capacity *= 2;
        }

        var old = _entries;
        var entries = new Entry[capacity];
        var mask = capacity - 1;
        foreach (var entry in old)
        {
            if (entry.Owner is null || ReferenceEquals(entry.Owner, Tombstone))
            {
                continue;
            }

            var i = Hash(((UInt128)entry.High << 64) | entry.Low) & mask;
            while (entries[i].Owner is not null)
            {
                i = (i + 1) & mask;
            }

            entries[i] = entry;
        }

        _used = _live;
        Volatile.Write(ref _entries, entries);
    }

    private static int Hash(UInt128 key)
    {
        var folded = (ulong)(key >> 64) ^ (ulong)key;
        return (int)((folded * 0x9E3779B97F4A7C15UL) >> 33);
    }

    // the key as two ulongs: 24 bytes per entry (a UInt128 field would align the entry to 32)
    private struct Entry
    {
        public ulong High;
        public ulong Low;
        public object? Owner; // TPeer, Tombstone or null (never used)

        public readonly bool Is(UInt128 key) => Low == (ulong)key && High == (ulong)(key >> 64);
    }
}
