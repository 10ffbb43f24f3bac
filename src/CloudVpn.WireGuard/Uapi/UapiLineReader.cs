using System.Buffers;
using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Uapi;

/// <summary>Reads '\n'-terminated lines from a stream into a <see cref="SecretBuffer"/>, with a length limit.</summary>
internal sealed class UapiLineReader : IDisposable
{
    private readonly Stream _stream;
    private readonly int _maxLineLength;
    private readonly byte[] _buffer;
    private int _start;
    private int _end;

    public UapiLineReader(Stream stream, int maxLineLength)
    {
        _stream = stream;
        _maxLineLength = maxLineLength;
        _buffer = ArrayPool<byte>.Shared.Rent(4096);
    }

    /// <summary>
    /// Appends the next line (without its '\n') to <paramref name="destination"/>; false at the end of the stream
    /// before a complete line (a partial line is then left in <paramref name="destination"/>).
    /// </summary>
    /// <exception cref="UapiLineTooLongException">The line exceeds the limit.</exception>
    public async ValueTask<bool> ReadLineAsync(SecretBuffer destination, CancellationToken token)
    {
        var lineLength = 0;
        while (true)
        {
            var available = _buffer.AsSpan(_start, _end - _start);
            var newline = available.IndexOf((byte)'\n');
            var take = newline < 0 ? available.Length : newline;
            lineLength += take;
            if (lineLength > _maxLineLength)
            {
                throw new UapiLineTooLongException();
            }

            destination.Write(available[..take]);
            if (newline >= 0)
            {
                _start += newline + 1;
                return true;
            }

            CryptographicOperations.ZeroMemory(_buffer.AsSpan(0, _end));
            _start = 0;
            _end = await _stream.ReadAsync(_buffer, token).ConfigureAwait(false);
            if (_end == 0)
            {
                return false;
            }
        }
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_buffer);
        ArrayPool<byte>.Shared.Return(_buffer);
    }
}

/// <summary>A request line or request is longer than the server accepts.</summary>
internal sealed class UapiLineTooLongException : Exception
{
    public UapiLineTooLongException()
        : base("A userspace API line or request is too long.")
    {
    }

    public UapiLineTooLongException(string message)
        : base(message)
    {
    }

    public UapiLineTooLongException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
