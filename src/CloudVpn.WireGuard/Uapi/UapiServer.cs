using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// The userspace configuration API server: a stream Unix socket at <c>/var/run/wireguard/&lt;name&gt;.sock</c> that
/// answers <c>get=1</c> and <c>set=1</c> requests from <c>wg</c> (or any client) over an <see cref="IUapiDevice"/>.
/// Serves several connections at once and several requests per connection; requests are applied one at a time.
/// </summary>
/// <remarks>
/// The socket directory is created with mode 0755 and the socket with mode 0600, before it accepts connections.
/// A stale socket left by a dead process is replaced; a live one makes <see cref="Start(string, IUapiDevice, ILogger, string)"/> fail. When someone deletes
/// the socket file (the way to stop wireguard-go), <see cref="SocketRemoved"/> completes so the host can shut down.
/// </remarks>
public sealed partial class UapiServer : IAsyncDisposable
{
    /// <summary>Where wg looks for userspace interfaces.</summary>
    public const string DefaultSocketDirectory = "/var/run/wireguard";

    private const int MaxLineLength = 4096;
    private const int MaxRequestLength = 64 * 1024 * 1024;

    private readonly IUapiDevice _device;
    private readonly ILogger _logger;
    private readonly Socket _listener;
    private readonly SemaphoreSlim _requestLock = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _socketRemoved = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private FileSystemWatcher? _watcher;
    private ITimer? _pollTimer;
    private readonly HashSet<Task> _connections = [];
    private readonly Lock _connectionsLock = new();
    private Task _acceptLoop = Task.CompletedTask;
    private int _disposed;

    private UapiServer(string interfaceName, string socketPath, IUapiDevice device, ILogger logger, Socket listener)
    {
        InterfaceName = interfaceName;
        SocketPath = socketPath;
        _device = device;
        _logger = logger;
        _listener = listener;
    }

    /// <summary>The interface name the socket is named after.</summary>
    public string InterfaceName { get; }

    /// <summary>Full path of the socket file.</summary>
    public string SocketPath { get; }

    /// <summary>
    /// Completes when the socket file was removed by someone else (the server then stops accepting); wireguard-go
    /// exits at that point, and a host should too. Canceled when the server is disposed first.
    /// </summary>
    public Task SocketRemoved => _socketRemoved.Task;

    /// <summary>Creates the socket and starts serving.</summary>
    /// <param name="interfaceName">Interface name (1 to 15 characters, no '/' or whitespace).</param>
    /// <param name="device">The device the requests read and change.</param>
    /// <param name="logger">Logger for connection errors and refused requests (never key material).</param>
    /// <param name="socketDirectory">Directory of the socket (wg only looks in <see cref="DefaultSocketDirectory"/>).</param>
    /// <exception cref="ArgumentException">The interface name is not valid.</exception>
    /// <exception cref="IOException">Another live process serves this interface name.</exception>
    public static UapiServer Start(string interfaceName, IUapiDevice device, ILogger logger, string socketDirectory = DefaultSocketDirectory) =>
        Start(interfaceName, device, logger, socketDirectory, pollForRemoval: false);

    // pollForRemoval: check the socket file every second of pollClock instead of watching it with inotify (tests use it).
    internal static UapiServer Start(string interfaceName, IUapiDevice device, ILogger logger, string socketDirectory, bool pollForRemoval, TimeProvider? pollClock = null)
    {
        ValidateInterfaceName(interfaceName);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentException.ThrowIfNullOrEmpty(socketDirectory);
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("The userspace API server needs Unix domain sockets and Unix file modes.");
        }

        if (!Directory.Exists(socketDirectory))
        {
            Directory.CreateDirectory(socketDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        var socketPath = Path.Combine(socketDirectory, interfaceName + ".sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        UapiServer? server = null;
        try
        {
            BindReplacingStale(listener, socketPath);

            // Restrict the mode between bind and listen: no client can connect before listen().
            File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(16);

            server = new UapiServer(interfaceName, socketPath, device, logger, listener);
            server.WatchSocketFile(socketDirectory, pollForRemoval, pollClock ?? TimeProvider.System);
            server._acceptLoop = Task.Run(server.AcceptLoopAsync);
            LogListening(logger, interfaceName, socketPath);
            return server;
        }
        catch
        {
            server?._watcher?.Dispose();
            server?._pollTimer?.Dispose();
            listener.Dispose();
            throw;
        }
    }

    /// <summary>Stops accepting, closes open connections, waits for them and deletes the socket file (if still ours).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_watcher is not null)
        {
            _watcher.EnableRaisingEvents = false;
            _watcher.Dispose();
        }

        if (_pollTimer is not null)
        {
            await _pollTimer.DisposeAsync().ConfigureAwait(false);
        }

        var removedBySomeoneElse = _socketRemoved.Task.IsCompleted;
        _socketRemoved.TrySetCanceled();
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        try
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        Task[] open;
        lock (_connectionsLock)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open).ConfigureAwait(false);
        if (!removedBySomeoneElse)
        {
            try
            {
                File.Delete(SocketPath);
            }
            catch (IOException ex)
            {
                LogDeleteFailed(_logger, SocketPath, ex.Message);
            }
        }

        _stopping.Dispose();
        _requestLock.Dispose();
    }

