using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Device;
using CloudVpn.WireGuard.Interop;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Tun;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>
/// The userspace WireGuard tunnel driver: our own WireGuard on a TUN device, for machines without the kernel module
/// (most managed Kubernetes nodes, unprivileged sidecars). Needs <c>/dev/net/tun</c> and CAP_NET_ADMIN.
/// </summary>
/// <remarks>
/// Driver settings (<see cref="TunnelSpec.DriverSettings"/>): <c>wireguard-userspace.uapi-socket-directory</c> (default
/// <c>/var/run/wireguard</c>, skipped with a warning when it cannot be served, for example on a read-only root file
/// system; set explicitly it must work; <c>none</c> serves no socket), <c>wireguard-userspace.routes</c> (<c>true</c>: install a
/// route per allowed IP; <c>false</c>: leave routing to the host), <c>wireguard-userspace.netns</c> (create the device
/// inside that named network namespace), and the data-path switches (all <c>true</c> by default; see
/// <see cref="WireGuardDataPathOptions"/>): <c>wireguard-userspace.batching</c>, <c>.tun-offloads</c>,
/// <c>.tun-coalesce</c>, <c>.udp-mmsg</c>, <c>.udp-gso</c>, <c>.udp-gro</c>, <c>.udp-socket-buffer</c> (bytes) and
/// <c>.crypto-workers</c> (0..256).
/// </remarks>
public sealed class UserspaceWireGuardDriver : ITunnelDriver
{
    /// <summary>The driver name.</summary>
    public const string DriverName = "wireguard-userspace";

    /// <summary>The protocol family.</summary>
    public const string FamilyName = "wireguard";

    private readonly IKeyStoreProvider _keys;
    private readonly ILoggerFactory _loggerFactory;
    private readonly TimeProvider _time;
    private readonly Func<string?> _probeTun;
    private readonly Func<ulong?> _readCapabilities;

    /// <summary>Creates the driver; keys are read through <paramref name="keys"/>.</summary>
    public UserspaceWireGuardDriver(IKeyStoreProvider keys, ILoggerFactory? loggerFactory = null, TimeProvider? time = null)
        : this(keys, loggerFactory, time, TunDevice.ProbeUnavailableReason, () => LinuxCapabilities.ReadEffective())
    {
    }

    internal UserspaceWireGuardDriver(IKeyStoreProvider keys, ILoggerFactory? loggerFactory, TimeProvider? time, Func<string?> probeTun, Func<ulong?> readCapabilities)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _keys = keys;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _time = time ?? TimeProvider.System;
        _probeTun = probeTun;
        _readCapabilities = readCapabilities;
    }

    /// <inheritdoc />
    public string Name => DriverName;

    /// <inheritdoc />
    public string Family => FamilyName;

    /// <inheritdoc />
    public int Priority => 10;

    /// <inheritdoc />
    public ValueTask<DriverProbeResult> ProbeAsync(CancellationToken cancellationToken = default)
    {
        if (!OperatingSystem.IsLinux())
        {
            return ValueTask.FromResult(DriverProbeResult.Unavailable("the userspace WireGuard driver needs Linux (a TUN device)"));
        }

        var capabilities = _readCapabilities();
        var details = new Dictionary<string, string>
        {
            ["capEff"] = capabilities is { } c ? c.ToString("x16", System.Globalization.CultureInfo.InvariantCulture) : "unknown",
        };
        if (capabilities is { } mask && !LinuxCapabilities.Has(mask, LinuxCapabilities.NetAdmin))
        {
            return ValueTask.FromResult(DriverProbeResult.Unavailable(
                "the process lacks CAP_NET_ADMIN (add it to the container's securityContext.capabilities.add), needed to create and configure the TUN device",
                details));
        }

        var tunProblem = _probeTun();
        if (tunProblem is not null)
        {
            return ValueTask.FromResult(DriverProbeResult.Unavailable(tunProblem, details));
        }

        return ValueTask.FromResult(DriverProbeResult.Available("/dev/net/tun opens and CAP_NET_ADMIN is held", details));
    }

    /// <inheritdoc />
    public async ValueTask<ITunnel> OpenAsync(TunnelSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var settings = UserspaceTunnelSettings.From(spec);
        var desired = await DesiredState.ResolveAsync(spec, _keys, cancellationToken, withAdditionalKey: true);
        try
        {
            var options = new WireGuardDeviceOptions
            {
                Name = spec.Device.Name,
                Mtu = spec.Device.Mtu,
                ListenPort = spec.Device.ListenPort,
                FirewallMark = spec.Device.FirewallMark,
                UapiSocketDirectory = settings.UapiSocketDirectory,

                // the default socket is a convenience for `wg show`; only a directory asked for explicitly must work
                UapiSocketRequired = settings.UapiSocketDirectoryExplicit,
                DataPath = settings.DataPath ?? new WireGuardDataPathOptions(),
            };
            var device = settings.NetworkNamespace is { } ns
                ? NetworkNamespace.Run(ns, () => WireGuardDevice.Create(options, _loggerFactory, _time))
                : WireGuardDevice.Create(options, _loggerFactory, _time);
            var tunnel = new UserspaceWireGuardTunnel(device, settings, _keys, _loggerFactory.CreateLogger<UserspaceWireGuardTunnel>());
            try
            {
                tunnel.Apply(desired, initial: true);
            }
            catch
            {
                await tunnel.CloseAsync(CancellationToken.None);
                throw;
            }

            return tunnel;
        }
        finally
        {
            desired.Dispose();
        }
    }
}

