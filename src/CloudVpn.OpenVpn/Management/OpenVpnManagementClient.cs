using System.Net.Sockets;
using System.Text;

namespace CloudVpn.OpenVpn.Management;

/// <summary>
/// A client of OpenVPN's management interface over its Unix socket. Commands run one at a time; real-time
/// notifications (lines starting with '&gt;') are raised through <see cref="Notification"/> whenever they arrive,
/// also in the middle of a command's answer.
/// </summary>
public sealed class OpenVpnManagementClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly SemaphoreSlim _commandLock = new(1, 1);
    private readonly Lock _pendingLock = new();
    private readonly CancellationTokenSource _closing = new();
    private readonly Task _readLoop;
    private PendingCommand? _pending;

    private OpenVpnManagementClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
        _readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Raised for every real-time notification line (for example <c>&gt;STATE:...</c>), without the leading '&gt;'.</summary>
    public event Action<string>? Notification;

    /// <summary>True until the socket closes (the process exited or the client was disposed).</summary>
    public bool IsConnected => !_readLoop.IsCompleted;

    /// <summary>Connects to the management socket at <paramref name="socketPath"/>.</summary>
    public static async Task<OpenVpnManagementClient> ConnectAsync(string socketPath, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
            return new OpenVpnManagementClient(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs a command answered by one <c>SUCCESS:</c> or <c>ERROR:</c> line; returns the text after <c>SUCCESS:</c>.</summary>
    /// <exception cref="OpenVpnManagementException">OpenVPN answered <c>ERROR:</c>.</exception>
    public async Task<string> CommandAsync(string command, CancellationToken cancellationToken = default)
    {
        var lines = await SendAsync(command, multiLine: false, cancellationToken);
        var line = lines[0];
        if (line.StartsWith("SUCCESS:", StringComparison.Ordinal))
        {
            return line["SUCCESS:".Length..].Trim();
        }

        throw new OpenVpnManagementException(command, line.StartsWith("ERROR:", StringComparison.Ordinal) ? line["ERROR:".Length..].Trim() : line);
    }

    /// <summary>Runs a command answered by lines ending with <c>END</c>; returns those lines.</summary>
    public async Task<IReadOnlyList<string>> QueryAsync(string command, CancellationToken cancellationToken = default)
    {
        var lines = await SendAsync(command, multiLine: true, cancellationToken);
        if (lines.Count == 1 && lines[0].StartsWith("ERROR:", StringComparison.Ordinal))
        {
            throw new OpenVpnManagementException(command, lines[0]["ERROR:".Length..].Trim());
        }

        return lines;
    }

    /// <summary>Connected clients with their counters (<c>status 3</c>).</summary>
    public async Task<IReadOnlyList<OpenVpnClientStatus>> GetClientsAsync(CancellationToken cancellationToken = default) =>
        OpenVpnStatusParser.ParseClients(await QueryAsync("status 3", cancellationToken));

    /// <summary>The daemon state line, for example <c>1732544400,CONNECTED,SUCCESS,10.8.0.1,,,,</c>.</summary>
    public async Task<string?> GetStateAsync(CancellationToken cancellationToken = default) =>
        (await QueryAsync("state", cancellationToken)).FirstOrDefault();

    /// <summary>
    /// Disconnects every session of <paramref name="commonName"/>, telling each client why with <paramref name="message"/>
    /// (<c>RESTART</c>: reconnect now; <c>HALT</c>: stop and do not come back). Returns how many sessions were ended.
    /// </summary>
    public async Task<int> KillClientAsync(string commonName, string message = "RESTART", CancellationToken cancellationToken = default)
    {
        Pki.OpenVpnPki.ValidateCommonName(commonName, nameof(commonName));
        if (message is not ("RESTART" or "HALT"))
        {
            throw new ArgumentException($"message: '{message}' is neither RESTART nor HALT.", nameof(message));
        }

        // client-kill (unlike 'kill <cn>') sends the client a control message, so it reacts at once instead of
        // noticing the dead session only at its ping-restart timeout.
        var killed = 0;
        foreach (var client in (await GetClientsAsync(cancellationToken)).Where(c => c.CommonName == commonName && c.ClientId is not null))
        {
            try
            {
                await CommandAsync(FormattableString.Invariant($"client-kill {client.ClientId} {message}"), cancellationToken);
                killed++;
            }
            catch (OpenVpnManagementException e) when (e.Reason.Contains("not found", StringComparison.OrdinalIgnoreCase))
            {
                // It left between the status and the kill.
            }
        }

        return killed;
    }

    /// <summary>Sends a signal through the interface: SIGHUP, SIGTERM, SIGUSR1 or SIGUSR2.</summary>
    public Task<string> SignalAsync(string signal, CancellationToken cancellationToken = default) =>
        signal is "SIGHUP" or "SIGTERM" or "SIGUSR1" or "SIGUSR2"
            ? CommandAsync($"signal {signal}", cancellationToken)
            : throw new ArgumentException($"signal: '{signal}' is not one of SIGHUP, SIGTERM, SIGUSR1, SIGUSR2.", nameof(signal));

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_closing.IsCancellationRequested)
        {
            await _closing.CancelAsync();
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // openvpn already closed its end.
        }

        await _stream.DisposeAsync();
        try
        {
            await _readLoop;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
        }

        _reader.Dispose();
        _commandLock.Dispose();
        _closing.Dispose();
    }

    private async Task<IReadOnlyList<string>> SendAsync(string command, bool multiLine, CancellationToken cancellationToken)
    {
        if (command.Contains('\n', StringComparison.Ordinal) || command.Contains('\r', StringComparison.Ordinal))
        {
            throw new ArgumentException("command: holds a line break.", nameof(command));
        }

        await _commandLock.WaitAsync(cancellationToken);
        try
        {
            var pending = new PendingCommand(multiLine);
            lock (_pendingLock)
            {
                if (_readLoop.IsCompleted)
                {
                    throw new IOException("The management connection is closed.");
                }

                _pending = pending;
            }

            await _stream.WriteAsync(Encoding.UTF8.GetBytes(command + "\n"), cancellationToken);
            return await pending.Result.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (_pendingLock)
            {
                _pending = null;
            }

            _commandLock.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await _reader.ReadLineAsync(_closing.Token) is { } line)
            {
                if (line.StartsWith('>'))
                {
                    Notification?.Invoke(line[1..]);
                    continue;
                }

                PendingCommand? pending;
                lock (_pendingLock)
                {
                    pending = _pending;
                }

                pending?.Accept(line);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or SocketException)
        {
        }
        finally
        {
            lock (_pendingLock)
            {
                _pending?.Result.TrySetException(new IOException("The management connection closed before OpenVPN answered."));
            }
        }
    }

    private sealed class PendingCommand(bool multiLine)
    {
        private readonly List<string> _lines = [];

        public TaskCompletionSource<IReadOnlyList<string>> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Accept(string line)
        {
            if (!multiLine || (_lines.Count == 0 && line.StartsWith("ERROR:", StringComparison.Ordinal)))
            {
                _lines.Add(line);
                Result.TrySetResult(_lines);
            }
            else if (line == "END")
            {
                Result.TrySetResult(_lines);
            }
            else
            {
                _lines.Add(line);
            }
        }
    }
}

/// <summary>OpenVPN answered a management command with an error.</summary>
public sealed class OpenVpnManagementException(string command, string reason)
    : Exception($"OpenVPN refused management command '{command.Split(' ')[0]}': {reason}")
{
    /// <summary>OpenVPN's reason.</summary>
    public string Reason { get; } = reason;
}
