using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// A list of X25519 to do together: the handshake code adds every DH that several handshakes need at one point (the
/// responder's es for a burst of initiations; the new ephemeral's public key, ee and se for the responses) and runs
/// them at once. Full groups of eight go through <see cref="Curve25519Batch"/>'s lanes; a group too small to pay for
/// eight lanes goes to libsodium one by one (base-point items through its faster fixed-base code). The buffers are
/// pinned, reused, and zeroed by <see cref="Clear"/>. Not thread-safe: one per thread.
/// </summary>
internal sealed class DhBatch
{
    private const int KeyLength = Curve25519.KeyLength;

    // libsodium costs, relative to one lane of a full eight-lane group (measured on the machines we build on: a lane
    // ~17 us, a variable-base X25519 ~30 us, a fixed-base one ~15.5 us): a group runs in lanes when its items would
    // cost libsodium at least what eight lanes cost
    private const int VariableBaseWeight = 18;
    private const int FixedBaseWeight = 9;
    private const int LaneWeight = 10;

    private readonly byte[] _scalars;
    private readonly byte[] _points;
    private readonly byte[] _outputs;
    private readonly bool[] _fixedBase;
    private readonly bool[] _good;

    public DhBatch(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _scalars = GC.AllocateArray<byte>(capacity * KeyLength, pinned: true);
        _points = GC.AllocateArray<byte>(capacity * KeyLength, pinned: true);
        _outputs = GC.AllocateArray<byte>(capacity * KeyLength, pinned: true);
        _fixedBase = new bool[capacity];
        _good = new bool[capacity];
    }

    public int Capacity { get; }

    public int Count { get; private set; }

    /// <summary>Lane groups run by the last <see cref="Run"/> (for tests and counters).</summary>
    public int LaneGroupsRun { get; private set; }

    /// <summary>Adds X25519(scalar, point); returns the item's number.</summary>
    public int Add(ReadOnlySpan<byte> scalar, ReadOnlySpan<byte> point) => Add(scalar, point, fixedBase: false);

    /// <summary>Adds X25519(scalar, 9): a public key.</summary>
    public int AddBasePoint(ReadOnlySpan<byte> scalar)
    {
        Span<byte> basePoint = stackalloc byte[KeyLength];
        basePoint.Clear();
        basePoint[0] = 9;
        return Add(scalar, basePoint, fixedBase: true);
    }

    private int Add(ReadOnlySpan<byte> scalar, ReadOnlySpan<byte> point, bool fixedBase)
    {
        if (Count == Capacity)
        {
            throw new InvalidOperationException($"The DH batch is full ({Capacity} items).");
        }

        var item = Count++;
        scalar[..KeyLength].CopyTo(_scalars.AsSpan(item * KeyLength, KeyLength));
        point[..KeyLength].CopyTo(_points.AsSpan(item * KeyLength, KeyLength));
        _fixedBase[item] = fixedBase;
        return item;
    }

    /// <summary>Computes every item added since the last <see cref="Clear"/>.</summary>
    public void Run()
    {
        LaneGroupsRun = 0;
        for (var first = 0; first < Count; first += Curve25519Batch.Lanes)
        {
            var count = Math.Min(Curve25519Batch.Lanes, Count - first);
            var weight = 0;
            for (var i = first; i < first + count; i++)
            {
                weight += _fixedBase[i] ? FixedBaseWeight : VariableBaseWeight;
            }

            var range = new Range(first * KeyLength, (first + count) * KeyLength);
            if (Curve25519Batch.IsAccelerated && weight >= Curve25519Batch.Lanes * LaneWeight)
            {
                var good = Curve25519Batch.ScalarMult(_scalars.AsSpan(range), _points.AsSpan(range), _outputs.AsSpan(range), count);
                for (var i = 0; i < count; i++)
                {
                    _good[first + i] = (good & (1 << i)) != 0;
                }

                LaneGroupsRun++;
                continue;
            }

            for (var i = first; i < first + count; i++)
            {
                var item = new Range(i * KeyLength, (i + 1) * KeyLength);
                if (_fixedBase[i])
                {
                    Curve25519.DerivePublic(_outputs.AsSpan(item), _scalars.AsSpan(item));
                    _good[i] = true;
                }
                else
                {
                    _good[i] = Curve25519.SharedSecret(_outputs.AsSpan(item), _scalars.AsSpan(item), _points.AsSpan(item));
                }
            }
        }
    }

    /// <summary>The result of item <paramref name="item"/>, or empty when it was all zero (a low-order point).</summary>
    public ReadOnlySpan<byte> Result(int item)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)item, (uint)Count, nameof(item));
        return _good[item] ? _outputs.AsSpan(item * KeyLength, KeyLength) : [];
    }

    /// <summary>Zeroes scalars and results and empties the list.</summary>
    public void Clear()
    {
        CryptographicOperations.ZeroMemory(_scalars.AsSpan(0, Count * KeyLength));
        CryptographicOperations.ZeroMemory(_outputs.AsSpan(0, Count * KeyLength));
        Array.Clear(_good, 0, Count);
        Count = 0;
    }
}
