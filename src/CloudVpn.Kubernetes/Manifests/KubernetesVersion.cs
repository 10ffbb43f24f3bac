using System.Globalization;

namespace CloudVpn.Kubernetes.Manifests;

/// <summary>
/// The Kubernetes version objects are built for: kinds whose current API version is newer than the cluster fall back
/// to the version it serves (autoscaling/v2 from 1.23, batch/v1 CronJob and policy/v1 PDB from 1.21), as the chart does.
/// </summary>
/// <param name="Major">Major version (1).</param>
/// <param name="Minor">Minor version.</param>
public sealed record KubernetesVersion(int Major, int Minor)
{
    /// <summary>Kubernetes 1.20, the oldest the chart supports.</summary>
    public static KubernetesVersion V1_20 { get; } = new(1, 20);

    /// <summary>A current Kubernetes (1.30).</summary>
    public static KubernetesVersion Current { get; } = new(1, 30);

    /// <summary>apiVersion of HorizontalPodAutoscaler.</summary>
    public string HorizontalPodAutoscalerApiVersion => AtLeast(1, 23) ? "autoscaling/v2" : "autoscaling/v2beta2";

    /// <summary>apiVersion of CronJob.</summary>
    public string CronJobApiVersion => AtLeast(1, 21) ? "batch/v1" : "batch/v1beta1";

    /// <summary>apiVersion of PodDisruptionBudget.</summary>
    public string PodDisruptionBudgetApiVersion => AtLeast(1, 21) ? "policy/v1" : "policy/v1beta1";

    /// <summary>Whether this version is at least <paramref name="major"/>.<paramref name="minor"/>.</summary>
    public bool AtLeast(int major, int minor) => Major > major || (Major == major && Minor >= minor);

    /// <summary>Parses <c>1.20</c>, <c>v1.20.2</c> or a server's gitVersion.</summary>
    public static KubernetesVersion Parse(string version)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(version);
        var parts = version.TrimStart('v').Split('.', '-', '+');
        if (parts.Length < 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var major)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var minor))
        {
            throw new FormatException($"'{version}' is not a Kubernetes version (major.minor)");
        }

        return new KubernetesVersion(major, minor);
    }

    /// <inheritdoc />
    public override string ToString() => $"{Major}.{Minor}";
}
