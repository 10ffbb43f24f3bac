using Microsoft.Extensions.DependencyInjection;

namespace CloudVpn;

/// <summary>Returned by <c>AddCloudVpn()</c>; backend packages add extension methods to it.</summary>
public interface ICloudVpnBuilder
{
    /// <summary>The service collection being configured.</summary>
    IServiceCollection Services { get; }
}
