using System.Net;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Gateway;

/// <summary>
/// Runs the tunnel: loads (or creates) the gateway key, picks the driver, opens the device with the peers of
/// peers.json, then keeps reading the driver's status (metrics, events, readiness), re-applies peers.json when it
/// changes and takes new key versions into use when the key store gets one (the rotation loop writes them).
/// </summary>
/// <remarks>
/// The key store and the drivers are resolved when the service runs, not when it is constructed: the host builds its
/// hosted services before it validates options, and a key store over a bad data folder must be reported as a
/// setting error, not crash the constructor.
/// </remarks>
internal sealed partial class GatewayService(
    IServiceProvider services,
    GatewayState state,
    GatewayConsole console,
    GatewayKeySwitch keySwitch,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<GatewayService> logger) : BackgroundService
{
    private GatewayOptions Settings => options.Value;

    /// <summary>The key version also accepted during a rotation's overlap (null: none); only the service's loop changes it.</summary>
    private long? _additionalKeyVersion;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        ITunnel? tunnel = null;
        try
        {
            var gatewayKey = services.GetRequiredService<GatewayKey>();
            var keyStore = services.GetRequiredService<IKeyStore>();
            var selector = services.GetRequiredService<ITunnelDriverSelector>();
            var key = await gatewayKey.LoadOrCreateAsync(stoppingToken);
            state.KeyLoaded(key);

            EnrolledPeer? firstPeer = null;
            var peers = PeersFile.Load(Settings.PeersFile);
            if (peers.Count == 0 && !string.IsNullOrEmpty(Settings.FirstPeerName))
            {
                firstPeer = PeerEnrollment.Add(Settings.FirstPeerName, Settings, key.PublicKey);
                peers = PeersFile.Load(Settings.PeersFile);
            }

            var peersFingerprint = PeersFile.Fingerprint(Settings.PeersFile);
            state.PeersConfigured(peers);

            var selection = await selector.SelectAsync(null, stoppingToken);
            var spec = BuildSpec(key.Version, peers);
            tunnel = await selection.Driver.OpenAsync(spec, stoppingToken);
            state.TunnelOpened(selection.Driver.Name, selection.Driver.Family);
            LogTunnelOpened(logger, tunnel.Name, selection.Driver.Name, selection.Reason, peers.Count);
            await ReadStatusAsync(tunnel, stoppingToken);
            console.PrintBanner(key, ClientConfig.ResolveEndpoint(Settings), selection, peers.Count, firstPeer);

            var nextFileCheck = time.GetUtcNow() + Settings.PeersFilePollInterval;
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(Settings.StatusInterval, time, stoppingToken);
                if (time.GetUtcNow() >= nextFileCheck)
                {
                    nextFileCheck = time.GetUtcNow() + Settings.PeersFilePollInterval;
                    var fingerprint = PeersFile.Fingerprint(Settings.PeersFile);
                    if (fingerprint != peersFingerprint)
                    {
                        peersFingerprint = fingerprint;
                        peers = await ReloadPeersAsync(tunnel, state.Key!.Version, peers, stoppingToken);
                    }

                    if (!keySwitch.DrivenByRotationLoop)
                    {
                        await TakeNewKeyAsync(gatewayKey, keyStore, tunnel, peers, stoppingToken);
                    }
                }

                while (keySwitch.TryTake(out var request))
                {
                    await SwitchKeyAsync(gatewayKey, tunnel, peers, request, stoppingToken);
                }

                await ReadStatusAsync(tunnel, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            LogFatal(logger, e.Message, e);
            Environment.ExitCode = 1;
            lifetime.StopApplication();
        }
        finally
        {
            if (tunnel is not null)
            {
                state.TunnelClosed();
                try
                {
                    await tunnel.CloseAsync(CancellationToken.None);
                    await tunnel.DisposeAsync();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    LogCloseFailed(logger, e.Message);
                }
            }
        }
    }

    /// <summary>The desired tunnel: the key version pinned so that a new version is a visible change for the driver.</summary>
    internal TunnelSpec BuildSpec(long keyVersion, IReadOnlyList<PeerEntry> peers)
    {
        var (address, prefix) = Settings.ParsedAddress;
        // the host address with the network's prefix (10.8.0.1/24), which IPNetwork-typed Addresses cannot hold
        var device = new DeviceSpec(Settings.Interface, new KeyReference(GatewayKey.KeyId, Version: keyVersion), Settings.ListenPort, [], Settings.Mtu)
        {
            InterfaceAddresses = [new InterfaceAddress(address, prefix)],
            AdditionalPrivateKey = _additionalKeyVersion is { } additional && additional != keyVersion ? new KeyReference(GatewayKey.KeyId, Version: additional) : null,
        };
        return new TunnelSpec(device, [.. peers.Select(p => p.ToSpec())]);
    }

    private async Task<IReadOnlyList<PeerEntry>> ReloadPeersAsync(ITunnel tunnel, long keyVersion, IReadOnlyList<PeerEntry> current, CancellationToken cancellationToken)
    {
        IReadOnlyList<PeerEntry> peers;
        try
        {
            peers = PeersFile.Load(Settings.PeersFile);
        }
        catch (Exception e) when (e is PeersFileException or IOException)
        {
            state.PeersFileRejected();
            LogPeersFileRejected(logger, Settings.PeersFile, e.Message);
            return current;
        }

        var result = await tunnel.ApplyAsync(BuildSpec(keyVersion, peers), cancellationToken);
        state.PeersConfigured(peers);
        LogPeersApplied(logger, Settings.PeersFile, peers.Count, result.PeersAdded.Count, result.PeersUpdated.Count, result.PeersRemoved.Count);
        return peers;
    }

    private async Task TakeNewKeyAsync(GatewayKey gatewayKey, IKeyStore keyStore, ITunnel tunnel, IReadOnlyList<PeerEntry> peers, CancellationToken cancellationToken)
    {
        var versions = await keyStore.ListVersionsAsync(GatewayKey.KeyId, cancellationToken);
        var current = state.Key!;
        if (versions.Count == 0 || versions[^1].Version == current.Version)
        {
            return;
        }

        var next = await gatewayKey.ReadAsync(versions[^1].Version, cancellationToken);
        if (next is null)
        {
            return;
        }

        await tunnel.ApplyAsync(BuildSpec(next.Version, peers), cancellationToken);
        state.KeyRotated(next);
    }

    private async Task SwitchKeyAsync(GatewayKey gatewayKey, ITunnel tunnel, IReadOnlyList<PeerEntry> peers, KeySwitchRequest request, CancellationToken cancellationToken)
    {
        try
        {
            var previousAdditional = _additionalKeyVersion;
            _additionalKeyVersion = request.AdditionalVersion;
            try
            {
                if (state.Key!.Version != request.Version)
                {
                    var next = await gatewayKey.ReadAsync(request.Version, cancellationToken)
                        ?? throw new KeyStoreException($"Key '{GatewayKey.KeyId}' version {request.Version} does not exist.");
                    await tunnel.ApplyAsync(BuildSpec(next.Version, peers), cancellationToken);
                    state.KeyRotated(next);
                }
                else if (previousAdditional != request.AdditionalVersion)
                {
                    // publish (accept the new key too) or retire (drop the old one): the key in force stays
                    await tunnel.ApplyAsync(BuildSpec(request.Version, peers), cancellationToken);
                }
            }
            catch
            {
                _additionalKeyVersion = previousAdditional;
                throw;
            }

            request.Done.TrySetResult();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // the rotation loop retries the switch with backoff; the old key stays in force meanwhile
            request.Done.TrySetException(e);
        }
    }

    private async Task ReadStatusAsync(ITunnel tunnel, CancellationToken cancellationToken)
    {
        try
        {
            state.Observe(await tunnel.GetStatusAsync(cancellationToken));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            state.StatusFailed(e.Message);
            LogStatusFailed(logger, e.Message);
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Tunnel {Interface} open with driver {Driver} ({Reason}); {PeerCount} peer(s)")]
    private static partial void LogTunnelOpened(ILogger logger, string @interface, string driver, string reason, int peerCount);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Applied {PeersFile}: {PeerCount} peer(s), {Added} added, {Updated} updated, {Removed} removed")]
    private static partial void LogPeersApplied(ILogger logger, string peersFile, int peerCount, int added, int updated, int removed);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "{PeersFile} was not applied (the previous peers stay): {Problem}")]
    private static partial void LogPeersFileRejected(ILogger logger, string peersFile, string problem);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Reading the tunnel status failed: {Problem}")]
    private static partial void LogStatusFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 5, Level = LogLevel.Critical, Message = "The gateway stopped: {Problem}")]
    private static partial void LogFatal(ILogger logger, string problem, Exception exception);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Closing the tunnel failed: {Problem}")]
    private static partial void LogCloseFailed(ILogger logger, string problem);
}