    internal static void ValidateInterfaceName(string interfaceName)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        if (interfaceName.Length is 0 or > 15 || interfaceName is "." or ".."
            || interfaceName.Any(c => c == '/' || c == ':' || char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw new ArgumentException($"'{interfaceName}' is not a valid interface name (1 to 15 characters, no '/', ':' or whitespace).", nameof(interfaceName));
        }
    }

    private static void BindReplacingStale(Socket listener, string socketPath)
    {
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            return;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
        }

        // Something is at the path: a live server keeps it, a stale socket is replaced (as wireguard-go does).
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(socketPath));
                throw new IOException($"The userspace API socket '{socketPath}' is in use by another process.");
            }
            catch (SocketException)
            {
            }
        }

        File.Delete(socketPath);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
    }

    private void WatchSocketFile(string socketDirectory, bool poll, TimeProvider pollClock)
    {
        if (!poll)
        {
            var watcher = new FileSystemWatcher(socketDirectory, InterfaceName + ".sock")
            {
                NotifyFilter = NotifyFilters.FileName,
                IncludeSubdirectories = false,
            };
            watcher.Deleted += (_, _) => OnSocketFileGone();
            watcher.Renamed += (_, e) =>
            {
                if (string.Equals(e.OldFullPath, SocketPath, StringComparison.Ordinal))
                {
                    OnSocketFileGone();
                }
            };
            try
            {
                watcher.EnableRaisingEvents = true;
                _watcher = watcher;
            }
            catch (IOException ex)
            {
                // Typically the per-user inotify instance limit (fs.inotify.max_user_instances): poll instead.
                watcher.Dispose();
                LogPolling(_logger, SocketPath, ex.Message);
                poll = true;
            }
        }

        if (poll)
        {
            _pollTimer = pollClock.CreateTimer(_ => OnSocketFileGone(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        }

        // The file may have gone before the watch started.
        OnSocketFileGone();
    }

    private void OnSocketFileGone()
    {
        if (Volatile.Read(ref _disposed) != 0 || File.Exists(SocketPath))
        {
            return;
        }

        if (_socketRemoved.TrySetResult())
        {
            LogSocketRemoved(_logger, SocketPath);
            _listener.Dispose();
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return; // disposed, or the socket file was removed
            }
            catch (SocketException ex)
            {
                if (_stopping.IsCancellationRequested || _socketRemoved.Task.IsCompleted)
                {
                    return;
                }

                // Transient (EMFILE, ENOBUFS...): keep serving rather than go deaf.
                LogAcceptFailed(_logger, InterfaceName, ex.SocketErrorCode.ToString());
                try
                {
                    await Task.Delay(100, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            var connection = Task.Run(() => ServeConnectionAsync(client));
            lock (_connectionsLock)
            {
                _connections.Add(connection);
            }

            _ = connection.ContinueWith(
                t =>
                {
                    lock (_connectionsLock)
                    {
                        _connections.Remove(t);
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private async Task ServeConnectionAsync(Socket client)
    {
        using var socket = client;
        using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new UapiLineReader(stream, MaxLineLength);
        using var request = new SecretBuffer();
        using var response = new SecretBuffer();
        var token = _stopping.Token;
        try
        {
            while (!token.IsCancellationRequested)
            {
                request.Clear();
                response.Clear();
                if (!await reader.ReadLineAsync(request, token).ConfigureAwait(false))
                {
                    return; // the client closed the connection between requests
                }

                if (request.WrittenSpan.SequenceEqual("get=1"u8))
                {
                    request.Clear();
                    if (!await reader.ReadLineAsync(request, token).ConfigureAwait(false))
                    {
                        return;
                    }

                    if (request.Length != 0)
                    {
                        LogRefused(_logger, InterfaceName, "get", "a get request has no arguments");
                        UapiProtocol.WriteErrno(response, UapiErrno.Invalid);
                        await stream.WriteAsync(response.WrittenMemory, token).ConfigureAwait(false);
                        return; // the rest of the stream cannot be trusted to be in step
                    }

                    await HandleGetAsync(response, token).ConfigureAwait(false);
                }
                else if (request.WrittenSpan.SequenceEqual("set=1"u8))
                {
                    request.Clear();
                    if (!await ReadSetBodyAsync(reader, request, token).ConfigureAwait(false))
                    {
                        return;
                    }

                    await HandleSetAsync(request.WrittenMemory, response, token).ConfigureAwait(false);
                }
                else
                {
                    LogUnknownOperation(_logger, InterfaceName);
                    return;
                }

                await stream.WriteAsync(response.WrittenMemory, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (UapiLineTooLongException)
        {
            LogRefused(_logger, InterfaceName, "request", $"a line is longer than {MaxLineLength} bytes");
        }
        catch (IOException ex)
        {
            LogConnectionError(_logger, InterfaceName, ex.Message);
        }
        catch (SocketException ex)
        {
            LogConnectionError(_logger, InterfaceName, ex.Message);
        }
    }

    private static async Task<bool> ReadSetBodyAsync(UapiLineReader reader, SecretBuffer body, CancellationToken token)
    {
        while (true)
        {
            var start = body.Length;
            if (!await reader.ReadLineAsync(body, token).ConfigureAwait(false))
            {
                return false; // the client went away before the blank line: nothing is applied
            }

            if (body.Length == start)
            {
                return true;
            }

            if (body.Length > MaxRequestLength)
            {
                throw new UapiLineTooLongException();
            }

            body.Write((byte)'\n');
        }
    }

    private async Task HandleGetAsync(SecretBuffer response, CancellationToken token)
    {
        await _requestLock.WaitAsync(token).ConfigureAwait(false);
        try
        {
            using var state = _device.Get();
            UapiProtocol.WriteGetResponse(state, response);
        }
        catch (UapiException ex)
        {
            response.Clear();
            LogRefused(_logger, InterfaceName, "get", ex.Message);
            UapiProtocol.WriteErrno(response, ex.Errno);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            response.Clear();
            LogDeviceFailed(_logger, ex, InterfaceName, "get");
            UapiProtocol.WriteErrno(response, UapiErrno.Unknown);
        }
        finally
        {
            _requestLock.Release();
        }
    }

    private async Task HandleSetAsync(ReadOnlyMemory<byte> body, SecretBuffer response, CancellationToken token)
    {
        UapiSetRequest request;
        try
        {
            // Drop the trailing '\n' of the last line.
            request = UapiProtocol.ParseSetRequest(body.Span.TrimEnd((byte)'\n'));
        }
        catch (UapiException ex)
        {
            LogRefused(_logger, InterfaceName, "set", ex.Message);
            UapiProtocol.WriteErrno(response, ex.Errno);
            return;
        }

        using (request)
        {
            await _requestLock.WaitAsync(token).ConfigureAwait(false);
            try
            {
                _device.Set(request);
                UapiProtocol.WriteErrno(response, 0);
            }
            catch (UapiException ex)
            {
                LogRefused(_logger, InterfaceName, "set", ex.Message);
                UapiProtocol.WriteErrno(response, ex.Errno);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogDeviceFailed(_logger, ex, InterfaceName, "set");
                UapiProtocol.WriteErrno(response, UapiErrno.Unknown);
            }
            finally
            {
                _requestLock.Release();
            }
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Userspace API for {Interface} listening on {SocketPath}")]
    private static partial void LogListening(ILogger logger, string @interface, string socketPath);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Userspace API socket {SocketPath} was removed; the interface should shut down")]
    private static partial void LogSocketRemoved(ILogger logger, string socketPath);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Userspace API {Interface}: {Operation} request refused: {Problem}")]
    private static partial void LogRefused(ILogger logger, string @interface, string operation, string problem);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Userspace API {Interface}: unknown operation, connection closed")]
    private static partial void LogUnknownOperation(ILogger logger, string @interface);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "Userspace API {Interface}: the device failed a {Operation} request")]
    private static partial void LogDeviceFailed(ILogger logger, Exception exception, string @interface, string operation);

    [LoggerMessage(EventId = 6, Level = LogLevel.Debug, Message = "Userspace API {Interface}: connection error: {Problem}")]
    private static partial void LogConnectionError(ILogger logger, string @interface, string problem);

    [LoggerMessage(EventId = 8, Level = LogLevel.Debug, Message = "Cannot watch {SocketPath} with inotify ({Problem}); checking it every second instead")]
    private static partial void LogPolling(ILogger logger, string socketPath, string problem);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "Userspace API {Interface}: accepting a connection failed ({Error}); retrying")]
    private static partial void LogAcceptFailed(ILogger logger, string @interface, string error);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "Could not delete userspace API socket {SocketPath}: {Problem}")]
    private static partial void LogDeleteFailed(ILogger logger, string socketPath, string problem);
}
