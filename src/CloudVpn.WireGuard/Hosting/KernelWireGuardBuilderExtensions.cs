using CloudVpn.Tunnels;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>Registers the kernel WireGuard driver on the CloudVpn builder.</summary>
public static class KernelWireGuardBuilderExtensions
{
    /// <summary>
    /// Adds the kernel WireGuard driver (<c>wireguard-kernel</c>, family <c>wireguard</c>, priority 100): asking for
    /// <c>wireguard</c> gets it when the module is loaded and CAP_NET_ADMIN is held, and the next driver of the family
    /// (the userspace one, with <c>AddWireGuard()</c>) otherwise. Safe to call more than once.
    /// </summary>
    public static ICloudVpnBuilder AddWireGuardKernel(this ICloudVpnBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.EnsureCloudVpn(nameof(AddWireGuardKernel));
        return builder.AddTunnelDriver<KernelWireGuardDriver>(KernelWireGuardDriver.DriverName, KernelWireGuardDriver.FamilyName);
    }
}
