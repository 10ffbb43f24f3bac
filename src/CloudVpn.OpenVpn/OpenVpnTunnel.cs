using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CloudVpn.OpenVpn.Configuration;
using CloudVpn.OpenVpn.Management;
using CloudVpn.OpenVpn.Pki;
using CloudVpn.OpenVpn.Supervision;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Logging;

namespace CloudVpn.OpenVpn;

/// <summary>A client connected to or disconnected from the server.</summary>
/// <param name="CommonName">The client's certificate common name.</param>
/// <param name="Client">What the management interface reported about it.</param>
public sealed record OpenVpnClientEvent(string CommonName, OpenVpnClientStatus Client);

/// <summary>
/// An OpenVPN server run by the driver: a supervised openvpn process, its runtime folder, its management interface
/// and its PKI in the key store. Beyond <see cref="ITunnel"/> it revokes peers, kills sessions, sends signals and
/// exports client profiles.
/// </summary>
public sealed partial class OpenVpnTunnel : ITunnel
{
    private readonly OpenVpnOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RuntimeFolder _folder;
    private readonly OpenVpnRuntimeLayout _layout;
    private readonly OpenVpnSupervisor _supervisor;
    private readonly SemaphoreSlim _managementLock = new(1, 1);
    private readonly SemaphoreSlim _applyLock = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private readonly Dictionary<(string, long?, DateTimeOffset?), OpenVpnClientStatus> _connected = [];
    private OpenVpnManagementClient? _management;
    private TaskCompletionSource _pollNow = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _pollLoop;
    private OpenVpnServerPlan _plan;
    private string _config = string.Empty;
    private int _closed;

