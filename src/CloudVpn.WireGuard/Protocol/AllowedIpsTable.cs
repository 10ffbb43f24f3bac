using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Cryptokey routing: longest-prefix match from an IPv4 or IPv6 address to the peer that owns the prefix. One hash
/// table per prefix length in use (a flat open-addressing <see cref="PrefixTable{TPeer}"/>), probed from the longest
/// length down, so a lookup costs one probe per distinct length (a handful in practice) whatever the number of
/// entries, and takes no lock; changes take a writer lock. A prefix belongs to one peer at a time.
/// </summary>
/// <typeparam name="TPeer">The peer type.</typeparam>
internal sealed class AllowedIpsTable<TPeer>
    where TPeer : class
{
    private readonly Lock _writeLock = new();
    private readonly Family _v4 = new(32);
    private readonly Family _v6 = new(128);
    private readonly Dictionary<TPeer, List<IPNetwork>> _byPeer = new(ReferenceEqualityComparer.Instance);

    /// <summary>Assigns <paramref name="network"/> (host bits masked off) to <paramref name="peer"/>, taking it from any other owner.</summary>
    public void Insert(IPNetwork network, TPeer peer)
    {
        var (family, key, length) = Normalize(network);
        var normalized = new IPNetwork(ToAddress(family, key), length);
        lock (_writeLock)
        {
            var table = family.TableFor(length);
            if (table.TryGetValue(key, out var previous) && previous is not null)
            {
                if (ReferenceEquals(previous, peer))
                {
                    return;
                }

                _byPeer[previous].Remove(normalized);
            }
            else
            {
                family.AddLength(length);
            }

            table.Set(key, peer);
            if (!_byPeer.TryGetValue(peer, out var list))
            {
                _byPeer[peer] = list = [];
            }

            list.Add(normalized);
        }
    }

    /// <summary>Removes every prefix of <paramref name="peer"/>.</summary>
    public void RemovePeer(TPeer peer)
    {
        lock (_writeLock)
        {
            if (!_byPeer.Remove(peer, out var list))
            {
                return;
            }

            foreach (var network in list)
            {
                var (family, key, length) = Normalize(network);
                var table = family.TableFor(length);
                if (table.TryRemove(key, peer))
                {
                    family.RemoveLength(length);
                }
            }
        }
    }

    /// <summary>The prefixes of <paramref name="peer"/>, in the order they were assigned.</summary>
    public IReadOnlyList<IPNetwork> PrefixesOf(TPeer peer)
    {
        lock (_writeLock)
        {
            return _byPeer.TryGetValue(peer, out var list) ? [.. list] : [];
        }
    }

    /// <summary>The owner of the longest prefix containing <paramref name="address"/> (4 or 16 bytes), or null.</summary>
    public TPeer? Lookup(ReadOnlySpan<byte> address)
    {
        Family family;
        UInt128 value;
        if (address.Length == 4)
        {
            family = _v4;
            value = BinaryPrimitives.ReadUInt32BigEndian(address);
        }
        else if (address.Length == 16)
        {
            family = _v6;
            value = BinaryPrimitives.ReadUInt128BigEndian(address);
        }
        else
        {
            return null;
        }

        return family.Lookup(value);
    }

    private (Family Family, UInt128 Key, int Length) Normalize(IPNetwork network)
    {
        Span<byte> bytes = stackalloc byte[16];
        var address = network.BaseAddress;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address.TryWriteBytes(bytes, out _);
            UInt128 value = BinaryPrimitives.ReadUInt32BigEndian(bytes);
            return (_v4, value & _v4.Mask(network.PrefixLength), network.PrefixLength);
        }

        address.TryWriteBytes(bytes, out _);
        return (_v6, BinaryPrimitives.ReadUInt128BigEndian(bytes) & _v6.Mask(network.PrefixLength), network.PrefixLength);
    }

    private IPAddress ToAddress(Family family, UInt128 key)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (ReferenceEquals(family, _v4))
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)key);
            return new IPAddress(bytes[..4]);
        }

        BinaryPrimitives.WriteUInt128BigEndian(bytes, key);
        return new IPAddress(bytes);
    }

    private sealed class Family(int bits)
    {
        private readonly PrefixTable<TPeer>?[] _tables = new PrefixTable<TPeer>?[bits + 1];
        private readonly int[] _lengthCounts = new int[bits + 1];
        private volatile int[] _lengthsLongestFirst = [];

        public UInt128 Mask(int length) => length == 0 ? UInt128.Zero : (UInt128.MaxValue << (bits - length)) & AllBits;

        private UInt128 AllBits => bits == 128 ? UInt128.MaxValue : (UInt128.One << bits) - 1;

        public PrefixTable<TPeer> TableFor(int length) => _tables[length] ??= new PrefixTable<TPeer>();

        public void AddLength(int length)
        {
            if (_lengthCounts[length]++ == 0)
            {
                Publish();
            }
        }

        public void RemoveLength(int length)
        {
            if (--_lengthCounts[length] == 0)
            {
                Publish();
            }
        }

        public TPeer? Lookup(UInt128 address)
        {
            foreach (var length in _lengthsLongestFirst)
            {
                if (_tables[length]!.TryGetValue(address & Mask(length), out var peer))
                {
                    return peer;
                }
            }

            return null;
        }

        private void Publish()
        {
            var lengths = new List<int>();
            for (var length = bits; length >= 0; length--)
            {
                if (_lengthCounts[length] > 0)
                {
                    lengths.Add(length);
                }
            }

            _lengthsLongestFirst = [.. lengths];
        }
    }
}
