using System.Globalization;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Interop;
using CloudVpn.WireGuard.Netlink;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>
/// The kernel WireGuard tunnel driver: the Linux <c>wireguard</c> module, configured over netlink from .NET (no
/// <c>ip</c> or <c>wg</c> processes). Preferred over the userspace driver wherever its probe passes: the module
/// answers on generic netlink and the process holds CAP_NET_ADMIN.
/// </summary>
/// <remarks>
/// Driver settings (<see cref="TunnelSpec.DriverSettings"/>): <c>wireguard-kernel.routes</c> (<c>true</c>: a route per
/// allowed IP; <c>false</c>: routing is the host's), <c>wireguard-kernel.netns</c> (create the interface, and with it its
/// UDP socket, in that named network namespace), <c>wireguard-kernel.keep-interface</c> (<c>true</c>: closing the tunnel
/// leaves the interface running, so a restarted gateway adopts it without dropping its peers' sessions).
/// </remarks>
public sealed class KernelWireGuardDriver : ITunnelDriver
{
    /// <summary>The driver name.</summary>
    public const string DriverName = "wireguard-kernel";

    /// <summary>The protocol family.</summary>
    public const string FamilyName = "wireguard";

    private readonly IKeyStoreProvider _keys;
    private readonly ILoggerFactory _loggerFactory;
    private readonly Func<(bool Resolves, string Reason)> _resolveFamily;
    private readonly Func<ulong?> _readCapabilities;

    /// <summary>Creates the driver; keys are read through <paramref name="keys"/>.</summary>
    [ActivatorUtilitiesConstructor]
    public KernelWireGuardDriver(IKeyStoreProvider keys, ILoggerFactory? loggerFactory = null)
        : this(keys, loggerFactory, ResolveFamily, () => LinuxCapabilities.ReadEffective())
    {
    }

    internal KernelWireGuardDriver(IKeyStoreProvider keys, ILoggerFactory? loggerFactory, Func<(bool, string)> resolveFamily, Func<ulong?> readCapabilities)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _keys = keys;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _resolveFamily = resolveFamily;
        _readCapabilities = readCapabilities;
    }

    /// <inheritdoc />
    public string Name => DriverName;

    /// <inheritdoc />
    public string Family => FamilyName;

    /// <inheritdoc />
    public int Priority => 100;

    /// <inheritdoc />
    public ValueTask<DriverProbeResult> ProbeAsync(CancellationToken cancellationToken = default)
    {
        if (!OperatingSystem.IsLinux())
        {
            return ValueTask.FromResult(DriverProbeResult.Unavailable("the kernel WireGuard driver needs Linux"));
        }

        var details = new Dictionary<string, string> { ["kernel"] = KernelRelease() };
        var (resolves, reason) = _resolveFamily();
        if (!resolves)
        {
            return ValueTask.FromResult(DriverProbeResult.Unavailable(reason, details));
        }

        var capabilities = _readCapabilities();
        details["capEff"] = capabilities is { } c ? c.ToString("x16", CultureInfo.InvariantCulture) : "unknown";
        if (capabilities is not { } mask || !LinuxCapabilities.Has(mask, LinuxCapabilities.NetAdmin))
        {
            return ValueTask.FromResult(DriverProbeResult.Unavailable(
                capabilities is null
                    ? "cannot read this process's capabilities from /proc/self/status; CAP_NET_ADMIN is needed to create and configure WireGuard interfaces"
                    : "the process lacks CAP_NET_ADMIN (add it to the container's securityContext.capabilities.add), needed to create and configure WireGuard interfaces",
                details));
        }

        return ValueTask.FromResult(DriverProbeResult.Available($"{reason}; CAP_NET_ADMIN is held", details));
    }

    /// <inheritdoc />
    public async ValueTask<ITunnel> OpenAsync(TunnelSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var settings = KernelTunnelSettings.From(spec);
        using var desired = await DesiredState.ResolveAsync(spec, _keys, cancellationToken);
        var tunnel = KernelWireGuardTunnel.Create(spec.Device.Name, settings, _keys, _loggerFactory.CreateLogger<KernelWireGuardTunnel>());
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

    private static (bool, string) ResolveFamily()
    {
        var resolves = WireGuardNetlink.TryResolveFamily(out _, out var reason);
        return (resolves, reason);
    }

    private static string KernelRelease()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}

/// <summary>The kernel driver's settings from <see cref="TunnelSpec.DriverSettings"/>, validated.</summary>
internal sealed record KernelTunnelSettings(bool InstallRoutes, string? NetworkNamespace, bool KeepInterface = false)
{
    private const string Prefix = "wireguard-kernel.";

    public static KernelTunnelSettings From(TunnelSpec spec)
    {
        var errors = new List<string>();
        var routes = true;
        var keep = false;
        string? netns = null;
        foreach (var (key, value) in spec.DriverSettings)
        {
            if (!key.StartsWith(Prefix, StringComparison.Ordinal))
            {
                continue;
            }

            switch (key[Prefix.Length..])
            {
                case "routes":
                    if (!bool.TryParse(value, out routes))
                    {
                        errors.Add($"{key}: '{value}' is not true or false");
                    }

                    break;
                case "netns":
                    netns = string.IsNullOrWhiteSpace(value) ? null : value;
                    break;
                case "keep-interface":
                    if (!bool.TryParse(value, out keep))
                    {
                        errors.Add($"{key}: '{value}' is not true or false");
                    }

                    break;
                default:
                    errors.Add($"{key}: unknown setting (known: {Prefix}routes, {Prefix}netns, {Prefix}keep-interface)");
                    break;
            }
        }

        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid driver settings for {KernelWireGuardDriver.DriverName}: {string.Join("; ", errors)}.", nameof(spec));
        }

        return new KernelTunnelSettings(routes, netns, keep);
    }
}
