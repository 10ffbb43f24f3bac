using CloudVpn.KeyStores;
using k8s;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.Kubernetes.KeyStores;

/// <summary>Registers a <see cref="KubernetesSecretKeyStore"/> on the CloudVpn builder.</summary>
public static class KubernetesSecretKeyStoreBuilderExtensions
{
    /// <summary>
    /// Adds a Kubernetes Secret key store named <paramref name="name"/> (settings: the named options
    /// <c>KubernetesSecretKeyStoreOptions</c> "<paramref name="name"/>", validated at start). It uses the registered
    /// <see cref="IKubernetes"/>, or one built from the in-cluster service account (or the local kubeconfig outside a cluster).
    /// </summary>
    public static ICloudVpnBuilder AddKubernetesSecretKeyStore(
        this ICloudVpnBuilder builder,
        Action<KubernetesSecretKeyStoreOptions> configure,
        string name = "kubernetes",
        bool isDefault = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.EnsureCloudVpn(nameof(AddKubernetesSecretKeyStore));
        builder.Services.AddOptions<KubernetesSecretKeyStoreOptions>(name).Configure(configure).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KubernetesSecretKeyStoreOptions>, KubernetesSecretKeyStoreOptionsValidator>());
        builder.Services.TryAddSingleton<IKubernetes>(_ => new k8s.Kubernetes(
            KubernetesClientConfiguration.IsInCluster()
                ? KubernetesClientConfiguration.InClusterConfig()
                : KubernetesClientConfiguration.BuildConfigFromConfigFile()));
        return builder.AddKeyStore(
            name,
            sp => new KubernetesSecretKeyStore(
                sp.GetRequiredService<IKubernetes>(),
                sp.GetRequiredService<IOptionsMonitor<KubernetesSecretKeyStoreOptions>>().Get(name),
                name,
                sp.GetService<TimeProvider>(),
                sp.GetService<ILogger<KubernetesSecretKeyStore>>()),
            isDefault);
    }
}
