using System.Net;

namespace CloudVpn.Kubernetes.Injection;

/// <summary>Annotation names of the injection contract.</summary>
public static class InjectionAnnotations
{
    /// <summary><c>"true"</c> on a pod (template) opts it in; anything else, or absence, leaves it alone.</summary>
    public const string Inject = "cloudvpn.io/inject";

    /// <summary>Name of the gateway the pod connects to; required when the pod opts in.</summary>
    public const string Gateway = "cloudvpn.io/gateway";

    /// <summary>Optional: the Secret holding the client configuration (default <c>&lt;gateway&gt;-client</c>).</summary>
    public const string Secret = "cloudvpn.io/secret";

    /// <summary>Optional: comma-separated networks behind the tunnel (overrides the injector's default routes).</summary>
    public const string Routes = "cloudvpn.io/routes";

    /// <summary>Set by the injector on an injected pod: the sidecar form used (<c>native</c> or <c>container</c>).</summary>
    public const string Status = "cloudvpn.io/injected";

    /// <summary>Istio: outbound IP ranges that bypass the mesh proxy.</summary>
    public const string IstioExcludeOutboundIpRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges";

    /// <summary>Istio: outbound ports that bypass the mesh proxy.</summary>
    public const string IstioExcludeOutboundPorts = "traffic.sidecar.istio.io/excludeOutboundPorts";

    /// <summary>Linkerd: outbound ports the proxy does not intercept.</summary>
    public const string LinkerdSkipOutboundPorts = "config.linkerd.io/skip-outbound-ports";

    /// <summary>Linkerd: subnets the proxy does not intercept.</summary>
    public const string LinkerdSkipSubnets = "config.linkerd.io/skip-subnets";
}

/// <summary>Which form the sidecar takes.</summary>
public enum SidecarForm
{
    /// <summary>Native sidecar when the API server supports it (Kubernetes 1.29 and later), a plain container otherwise.</summary>
    Auto,

    /// <summary>An init container with <c>restartPolicy: Always</c> (Kubernetes 1.29+): starts before the application and outlives it.</summary>
    Native,

    /// <summary>A plain container placed first, with a post-start hook that holds the application until the tunnel is up.</summary>
    Container,
}

/// <summary>What the injector adds to a pod.</summary>
public sealed class SidecarInjectionOptions
{
    /// <summary>The sidecar image (the CloudVpn client host).</summary>
    public string Image { get; set; } = "ghcr.io/cloudvpn/sidecar:0.1.0";

    /// <summary>Image pull policy of the sidecar.</summary>
    public string ImagePullPolicy { get; set; } = "IfNotPresent";

    /// <summary>Form of the sidecar.</summary>
    public SidecarForm Form { get; set; } = SidecarForm.Auto;

    /// <summary>Where the client Secret is mounted (read-only) in the sidecar.</summary>
    public string ConfigMountPath { get; set; } = "/etc/cloudvpn";

    /// <summary>The sidecar's health port (startup, liveness).</summary>
    public int HealthPort { get; set; } = 9102;

    /// <summary>The gateway's tunnel port (UDP): kept out of a mesh proxy's way.</summary>
    public int TunnelPort { get; set; } = 51820;

    /// <summary>Networks behind the tunnel; traffic to them bypasses a mesh proxy.</summary>
    public IList<IPNetwork> Routes { get; } = [];

    /// <summary>Add the Istio and Linkerd bypass annotations (harmless where no mesh runs).</summary>
    public bool MeshCoordination { get; set; } = true;

    /// <summary>User id the sidecar runs as (non-root).</summary>
    public long RunAsUser { get; set; } = 65532;

    /// <summary>CPU request of the sidecar.</summary>
    public string CpuRequest { get; set; } = "50m";

    /// <summary>Memory request of the sidecar.</summary>
    public string MemoryRequest { get; set; } = "32Mi";

    /// <summary>Memory limit of the sidecar.</summary>
    public string MemoryLimit { get; set; } = "128Mi";

    /// <summary>Checks the options; the message names every bad field.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(Image))
        {
            errors.Add($"{nameof(Image)}: must not be empty");
        }

        if (ImagePullPolicy is not ("Always" or "IfNotPresent" or "Never"))
        {
            errors.Add($"{nameof(ImagePullPolicy)}: '{ImagePullPolicy}' is not Always, IfNotPresent or Never");
        }

        if (!ConfigMountPath.StartsWith('/'))
        {
            errors.Add($"{nameof(ConfigMountPath)}: '{ConfigMountPath}' is not an absolute path");
        }

        if (HealthPort is < 1 or > 65535)
        {
            errors.Add($"{nameof(HealthPort)}: {HealthPort} is outside 1-65535");
        }

        if (TunnelPort is < 1 or > 65535)
        {
            errors.Add($"{nameof(TunnelPort)}: {TunnelPort} is outside 1-65535");
        }

        if (RunAsUser <= 0)
        {
            errors.Add($"{nameof(RunAsUser)}: {RunAsUser} must be a non-root user id (> 0)");
        }

        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid sidecar injection options: " + string.Join("; ", errors));
        }
    }
}