    private OpenVpnTunnel(OpenVpnServerPlan plan, OpenVpnPki pki, RuntimeFolder folder, OpenVpnSupervisor supervisor, OpenVpnOptions options, TimeProvider time, ILogger logger)
    {
        _plan = plan;
        Pki = pki;
        _folder = folder;
        _layout = new OpenVpnRuntimeLayout(folder.Path);
        _supervisor = supervisor;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <inheritdoc />
    public string Name => _plan.DeviceName;

    /// <inheritdoc />
    public string DriverName => OpenVpnDriver.DriverName;

    /// <summary>The PKI in the key store this server uses.</summary>
    public OpenVpnPki Pki { get; }

    /// <summary>The plan the server runs with now.</summary>
    public OpenVpnServerPlan Plan => _plan;

    /// <summary>The runtime folder (removed on close).</summary>
    public string RuntimeDirectory => _folder.Path;

    /// <summary>Id of the running openvpn process, null while it is being restarted.</summary>
    public int? ProcessId => _supervisor.ProcessId;

    /// <summary>How many times openvpn was started (1 plus restarts).</summary>
    public int ProcessStarts => _supervisor.Starts;

    /// <summary>Raised when a client session appears (seen through the management interface).</summary>
    public event EventHandler<OpenVpnClientEvent>? ClientConnected;

    /// <summary>Raised when a client session ends.</summary>
    public event EventHandler<OpenVpnClientEvent>? ClientDisconnected;

    internal static async Task<OpenVpnTunnel> StartAsync(
        OpenVpnServerPlan plan,
        OpenVpnPki pki,
        OpenVpnOptions options,
        string binary,
        IOpenVpnProcessLauncher launcher,
        TimeProvider time,
        ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger($"CloudVpn.OpenVpn.{plan.DeviceName}");
        var folder = RuntimeFolder.Create(options.RuntimeDirectory, plan.DeviceName);
        OpenVpnSupervisor? supervisor = null;
        try
        {
            var layout = new OpenVpnRuntimeLayout(folder.Path);
            folder.CreateSubfolder("ccd");
            supervisor = new OpenVpnSupervisor(
                launcher,
                binary,
                ["--config", layout.ConfigFile],
                new SupervisorTimings(options.RestartDelay, options.MaxRestartDelay, options.StableAfter, options.StopTimeout),
                time,
                logger);
            var tunnel = new OpenVpnTunnel(plan, pki, folder, supervisor, options, time, logger);
            await tunnel.WriteServerFilesAsync(plan, cancellationToken);
            await tunnel.WriteClientConfigsAsync(plan, null, cancellationToken);
            tunnel._config = OpenVpnConfigRenderer.RenderServer(plan, layout);
            RuntimeFolder.WriteAtomic(layout.ConfigFile, Encoding.UTF8.GetBytes(tunnel._config));
            supervisor.Start();
            await tunnel.WaitUntilReadyAsync(0, cancellationToken);
            tunnel._pollLoop = Task.Run(tunnel.PollLoopAsync, CancellationToken.None);
            LogOpened(logger, plan.DeviceName, plan.Protocol, plan.Port, plan.Clients.Count);
            return tunnel;
        }
        catch
        {
            if (supervisor is not null)
            {
                await supervisor.DisposeAsync();
            }

            folder.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask<TunnelApplyResult> ApplyAsync(TunnelSpec desired, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(desired);
        ObjectDisposedException.ThrowIf(_closed != 0, this);
        var plan = OpenVpnServerPlan.FromSpec(desired);
        await _applyLock.WaitAsync(cancellationToken);
        try
        {
            var old = _plan;
            var oldClients = old.Clients.ToDictionary(c => c.CommonName, StringComparer.Ordinal);
            var newClients = plan.Clients.ToDictionary(c => c.CommonName, StringComparer.Ordinal);
            var added = plan.Clients.Where(c => !oldClients.ContainsKey(c.CommonName)).Select(c => c.CommonName).ToList();
            var removed = old.Clients.Where(c => !newClients.ContainsKey(c.CommonName)).Select(c => c.CommonName).ToList();
            var updated = plan.Clients.Where(c => oldClients.TryGetValue(c.CommonName, out var o) && !SameClient(o, c)).Select(c => c.CommonName).ToList();

            var filesChanged = await WriteServerFilesAsync(plan, cancellationToken);
            await WriteClientConfigsAsync(plan, old, cancellationToken);
            var config = OpenVpnConfigRenderer.RenderServer(plan, _layout);
            var deviceChanged = filesChanged || config != _config;
            _plan = plan;
            if (deviceChanged)
            {
                RuntimeFolder.WriteAtomic(_layout.ConfigFile, Encoding.UTF8.GetBytes(config));
                _config = config;
                var starts = _supervisor.Starts;
                LogRestartingForChange(_logger, Name);
                _supervisor.Restart();
                await WaitUntilReadyAsync(starts, cancellationToken);
            }
            else
            {
                // Removed peers are told to stop (their client-config file is gone, so they could not come back);
                // changed peers reconnect to pick up their new address and routes.
                foreach (var cn in removed)
                {
                    await KillClientAsync(cn, "HALT", cancellationToken);
                }

                foreach (var cn in updated)
                {
                    await KillClientAsync(cn, "RESTART", cancellationToken);
                }
            }

            return new TunnelApplyResult(deviceChanged, added, updated, removed);
        }
        finally
        {
            _applyLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<TunnelStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        IReadOnlyList<OpenVpnClientStatus> clients = [];
        var up = false;
        try
        {
            clients = await GetClientsAsync(cancellationToken);
            var state = await WithManagementAsync((m, ct) => m.GetStateAsync(ct), cancellationToken);
            up = state?.Contains(",CONNECTED,", StringComparison.Ordinal) == true;
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException or OpenVpnManagementException)
        {
            LogStatusUnavailable(_logger, Name, e.Message);
        }

        var plan = _plan;
        using var serverCertificate = await Pki.GetServerCertificateAsync(plan.ServerName, cancellationToken);
        var peers = plan.Clients.Select(c =>
        {
            var sessions = clients.Where(s => s.CommonName == c.CommonName).ToList();
            var latest = sessions.OrderByDescending(s => s.ConnectedSince).FirstOrDefault();
            return new PeerStatus(c.CommonName, latest?.RealAddress, latest?.ConnectedSince, sessions.Sum(s => s.BytesReceived), sessions.Sum(s => s.BytesSent))
            {
                Name = c.DisplayName,
                AllowedIps = [new IPNetwork(c.Address, 32), .. c.Routes],
            };
        }).ToList();
        return new TunnelStatus(Name, DriverName, up, plan.Port, Convert.ToHexString(serverCertificate.GetCertHash(HashAlgorithmName.SHA256)), plan.Mtu, peers);
    }

    /// <summary>Connected client sessions with their counters, straight from the management interface.</summary>
    public Task<IReadOnlyList<OpenVpnClientStatus>> GetClientsAsync(CancellationToken cancellationToken = default) =>
        WithManagementAsync((m, ct) => m.GetClientsAsync(ct), cancellationToken);

    /// <summary>
    /// Ends every session of <paramref name="commonName"/> now, telling the client to reconnect (<c>RESTART</c>) or to
    /// stop (<c>HALT</c>). Returns how many sessions were ended.
    /// </summary>
    public Task<int> KillClientAsync(string commonName, string message = "RESTART", CancellationToken cancellationToken = default) =>
        WithManagementAsync((m, ct) => m.KillClientAsync(commonName, message, ct), cancellationToken);

    /// <summary>Sends a signal through the management interface (SIGHUP, SIGTERM, SIGUSR1, SIGUSR2).</summary>
    public Task<string> SignalAsync(string signal, CancellationToken cancellationToken = default) =>
        WithManagementAsync((m, ct) => m.SignalAsync(signal, ct), cancellationToken);

    /// <summary>
    /// Revokes peer <paramref name="commonName"/>: its certificate goes into the CRL (in the key store and in the
    /// running server, which re-reads it on every new connection), and its sessions are killed with <c>HALT</c> (an
    /// honest client stops; any reconnect with that certificate is refused on the CRL). Returns the revoked serial number.
    /// </summary>
    public async Task<string> RevokePeerAsync(string commonName, CancellationToken cancellationToken = default)
    {
        var serial = await Pki.RevokeClientAsync(commonName, X509RevocationReason.CessationOfOperation, cancellationToken);
        var crl = await Pki.GetCrlPemAsync(cancellationToken);
        RuntimeFolder.WriteAtomic(_layout.CrlFile, crl);
        var killed = await KillClientAsync(commonName, "HALT", cancellationToken);
        LogRevoked(_logger, commonName, serial, killed);
        return serial;
    }

    /// <summary>The single-file <c>.ovpn</c> profile of a peer (see <see cref="OpenVpnClientProfile.ExportAsync"/>); the caller zeroes the bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="commonName"/> is not a peer of this tunnel (the server would turn it away).</exception>
    public ValueTask<byte[]> ExportClientProfileAsync(string commonName, string? remoteHost = null, int? remotePort = null, CancellationToken cancellationToken = default)
    {
        var plan = _plan;
        if (!plan.Clients.Any(c => c.CommonName == commonName))
        {
            throw new ArgumentException($"commonName: '{commonName}' is not a peer of tunnel {Name}; add it to the spec (ApplyAsync) first.", nameof(commonName));
        }

        return OpenVpnClientProfile.ExportAsync(Pki, plan, commonName, remoteHost, remotePort, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        await _closing.CancelAsync();
        if (_pollLoop is not null)
        {
            await _pollLoop;
        }

        if (_management is not null)
        {
            await _management.DisposeAsync();
        }

        await _supervisor.DisposeAsync();
        _folder.Dispose();
        _managementLock.Dispose();
        _applyLock.Dispose();
        _closing.Dispose();
        LogClosed(_logger, Name);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => CloseAsync();

    private static bool SameClient(OpenVpnClientPlan a, OpenVpnClientPlan b) =>
        a.Address.Equals(b.Address) && a.Routes.SequenceEqual(b.Routes);

    private async Task<bool> WriteServerFilesAsync(OpenVpnServerPlan plan, CancellationToken cancellationToken)
    {
        using var ca = await Pki.GetCaCertificateAsync(cancellationToken);
        using var certificate = await Pki.GetServerCertificateAsync(plan.ServerName, cancellationToken);
        var changed = RuntimeFolder.WriteAtomic(_layout.CaFile, SecretPem.Certificate(ca.RawData));
        changed |= RuntimeFolder.WriteAtomic(_layout.CertificateFile, SecretPem.Certificate(certificate.RawData));
        var key = await Pki.GetServerPrivateKeyPemAsync(plan.ServerName, cancellationToken);
        try
        {
            changed |= RuntimeFolder.WriteAtomic(_layout.KeyFile, key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        var tlsCrypt = await Pki.GetTlsCryptKeyAsync(cancellationToken);
        try
        {
            changed |= RuntimeFolder.WriteAtomic(_layout.TlsCryptFile, tlsCrypt);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(tlsCrypt);
        }

        // The CRL is re-read by openvpn on each new connection; a change does not need a restart.
        RuntimeFolder.WriteAtomic(_layout.CrlFile, await Pki.GetCrlPemAsync(cancellationToken));
        return changed;
    }

    private async Task WriteClientConfigsAsync(OpenVpnServerPlan plan, OpenVpnServerPlan? old, CancellationToken cancellationToken)
    {
        foreach (var client in plan.Clients)
        {
            // Issue the certificate now, so that the peer's profile can be exported as soon as it is in the spec.
            using var _ = await Pki.GetClientCertificateAsync(client.CommonName, cancellationToken);
            RuntimeFolder.WriteAtomic(Path.Combine(_layout.ClientConfigDirectory, client.CommonName), Encoding.UTF8.GetBytes(OpenVpnConfigRenderer.RenderClientConfig(plan, client)));
        }

        if (old is not null)
        {
            foreach (var gone in old.Clients.Where(o => plan.Clients.All(c => c.CommonName != o.CommonName)))
            {
                File.Delete(Path.Combine(_layout.ClientConfigDirectory, gone.CommonName));
            }
        }
    }

    private async Task WaitUntilReadyAsync(int startsBefore, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(_options.StartTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        while (true)
        {
            if (_supervisor.Completion.IsFaulted)
            {
                throw new OpenVpnStartException($"openvpn could not be started: {_supervisor.Completion.Exception?.GetBaseException().Message}", _supervisor.RecentLines);
            }

            // More than one start since we began waiting means the process died during start-up: report its own words.
            if (_supervisor.Starts > startsBefore + 1 || (_supervisor.Starts > startsBefore && _supervisor.ProcessId is null))
            {
                throw new OpenVpnStartException("openvpn exited while starting; its last lines follow.", _supervisor.RecentLines);
            }

            if (_supervisor.Starts > startsBefore && _supervisor.ProcessId is not null)
            {
                try
                {
                    var state = await WithManagementAsync((m, ct) => m.GetStateAsync(ct), linked.Token);
                    if (state?.Contains(",CONNECTED,", StringComparison.Ordinal) == true)
                    {
                        return;
                    }
                }
                catch (Exception e) when (e is IOException or SocketException or OpenVpnManagementException)
                {
                    // Not listening yet.
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                }
            }

            if (timeout.IsCancellationRequested)
            {
                throw new OpenVpnStartException($"openvpn did not finish initialising within {_options.StartTimeout}.", _supervisor.RecentLines);
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), _time, linked.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
            }

        }
    }

    private async Task<T> WithManagementAsync<T>(Func<OpenVpnManagementClient, CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        await _managementLock.WaitAsync(cancellationToken);
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                if (_management is null || !_management.IsConnected)
                {
                    if (_management is not null)
                    {
                        await _management.DisposeAsync();
                        _management = null;
                    }

                    var client = await OpenVpnManagementClient.ConnectAsync(_layout.ManagementSocket, cancellationToken);
                    client.Notification += OnNotification;
                    _management = client;
                }

                try
                {
                    return await action(_management, cancellationToken);
                }
                catch (IOException) when (attempt == 0)
                {
                    // The process was restarted under us: connect to the new one and try once more.
                    await _management.DisposeAsync();
                    _management = null;
                }
            }
        }
        finally
        {
            _managementLock.Release();
        }
    }

    private void OnNotification(string line)
    {
        if (line.StartsWith("CLIENT:", StringComparison.Ordinal))
        {
            _pollNow.TrySetResult();
        }
    }

    private async Task PollLoopAsync()
    {
        var token = _closing.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                var wake = _pollNow.Task;
                await Task.WhenAny(wake, Task.Delay(_options.StatusPollInterval, _time, token));
                if (wake.IsCompleted)
                {
                    _pollNow = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                token.ThrowIfCancellationRequested();
                await PollOnceAsync(token);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or SocketException or OpenVpnManagementException or FormatException)
            {
                LogStatusUnavailable(_logger, Name, e.Message);
            }
        }
    }

    private async Task PollOnceAsync(CancellationToken token)
    {
        var clients = await GetClientsAsync(token);
        await SyncCrlAsync(clients, token);
        // Client ids start over when openvpn restarts; the connection time tells a new session from an old one.
        var now = clients.ToDictionary(c => (c.CommonName, c.ClientId, c.ConnectedSince));
        foreach (var (key, client) in now)
        {
            if (_connected.TryAdd(key, client))
            {
                LogClientConnected(_logger, client.CommonName, client.RealAddress, client.VirtualAddress?.ToString());
                ClientConnected?.Invoke(this, new OpenVpnClientEvent(client.CommonName, client));
            }
            else
            {
                _connected[key] = client;
            }
        }

        foreach (var (key, client) in _connected.Where(kv => !now.ContainsKey(kv.Key)).ToList())
        {
            _connected.Remove(key);
            LogClientDisconnected(_logger, client.CommonName, client.BytesReceived, client.BytesSent);
            ClientDisconnected?.Invoke(this, new OpenVpnClientEvent(client.CommonName, client));
        }
    }

    /// <summary>
    /// Brings the CRL file in line with the key store, where another replica (or the refresh before expiry) may have
    /// written a newer one, and halts sessions whose certificate it now revokes: a revocation anywhere reaches every
    /// server within a poll interval.
    /// </summary>
    private async Task SyncCrlAsync(IReadOnlyList<OpenVpnClientStatus> clients, CancellationToken token)
    {
        var der = await Pki.GetCrlDerAsync(token);
        if (!RuntimeFolder.WriteAtomic(_layout.CrlFile, SecretPem.Crl(der)))
        {
            return;
        }

        var revoked = CrlReader.Read(der).RevokedSerialNumbers.ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var cn in clients.Select(c => c.CommonName).Distinct(StringComparer.Ordinal))
        {
            if (!await Pki.HasClientAsync(cn, token))
            {
                continue;
            }

            using var certificate = await Pki.GetClientCertificateAsync(cn, token);
            if (revoked.Contains(certificate.SerialNumber))
            {
                var killed = await KillClientAsync(cn, "HALT", token);
                LogRevoked(_logger, cn, certificate.SerialNumber, killed);
            }
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "OpenVPN tunnel {Device} opened ({Protocol} port {Port}, {Clients} clients allowed)")]
    private static partial void LogOpened(ILogger logger, string device, OpenVpnProtocol protocol, int port, int clients);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "OpenVPN tunnel {Device} closed")]
    private static partial void LogClosed(ILogger logger, string device);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "OpenVPN tunnel {Device}: server configuration changed; restarting openvpn")]
    private static partial void LogRestartingForChange(ILogger logger, string device);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Peer {CommonName} revoked (serial {Serial}); sessions ended: {Killed}")]
    private static partial void LogRevoked(ILogger logger, string commonName, string serial, int killed);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Client {CommonName} connected from {RealAddress} as {VirtualAddress}")]
    private static partial void LogClientConnected(ILogger logger, string commonName, string? realAddress, string? virtualAddress);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Client {CommonName} disconnected after {Received} bytes in, {Sent} bytes out")]
    private static partial void LogClientDisconnected(ILogger logger, string commonName, long received, long sent);

    [LoggerMessage(EventId = 7, Level = LogLevel.Debug, Message = "OpenVPN tunnel {Device}: management interface unavailable: {Reason}")]
    private static partial void LogStatusUnavailable(ILogger logger, string device, string reason);
}

/// <summary>openvpn did not start; the message says why and <see cref="ProcessOutput"/> holds its last log lines.</summary>
public sealed class OpenVpnStartException(string message, IReadOnlyList<string> processOutput)
    : Exception(message + (processOutput.Count == 0 ? string.Empty : Environment.NewLine + string.Join(Environment.NewLine, processOutput.TakeLast(15))))
{
    /// <summary>The last lines openvpn printed.</summary>
    public IReadOnlyList<string> ProcessOutput { get; } = processOutput;
}