/// <summary>The driver's settings from <see cref="TunnelSpec.DriverSettings"/>, validated.</summary>
internal sealed record UserspaceTunnelSettings(string? UapiSocketDirectory, bool InstallRoutes, string? NetworkNamespace, bool UapiSocketDirectoryExplicit = false, WireGuardDataPathOptions? DataPath = null)
{
    private const string Prefix = "wireguard-userspace.";

    public static UserspaceTunnelSettings From(TunnelSpec spec)
    {
        var values = spec.DriverSettings;
        var errors = new List<string>();
        string? uapi = "/var/run/wireguard";
        var uapiExplicit = false;
        var routes = true;
        string? netns = null;
        var dataPath = new WireGuardDataPathOptions();
        bool Flag(string key, string value, bool fallback)
        {
            if (bool.TryParse(value, out var flag))
            {
                return flag;
            }

            errors.Add($"{key}: '{value}' is not true or false");
            return fallback;
        }

        foreach (var (key, value) in values)
        {
            if (!key.StartsWith(Prefix, StringComparison.Ordinal))
            {
                continue;
            }

            switch (key[Prefix.Length..])
            {
                case "uapi-socket-directory":
                    uapiExplicit = true;
                    uapi = string.Equals(value, "none", StringComparison.Ordinal) ? null : value;
                    if (uapi is not null && !Path.IsPathRooted(uapi))
                    {
                        errors.Add($"{key}: '{value}' is not an absolute directory (or 'none')");
                    }

                    break;
                case "routes":
                    if (!bool.TryParse(value, out routes))
                    {
                        errors.Add($"{key}: '{value}' is not true or false");
                    }

                    break;
                case "netns":
                    netns = string.IsNullOrWhiteSpace(value) ? null : value;
                    break;
                case "batching":
                    dataPath = dataPath with { Batching = Flag(key, value, true) };
                    break;
                case "tun-offloads":
                    dataPath = dataPath with { Tun = new TunOptions { Offloads = Flag(key, value, true), Coalesce = dataPath.Tun.Coalesce, BatchSize = dataPath.Tun.BatchSize } };
                    break;
                case "tun-coalesce":
                    dataPath = dataPath with { Tun = new TunOptions { Offloads = dataPath.Tun.Offloads, Coalesce = Flag(key, value, true), BatchSize = dataPath.Tun.BatchSize } };
                    break;
                case "udp-mmsg":
                    dataPath = dataPath with { Udp = dataPath.Udp with { UseMmsg = Flag(key, value, true) } };
                    break;
                case "udp-gso":
                    dataPath = dataPath with { Udp = dataPath.Udp with { UseGso = Flag(key, value, true) } };
                    break;
                case "udp-gro":
                    dataPath = dataPath with { Udp = dataPath.Udp with { UseGro = Flag(key, value, true) } };
                    break;
                case "udp-socket-buffer":
                    if (int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var bytes) &&
                        bytes is >= Udp.UdpBatchOptions.MinSocketBufferSize and <= Udp.UdpBatchOptions.MaxSocketBufferSize)
                    {
                        dataPath = dataPath with { Udp = dataPath.Udp with { SocketBufferSize = bytes } };
                    }
                    else
                    {
                        errors.Add($"{key}: '{value}' is not a byte count from {Udp.UdpBatchOptions.MinSocketBufferSize} to {Udp.UdpBatchOptions.MaxSocketBufferSize}");
                    }

                    break;
                case "crypto-workers":
                    if (int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var workers) && workers <= 256)
                    {
                        dataPath = dataPath with { CryptoWorkers = workers };
                    }
                    else
                    {
                        errors.Add($"{key}: '{value}' is not a number of threads from 0 to 256");
                    }

                    break;
                default:
                    errors.Add($"{key}: unknown setting (known: {Prefix}uapi-socket-directory, {Prefix}routes, {Prefix}netns, {Prefix}batching, {Prefix}tun-offloads, {Prefix}tun-coalesce, {Prefix}udp-mmsg, {Prefix}udp-gso, {Prefix}udp-gro, {Prefix}udp-socket-buffer, {Prefix}crypto-workers)");
                    break;
            }
        }

        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid driver settings for {UserspaceWireGuardDriver.DriverName}: {string.Join("; ", errors)}.", nameof(spec));
        }

        return new UserspaceTunnelSettings(uapi, routes, netns, uapiExplicit, dataPath);
    }
}
