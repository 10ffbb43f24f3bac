using CloudVpn.OpenVpn;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace CloudVpn;

/// <summary>Adds the OpenVPN driver to a CloudVpn host: <c>services.AddCloudVpn(...).AddOpenVpn(...)</c>.</summary>
public static class OpenVpnBuilderExtensions
{
    /// <summary>
    /// Registers the <c>openvpn</c> tunnel driver with its options (validated at start, every error listed).
    /// Safe to call more than once: each <paramref name="configure"/> applies, the driver is registered once.
    /// </summary>
    public static ICloudVpnBuilder AddOpenVpn(this ICloudVpnBuilder builder, Action<OpenVpnOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.EnsureCloudVpn(nameof(AddOpenVpn));
        builder.Services.AddOptions<OpenVpnOptions>().ValidateOnStart();
        if (configure is not null)
        {
            builder.Services.Configure(configure);
        }

        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OpenVpnOptions>, OpenVpnOptionsValidator>());
        return builder.AddTunnelDriver<OpenVpnDriver>(OpenVpnDriver.DriverName, OpenVpnDriver.FamilyName);
    }
}
