using CloudVpn.Tunnels;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>Registers the WireGuard tunnel drivers on the CloudVpn builder.</summary>
public static class WireGuardBuilderExtensions
{
    /// <summary>
    /// Adds the userspace WireGuard driver (<c>wireguard-userspace</c>, family <c>wireguard</c>, priority 10), so that
    /// asking for <c>wireguard</c> gets it wherever a preferred driver (the kernel module) cannot run. Safe to call more than once.
    /// </summary>
    public static ICloudVpnBuilder AddWireGuard(this ICloudVpnBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.EnsureCloudVpn(nameof(AddWireGuard));
        return builder.AddTunnelDriver<UserspaceWireGuardDriver>(UserspaceWireGuardDriver.DriverName, UserspaceWireGuardDriver.FamilyName);
    }
}
