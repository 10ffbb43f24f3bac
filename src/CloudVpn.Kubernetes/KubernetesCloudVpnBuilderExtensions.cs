using CloudVpn.Policy;
using CloudVpn.Scaling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CloudVpn;

/// <summary>Registers the Kubernetes policy emitter and the connection-based scaling strategy on the CloudVpn builder.</summary>
public static class KubernetesCloudVpnBuilderExtensions
{
    /// <summary>Adds <see cref="KubernetesPolicyEmitter"/> as an <see cref="IPolicyEmitter"/> (once, however often called).</summary>
    public static ICloudVpnBuilder AddKubernetesPolicyEmitter(this ICloudVpnBuilder builder)
    {
        builder.EnsureCloudVpn(nameof(AddKubernetesPolicyEmitter));
        builder.Services.TryAddSingleton<KubernetesPolicyEmitter>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IPolicyEmitter, KubernetesPolicyEmitter>(sp => sp.GetRequiredService<KubernetesPolicyEmitter>()));
        return builder;
    }

    /// <summary>
    /// Adds <see cref="ConnectionScalingStrategy"/> as the <see cref="IScalingStrategy"/>; invalid options throw here,
    /// naming every problem. The first registration wins.
    /// </summary>
    public static ICloudVpnBuilder AddConnectionScaling(this ICloudVpnBuilder builder, ConnectionScalingOptions? options = null, bool legacyAutoscalingApi = false)
    {
        builder.EnsureCloudVpn(nameof(AddConnectionScaling));
        var strategy = new ConnectionScalingStrategy(options ?? new ConnectionScalingOptions(), legacyAutoscalingApi);
        builder.Services.TryAddSingleton<IScalingStrategy>(strategy);
        return builder;
    }
}
