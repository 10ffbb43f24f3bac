using System.Net;
using System.Text;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Hosting;
using CloudVpn.WireGuard.Keys;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.KernelWireGuard;

/// <summary>Settings of the sample itself.</summary>
public sealed class SampleOptions
{
    /// <summary>Folder of the file key store.</summary>
    public string KeyDirectory { get; set; } = "/var/lib/cloudvpn/keys";

    /// <summary>Only select the driver, print the choice and stop.</summary>
    public bool SelectOnly { get; set; }

    /// <summary>How often to log the peers' state.</summary>
    public TimeSpan StatusInterval { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>The tunnel the gateway opens (configuration section <c>Tunnel</c>).</summary>
public sealed class GatewayTunnelOptions
{
    /// <summary>Interface name.</summary>
    public string Name { get; set; } = "wg0";

    /// <summary>UDP port.</summary>
    public int ListenPort { get; set; } = 51820;

    /// <summary>Tunnel address with prefix, for example 10.8.0.1/32.</summary>
    public string Address { get; set; } = "10.8.0.1/32";

    /// <summary>MTU.</summary>
    public int Mtu { get; set; } = DeviceSpec.DefaultMtu;

    /// <summary>Peers.</summary>
    public List<GatewayPeerOptions> Peers { get; } = [];
}

/// <summary>One peer of the sample gateway.</summary>
public sealed class GatewayPeerOptions
{
    /// <summary>Base64 public key.</summary>
    public string PublicKey { get; set; } = string.Empty;

    /// <summary>Allowed IPs as prefixes.</summary>
    public List<string> AllowedIps { get; } = [];

    /// <summary>host:port, or empty for peers that connect to us.</summary>
    public string? Endpoint { get; set; }

    /// <summary>Persistent keepalive in seconds (0: off).</summary>
    public int KeepaliveSeconds { get; set; }
}

/// <summary>Selects the driver (logging why), tunes sysctls, opens the tunnel and logs its state until stopped.</summary>
internal sealed partial class GatewayService(
    ITunnelDriverSelector selector,
    IKeyStore keys,
    IOptions<GatewayTunnelOptions> tunnel,
    SampleOptions sample,
    IHostApplicationLifetime lifetime,
    ILogger<GatewayService> logger) : BackgroundService
{
    private const string KeyId = "gateway";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var selection = await selector.SelectAsync(cancellationToken: stoppingToken);
        foreach (var (driver, probe) in selection.Probes)
        {
            LogProbe(logger, driver, probe.IsAvailable ? "available" : "unavailable", probe.Reason);
        }

        LogSelected(logger, selection.Driver.Name, selection.Reason);
        if (sample.SelectOnly)
        {
            lifetime.StopApplication();
            return;
        }

        GatewaySysctls.Log(logger, new GatewaySysctls().Apply(GatewaySysctls.GatewayDefaults()));

        var publicKey = await EnsureKeyAsync(stoppingToken);
        LogKey(logger, publicKey.ToBase64());
        var options = tunnel.Value;
        var spec = new TunnelSpec(
            new DeviceSpec(options.Name, new KeyReference(KeyId), options.ListenPort, [IPNetwork.Parse(options.Address)], options.Mtu),
            [.. options.Peers.Select(p => new PeerSpec(p.PublicKey, [.. p.AllowedIps.Select(IPNetwork.Parse)])
            {
                Endpoint = string.IsNullOrWhiteSpace(p.Endpoint) ? null : p.Endpoint,
                PersistentKeepalive = p.KeepaliveSeconds > 0 ? TimeSpan.FromSeconds(p.KeepaliveSeconds) : null,
            })]);

        await using var open = await selection.Driver.OpenAsync(spec, stoppingToken);
        var status = await open.GetStatusAsync(stoppingToken);
        LogOpened(logger, open.Name, open.DriverName, status.ListenPort, status.Mtu, status.Peers.Count);
        try
        {
            using var timer = new PeriodicTimer(sample.StatusInterval);
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                status = await open.GetStatusAsync(stoppingToken);
                foreach (var peer in status.Peers)
                {
                    LogPeer(logger, peer.Name ?? peer.PublicKey, peer.Endpoint ?? "-", peer.LastHandshake?.ToString("O") ?? "never", peer.ReceivedBytes, peer.TransmittedBytes);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await open.CloseAsync(CancellationToken.None);
    }

    /// <summary>Reads the gateway key, creating it on the very first start (compare-and-swap: two replicas cannot both create it).</summary>
    private async Task<WireGuardPublicKey> EnsureKeyAsync(CancellationToken cancellationToken)
    {
        using (var existing = await keys.GetAsync(KeyId, cancellationToken: cancellationToken))
        {
            if (existing is not null)
            {
                using var key = existing.Value.Length == WireGuardSecretKey.Length
                    ? new WireGuardSecretKey(existing.Value)
                    : WireGuardSecretKey.FromBase64(Encoding.ASCII.GetString(existing.Value));
                return key.GetPublicKey();
            }
        }

        using var created = WireGuardSecretKey.GeneratePrivateKey();
        try
        {
            await keys.PutAsync(KeyId, created.Bytes.ToArray(), expectedVersion: 0, cancellationToken);
        }
        catch (KeyStoreConflictException)
        {
            return await EnsureKeyAsync(cancellationToken);
        }

        return created.GetPublicKey();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Driver {Driver}: {State} ({Reason})")]
    private static partial void LogProbe(ILogger logger, string driver, string state, string reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Selected {Driver}: {Reason}")]
    private static partial void LogSelected(ILogger logger, string driver, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Gateway public key {PublicKey}")]
    private static partial void LogKey(ILogger logger, string publicKey);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Tunnel {Name} open with {Driver}: port {Port}, MTU {Mtu}, {Peers} peer(s)")]
    private static partial void LogOpened(ILogger logger, string name, string driver, int port, int mtu, int peers);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Peer {Peer}: endpoint {Endpoint}, last handshake {Handshake}, rx {Rx} B, tx {Tx} B")]
    private static partial void LogPeer(ILogger logger, string peer, string endpoint, string handshake, long rx, long tx);
}
