using System.Buffers;
using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// A growable byte buffer for protocol text that may carry key material: pooled, and zeroed whenever it grows, is
/// cleared or is disposed, so no copy of a key is left behind in a returned array.
/// </summary>
internal sealed class SecretBuffer : IDisposable
{
    private byte[] _array;
    private int _length;

    public SecretBuffer(int initialCapacity = 1024)
    {
        _array = ArrayPool<byte>.Shared.Rent(initialCapacity);
    }

    public int Length => _length;

    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, _length);

    public ReadOnlyMemory<byte> WrittenMemory => _array.AsMemory(0, _length);

    public Span<byte> GetSpan(int sizeHint)
    {
        EnsureCapacity(sizeHint);
        return _array.AsSpan(_length);
    }

    public void Advance(int count) => _length += count;

    public void Write(ReadOnlySpan<byte> bytes)
    {
        EnsureCapacity(bytes.Length);
        bytes.CopyTo(_array.AsSpan(_length));
        _length += bytes.Length;
    }

    public void Write(byte value)
    {
        EnsureCapacity(1);
        _array[_length++] = value;
    }

    public void Clear()
    {
        CryptographicOperations.ZeroMemory(_array.AsSpan(0, _length));
        _length = 0;
    }

    public void Dispose()
    {
        if (_array.Length > 0)
        {
            Clear();
            ArrayPool<byte>.Shared.Return(_array);
            _array = [];
        }
    }

    private void EnsureCapacity(int extra)
    {
        ObjectDisposedException.ThrowIf(_array.Length == 0 && _length == 0 && extra > 0 && ReferenceEquals(_array, Array.Empty<byte>()), this);
        if (_length + extra <= _array.Length)
        {
            return;
        }

        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_array.Length * 2, _length + extra));
        _array.AsSpan(0, _length).CopyTo(larger);
        CryptographicOperations.ZeroMemory(_array.AsSpan(0, _length));
        ArrayPool<byte>.Shared.Return(_array);
        _array = larger;
    }
}
