using CloudVpn.Kubernetes.CustomResources;
using k8s;

namespace CloudVpn.Kubernetes.Manifests;

/// <summary>
/// What the target cluster serves, as far as the gateway's objects depend on it: its version (API versions of
/// HorizontalPodAutoscaler, CronJob and PodDisruptionBudget) and the API group versions of custom resources (the
/// chart's <c>.Capabilities.APIVersions</c>): ServiceMonitor and PrometheusRule are built only where
/// <c>monitoring.coreos.com/v1</c> is served, and an ExternalSecret key source needs <c>external-secrets.io/v1beta1</c>.
/// </summary>
public sealed record ClusterCapabilities
{
    /// <summary>A cluster of <paramref name="version"/> serving the given group versions (<c>group/version</c>) beyond the built-in ones.</summary>
    public ClusterCapabilities(KubernetesVersion version, IEnumerable<string>? apiVersions = null)
    {
        ArgumentNullException.ThrowIfNull(version);
        Version = version;
        ApiVersions = new HashSet<string>(apiVersions ?? [], StringComparer.Ordinal);
    }

    /// <summary>The Kubernetes version.</summary>
    public KubernetesVersion Version { get; }

    /// <summary>Served API group versions (<c>group/version</c>); only the custom ones matter to the builder.</summary>
    public IReadOnlySet<string> ApiVersions { get; }

    /// <summary>Whether the Prometheus Operator's API (ServiceMonitor, PrometheusRule) is served.</summary>
    public bool ServesMonitoring => Serves(ServiceMonitor.GroupVersion);

    /// <summary>Whether the External Secrets Operator's API (ExternalSecret, SecretStore) is served.</summary>
    public bool ServesExternalSecrets => Serves(ExternalSecret.GroupVersion);

    /// <summary>Whether <paramref name="groupVersion"/> (for example <c>monitoring.coreos.com/v1</c>) is served.</summary>
    public bool Serves(string groupVersion) => ApiVersions.Contains(groupVersion);

    /// <summary>Reads the version and the served API groups from a cluster (what helm reads for <c>.Capabilities</c>).</summary>
    public static async Task<ClusterCapabilities> DiscoverAsync(IKubernetes client, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var version = await client.Version.GetCodeAsync(cancellationToken).ConfigureAwait(false);
        var groups = await client.Apis.GetAPIVersionsAsync(cancellationToken).ConfigureAwait(false);
        var served = groups.Groups.SelectMany(g => g.Versions.Select(v => v.GroupVersion)).Append("v1");
        return new ClusterCapabilities(KubernetesVersion.Parse(version.GitVersion), served);
    }
}
