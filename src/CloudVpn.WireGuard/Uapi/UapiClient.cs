using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// A client of the userspace API socket (ours or wireguard-go's): one connection, any number of requests in turn.
/// </summary>
public sealed class UapiClient : IAsyncDisposable
{
    private const int MaxLineLength = 4096;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly UapiLineReader _reader;
    private readonly SemaphoreSlim _lock = new(1, 1);

    private UapiClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new UapiLineReader(_stream, MaxLineLength);
    }

    /// <summary>Connects to <c>&lt;socketDirectory&gt;/&lt;interfaceName&gt;.sock</c>.</summary>
    public static Task<UapiClient> ConnectAsync(string interfaceName, string socketDirectory = UapiServer.DefaultSocketDirectory, CancellationToken cancellationToken = default)
    {
        UapiServer.ValidateInterfaceName(interfaceName);
        return ConnectToPathAsync(Path.Combine(socketDirectory, interfaceName + ".sock"), cancellationToken);
    }

    /// <summary>Connects to a socket path.</summary>
    public static async Task<UapiClient> ConnectToPathAsync(string socketPath, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
            return new UapiClient(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends <c>get=1</c> and parses the answer; the caller disposes the state.</summary>
    /// <exception cref="UapiException">The device answered a non-zero errno or a malformed answer.</exception>
    public async Task<UapiDeviceState> GetAsync(CancellationToken cancellationToken = default)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync("get=1\n\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
            using var answer = new SecretBuffer();
            await ReadAnswerAsync(answer, cancellationToken).ConfigureAwait(false);
            return UapiProtocol.ParseGetResponse(answer.WrittenSpan);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Sends a <c>set=1</c> request.</summary>
    /// <exception cref="UapiException">The device answered a non-zero errno.</exception>
    public async Task SetAsync(UapiSetRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var text = new SecretBuffer();
        UapiProtocol.WriteSetRequest(request, text);
        await SendSetAsync(text, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Disposes the connection.</summary>
    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task SendSetAsync(SecretBuffer text, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(text.WrittenMemory, cancellationToken).ConfigureAwait(false);
            using var answer = new SecretBuffer();
            await ReadAnswerAsync(answer, cancellationToken).ConfigureAwait(false);
            var line = Encoding.ASCII.GetString(answer.WrittenSpan).TrimEnd('\n');
            if (!line.StartsWith("errno=", StringComparison.Ordinal)
                || !int.TryParse(line.AsSpan(6), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var errno))
            {
                throw new UapiException(UapiErrno.Protocol, "the device's answer to set is not errno=N");
            }

            if (errno != 0)
            {
                throw new UapiException(Math.Abs(errno), $"the device refused the set request: errno={errno}");
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task ReadAnswerAsync(SecretBuffer answer, CancellationToken cancellationToken)
    {
        while (true)
        {
            var start = answer.Length;
            if (!await _reader.ReadLineAsync(answer, cancellationToken).ConfigureAwait(false))
            {
                throw new UapiException(UapiErrno.Protocol, "the device closed the connection before the end of its answer");
            }

            if (answer.Length == start)
            {
                return;
            }

            answer.Write((byte)'\n');
        }
    }
}
