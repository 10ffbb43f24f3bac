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
/// inside that named network namespace).
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
internal sealed record UserspaceTunnelSettings(string? UapiSocketDirectory, bool InstallRoutes, string? NetworkNamespace, bool UapiSocketDirectoryExplicit = false)
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
                default:
                    errors.Add($"{key}: unknown setting (known: {Prefix}uapi-socket-directory, {Prefix}routes, {Prefix}netns)");
                    break;
            }
        }

        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid driver settings for {UserspaceWireGuardDriver.DriverName}: {string.Join("; ", errors)}.", nameof(spec));
        }

        return new UserspaceTunnelSettings(uapi, routes, netns, uapiExplicit);
    }
}
