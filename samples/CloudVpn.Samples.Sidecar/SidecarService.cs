using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Security.Cryptography;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Configuration;

namespace CloudVpn.Samples.Sidecar;

/// <summary>What the health endpoints report.</summary>
public sealed class SidecarState
{
    private volatile string _reason = "starting: configuration not loaded yet";
    private volatile bool _ready;

    /// <summary>True once the tunnel carries traffic (a probe through it answered).</summary>
    public bool Ready => _ready;

    /// <summary>Why the sidecar is (not) ready.</summary>
    public string Reason => _reason;

    /// <summary>The gateway address in use.</summary>
    public string? Endpoint { get; set; }

    /// <summary>How many times the sidecar moved to another gateway address.</summary>
    public int Failovers { get; set; }

    /// <summary>How many times the mounted configuration was re-applied.</summary>
    public int Reloads { get; set; }

    internal void Set(bool ready, string reason)
    {
        _reason = reason;
        _ready = ready;
    }
}

/// <summary>
/// Brings the tunnel up from the mounted wg-quick file, re-applies it when the Secret changes (key rotation), probes
/// the gateway through the tunnel and, after <see cref="SidecarOptions.FailoverAfter"/> failed probes, re-resolves the
/// gateway's name and moves to its next address (another healthy replica behind a headless Service).
/// </summary>
public sealed partial class SidecarService(
    SidecarOptions options,
    SidecarState state,
    ITunnelDriverSelector selector,
    IKeyStoreProvider keyStores,
    TimeProvider time,
    ILogger<SidecarService> logger) : BackgroundService
{
    private const string PrivateKeyId = "sidecar-private-key";
    private const string PresharedKeyId = "sidecar-preshared-key";

    private ITunnel? _tunnel;
    private byte[] _configHash = [];
    private WgQuickConfig? _config;
    private IPAddress[] _candidates = [];
    private int _candidateIndex;
    private int _failedProbes;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        long? lastReload = null;
        using var ping = new Ping();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (lastReload is not { } last || time.GetElapsedTime(last) >= options.ReloadInterval)
                {
                    lastReload = time.GetTimestamp();
                    await ReloadIfChangedAsync(stoppingToken).ConfigureAwait(false);
                }

                if (_tunnel is not null && _config is not null)
                {
                    await ProbeAsync(ping, stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is IOException or WgQuickConfigException or ArgumentException or InvalidOperationException or KeyStoreException or TunnelDriverUnavailableException or System.Net.Sockets.SocketException)
            {
                state.Set(false, e.Message);
                LogProblem(logger, e.Message);
            }

            await Task.Delay(options.ProbeInterval, time, stoppingToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (_tunnel is not null)
        {
            await _tunnel.CloseAsync(cancellationToken).ConfigureAwait(false);
            await _tunnel.DisposeAsync().ConfigureAwait(false);
            _tunnel = null;
        }
    }

    private async Task ReloadIfChangedAsync(CancellationToken ct)
    {
        var path = FindConfigFile(options.ConfigDirectory);
        var bytes = await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false);
        var hash = SHA256.HashData(bytes);
        CryptographicOperations.ZeroMemory(bytes);
        if (hash.AsSpan().SequenceEqual(_configHash))
        {
            return;
        }

        var config = WgQuickConfig.Parse(await File.ReadAllTextAsync(path, ct).ConfigureAwait(false));
        if (config.Interface.PrivateKey is null)
        {
            throw new WgQuickConfigException($"{path}: [Interface] PrivateKey is missing");
        }

        var peer = config.Peers.Count == 1 ? config.Peers[0] : throw new WgQuickConfigException($"{path}: expected exactly one [Peer] (the gateway), found {config.Peers.Count}");
        if (peer.Endpoint is null)
        {
            throw new WgQuickConfigException($"{path}: [Peer] Endpoint is missing (the gateway's name or address and port)");
        }

        var store = keyStores.GetStore();
        var keyVersion = await PutIfChangedAsync(store, PrivateKeyId, config.Interface.PrivateKey, ct).ConfigureAwait(false);
        long? pskVersion = peer.PresharedKey is null ? null : await PutIfChangedAsync(store, PresharedKeyId, peer.PresharedKey, ct).ConfigureAwait(false);

        var first = _config is null;
        var endpointChanged = _config?.Peers[0].Endpoint != peer.Endpoint;
        _config?.Dispose();
        _config = config;
        if (endpointChanged)
        {
            await ResolveAsync(ct).ConfigureAwait(false);
        }

        await ApplyAsync(keyVersion, pskVersion, ct).ConfigureAwait(false);
        _configHash = hash;
        if (!first)
        {
            state.Reloads++;
            LogReloaded(logger, path);
        }
    }

    private long? _keyVersion;
    private long? _pskVersion;

    private async Task ApplyAsync(long? keyVersion, long? pskVersion, CancellationToken ct, bool withoutPeer = false)
    {
        var config = _config!;
        var peer = config.Peers[0];
        _keyVersion = keyVersion ?? _keyVersion;
        _pskVersion = pskVersion ?? (peer.PresharedKey is null ? null : _pskVersion);
        var endpoint = new IPEndPoint(_candidates[_candidateIndex % _candidates.Length], peer.Endpoint!.Port);
        var device = new DeviceSpec(
            options.Interface,
            new KeyReference(PrivateKeyId, Version: _keyVersion),
            config.Interface.ListenPort ?? 0,
            [],
            config.Interface.Mtu ?? DeviceSpec.DefaultMtu)
        {
            InterfaceAddresses = [.. config.Interface.Addresses.Select(a => new InterfaceAddress(a.Address, a.PrefixLength))],
        };
        var peerSpec = new PeerSpec(peer.PublicKey.ToString(), peer.AllowedIps)
        {
            Name = string.IsNullOrEmpty(options.Gateway) ? "gateway" : options.Gateway,
            Endpoint = endpoint.ToString(),
            PersistentKeepalive = peer.PersistentKeepalive is { } k and > 0 ? TimeSpan.FromSeconds(k) : null,
            PresharedKey = _pskVersion is { } v ? new KeyReference(PresharedKeyId, Version: v) : null,
        };
        var spec = new TunnelSpec(device, withoutPeer ? [] : [peerSpec])
        {
            DriverSettings = new Dictionary<string, string>
            {
                ["wireguard-userspace.uapi-socket-directory"] = Path.Combine(options.StateDirectory, "wireguard"),
            },
        };
        if (_tunnel is null)
        {
            var selection = await selector.SelectAsync("wireguard", ct).ConfigureAwait(false);
            _tunnel = await selection.Driver.OpenAsync(spec, ct).ConfigureAwait(false);
            LogUp(logger, options.Interface, selection.Driver.Name, endpoint.ToString());
        }
        else
        {
            await _tunnel.ApplyAsync(spec, ct).ConfigureAwait(false);
        }

        state.Endpoint = endpoint.ToString();
    }

    private async Task ResolveAsync(CancellationToken ct)
    {
        var host = _config!.Peers[0].Endpoint!.Host;
        IPAddress[] addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, ct).ConfigureAwait(false);
        if (addresses.Length == 0)
        {
            throw new IOException($"gateway name '{host}' resolves to no address");
        }

        var current = _candidates.Length > 0 ? _candidates[_candidateIndex % _candidates.Length] : null;
        _candidates = addresses;
        _candidateIndex = current is null ? 0 : Math.Max(0, Array.IndexOf(addresses, current));
    }

    private async Task ProbeAsync(Ping ping, CancellationToken ct)
    {
        var target = options.ProbeAddress ?? DefaultProbeAddress(_config!.Peers[0].AllowedIps);
        bool ok;
        try
        {
            var reply = await ping.SendPingAsync(target, TimeSpan.FromMilliseconds(Math.Max(200, options.ProbeInterval.TotalMilliseconds * 0.8)), cancellationToken: ct).ConfigureAwait(false);
            ok = reply.Status == IPStatus.Success;
        }
        catch (PingException)
        {
            ok = false;
        }

        if (ok)
        {
            if (!state.Ready)
            {
                LogReady(logger, state.Endpoint ?? "?");
            }

            _failedProbes = 0;
            state.Set(true, $"tunnel up through {state.Endpoint}");
            return;
        }

        _failedProbes++;
        if (_failedProbes < options.FailoverAfter)
        {
            return;
        }

        state.Set(false, $"no answer from {target} through the tunnel for {_failedProbes} probes");
        var from = state.Endpoint;
        await ResolveAsync(ct).ConfigureAwait(false);
        if (_candidates.Length > 1)
        {
            _candidateIndex = (_candidateIndex + 1) % _candidates.Length;
        }

        // The other replica shares the gateway's key but not the session: drop the peer and add it again, so the next
        // packet starts a fresh handshake instead of waiting out the dead session's rekey timeout (15 s and more).
        await ApplyAsync(null, null, ct, withoutPeer: true).ConfigureAwait(false);
        await ApplyAsync(null, null, ct).ConfigureAwait(false);
        state.Failovers++;
        _failedProbes = 0;
        LogFailover(logger, from ?? "?", state.Endpoint ?? "?");
    }

    private static async Task<long> PutIfChangedAsync(IKeyStore store, string id, CloudVpn.WireGuard.Keys.WireGuardSecretKey key, CancellationToken ct)
    {
        var bytes = new byte[32];
        try
        {
            key.Bytes.CopyTo(bytes);
            using var current = await store.GetAsync(id, cancellationToken: ct).ConfigureAwait(false);
            if (current is not null && CryptographicOperations.FixedTimeEquals(current.Value, bytes))
            {
                return current.Version;
            }

            return await store.PutAsync(id, bytes, current?.Version ?? 0, ct).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>The first host address of a network (10.8.0.0/24 gives 10.8.0.1): the gateway's usual tunnel address.</summary>
    public static IPAddress DefaultProbeAddress(IReadOnlyList<IPNetwork> allowedIps)
    {
        ArgumentNullException.ThrowIfNull(allowedIps);
        if (allowedIps.Count == 0)
        {
            throw new InvalidOperationException("the gateway peer has no AllowedIPs: pass --probe ADDRESS");
        }

        var bytes = allowedIps[0].BaseAddress.GetAddressBytes();
        if (allowedIps[0].PrefixLength < bytes.Length * 8)
        {
            bytes[^1] |= 1;
        }

        return new IPAddress(bytes);
    }

    private static string FindConfigFile(string directory)
    {
        var preferred = Path.Combine(directory, "wg0.conf");
        if (File.Exists(preferred))
        {
            return preferred;
        }

        var confs = Directory.Exists(directory) ? Directory.GetFiles(directory, "*.conf") : [];
        return confs.Length == 1
            ? confs[0]
            : throw new IOException($"{directory}: expected wg0.conf or exactly one *.conf (the client Secret), found {confs.Length.ToString(CultureInfo.InvariantCulture)}");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "tunnel {Interface} up with driver {Driver} through gateway {Endpoint}")]
    private static partial void LogUp(ILogger logger, string @interface, string driver, string endpoint);

    [LoggerMessage(Level = LogLevel.Information, Message = "tunnel ready through {Endpoint}")]
    private static partial void LogReady(ILogger logger, string endpoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "gateway failover from {From} to {To}")]
    private static partial void LogFailover(ILogger logger, string from, string to);

    [LoggerMessage(Level = LogLevel.Information, Message = "configuration {Path} changed: re-applied")]
    private static partial void LogReloaded(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "sidecar not ready: {Problem}")]
    private static partial void LogProblem(ILogger logger, string problem);
}
