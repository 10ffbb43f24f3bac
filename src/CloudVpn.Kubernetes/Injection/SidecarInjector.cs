using System.Globalization;
using System.Net;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Injection;

/// <summary>Why a pod was or was not changed.</summary>
public enum InjectionDecision
{
    /// <summary>The sidecar was added.</summary>
    Injected,

    /// <summary>The pod does not opt in (<c>cloudvpn.io/inject</c> is absent or not <c>"true"</c>).</summary>
    NotOptedIn,

    /// <summary>The pod already carries the sidecar; nothing changed.</summary>
    AlreadyInjected,
}

/// <summary>The result of injecting one pod (template).</summary>
/// <param name="Decision">What happened.</param>
/// <param name="Form">The sidecar form used, when injected.</param>
public sealed record InjectionResult(InjectionDecision Decision, SidecarForm? Form = null)
{
    /// <summary>True when the pod changed.</summary>
    public bool Changed => Decision == InjectionDecision.Injected;
}

/// <summary>A pod opted in but cannot be injected (for example the gateway annotation is missing).</summary>
public sealed class InjectionException(string message) : Exception(message);

/// <summary>
/// Adds the CloudVpn client sidecar to pods that opt in by annotation. A pure transform: a pod in, a pod out; injecting
/// twice changes nothing; pods that do not opt in, or already carry the sidecar, are returned unchanged.
/// </summary>
public sealed class SidecarInjector
{
    /// <summary>Name of the sidecar container.</summary>
    public const string ContainerName = "cloudvpn-sidecar";

    /// <summary>Name of the volume holding the client configuration Secret.</summary>
    public const string VolumeName = "cloudvpn-client";

    /// <summary>Name of the in-memory volume for the sidecar's runtime state (key store, UAPI socket): the root file system is read-only.</summary>
    public const string StateVolumeName = "cloudvpn-run";

    /// <summary>Where the state volume is mounted.</summary>
    public const string StateMountPath = "/run/cloudvpn";

    /// <summary>First Kubernetes version whose API server keeps <c>restartPolicy: Always</c> on init containers by default.</summary>
    public static readonly Version NativeSidecarMinimumVersion = new(1, 29);

    private readonly SidecarInjectionOptions _options;

    /// <summary>Creates an injector; the options are validated.</summary>
    public SidecarInjector(SidecarInjectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>Returns true when an API server of <paramref name="serverVersion"/> supports native sidecars.</summary>
    public static bool SupportsNativeSidecars(Version serverVersion)
    {
        ArgumentNullException.ThrowIfNull(serverVersion);
        return serverVersion >= NativeSidecarMinimumVersion;
    }

    /// <summary>Parses an API server's <c>/version</c> answer (major "1", minor "20" or "20+").</summary>
    public static Version ParseServerVersion(string major, string minor)
    {
        static int Digits(string s, string field)
        {
            var digits = new string(s.TakeWhile(char.IsAsciiDigit).ToArray());
            return digits.Length > 0 ? int.Parse(digits, CultureInfo.InvariantCulture) : throw new FormatException($"server version {field} '{s}' has no number");
        }

        return new Version(Digits(major, "major"), Digits(minor, "minor"));
    }

    /// <summary>Injects a pod; the input is not modified.</summary>
    /// <param name="pod">The pod.</param>
    /// <param name="serverVersion">The API server's version (chooses the form under <see cref="SidecarForm.Auto"/>); null means current.</param>
    /// <exception cref="InjectionException">The pod opts in but cannot be injected.</exception>
    public (V1Pod Pod, InjectionResult Result) Inject(V1Pod pod, Version? serverVersion = null)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var copy = Clone(pod);
        copy.Metadata ??= new V1ObjectMeta();
        copy.Spec ??= new V1PodSpec { Containers = [] };
        var result = InjectTemplate(copy.Metadata, copy.Spec, serverVersion);
        return (result.Changed ? copy : pod, result);
    }

    /// <summary>Injects a pod template in place (the metadata and spec of a Deployment's or Job's template).</summary>
    /// <exception cref="InjectionException">The template opts in but cannot be injected.</exception>
    public InjectionResult InjectTemplate(V1ObjectMeta metadata, V1PodSpec spec, Version? serverVersion = null)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(spec);
        var annotations = metadata.Annotations ?? new Dictionary<string, string>();
        if (!annotations.TryGetValue(InjectionAnnotations.Inject, out var inject) || !string.Equals(inject.Trim(), "true", StringComparison.OrdinalIgnoreCase))
        {
            return new InjectionResult(InjectionDecision.NotOptedIn);
        }

        if ((spec.Containers ?? []).Any(c => c.Name == ContainerName) || (spec.InitContainers ?? []).Any(c => c.Name == ContainerName))
        {
            return new InjectionResult(InjectionDecision.AlreadyInjected);
        }

        if (!annotations.TryGetValue(InjectionAnnotations.Gateway, out var gateway) || string.IsNullOrWhiteSpace(gateway))
        {
            throw new InjectionException($"annotation {InjectionAnnotations.Gateway}: missing; a pod with {InjectionAnnotations.Inject}: \"true\" must name its gateway");
        }

        gateway = gateway.Trim();
        var secretName = annotations.TryGetValue(InjectionAnnotations.Secret, out var s) && !string.IsNullOrWhiteSpace(s) ? s.Trim() : $"{gateway}-client";
        var routes = annotations.TryGetValue(InjectionAnnotations.Routes, out var r) ? ParseRoutes(r) : [.. _options.Routes];

        if ((spec.Volumes ?? []).FirstOrDefault(v => v.Name is VolumeName or StateVolumeName) is { } clash)
        {
            throw new InjectionException($"spec.volumes: the pod already has a volume named '{clash.Name}', which the sidecar needs");
        }

        var form = _options.Form switch
        {
            SidecarForm.Auto => serverVersion is null || SupportsNativeSidecars(serverVersion) ? SidecarForm.Native : SidecarForm.Container,
            var f => f,
        };

        var container = BuildContainer(gateway, form);
        if (form == SidecarForm.Native)
        {
            container.RestartPolicy = "Always";
            spec.InitContainers = [container, .. spec.InitContainers ?? []];
        }
        else
        {
            spec.Containers = [container, .. spec.Containers ?? []];
        }

        spec.Volumes = [.. spec.Volumes ?? [], new V1Volume
        {
            Name = VolumeName,
            // Only the sidecar mounts it. Secret files are owned by root; 0444 lets the non-root sidecar read them.
            Secret = new V1SecretVolumeSource { SecretName = secretName, DefaultMode = Convert.ToInt32("444", 8) },
        }, new V1Volume
        {
            Name = StateVolumeName,
            EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity("16Mi") },
        }];

        var updated = new Dictionary<string, string>(annotations)
        {
            [InjectionAnnotations.Status] = form == SidecarForm.Native ? "native" : "container",
        };
        if (_options.MeshCoordination)
        {
            var port = _options.TunnelPort.ToString(CultureInfo.InvariantCulture);
            var cidrs = routes.Select(n => n.ToString()).ToList();
            if (cidrs.Count > 0)
            {
                MergeList(updated, InjectionAnnotations.IstioExcludeOutboundIpRanges, cidrs);
                MergeList(updated, InjectionAnnotations.LinkerdSkipSubnets, cidrs);
            }

            MergeList(updated, InjectionAnnotations.IstioExcludeOutboundPorts, [port]);
            MergeList(updated, InjectionAnnotations.LinkerdSkipOutboundPorts, [port]);
        }

        metadata.Annotations = updated;
        return new InjectionResult(InjectionDecision.Injected, form);
    }

    private V1Container BuildContainer(string gateway, SidecarForm form)
    {
        IntOrString health = _options.HealthPort;
        var container = new V1Container
        {
            Name = ContainerName,
            Image = _options.Image,
            ImagePullPolicy = _options.ImagePullPolicy,
            Args =
            [
                "--config-dir", _options.ConfigMountPath,
                "--state-dir", StateMountPath,
                "--gateway", gateway,
                "--http", $"0.0.0.0:{_options.HealthPort.ToString(CultureInfo.InvariantCulture)}",
            ],
            Ports = [new V1ContainerPort { Name = "cloudvpn-health", ContainerPort = _options.HealthPort, Protocol = "TCP" }],
            Env =
            [
                new V1EnvVar { Name = "CLOUDVPN_GATEWAY", Value = gateway },
                new V1EnvVar { Name = "POD_NAME", ValueFrom = new V1EnvVarSource { FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.name" } } },
            ],
            VolumeMounts =
            [
                new V1VolumeMount { Name = VolumeName, MountPath = _options.ConfigMountPath, ReadOnlyProperty = true },
                new V1VolumeMount { Name = StateVolumeName, MountPath = StateMountPath },
            ],
            Resources = new V1ResourceRequirements
            {
                Requests = new Dictionary<string, ResourceQuantity>
                {
                    ["cpu"] = new(_options.CpuRequest),
                    ["memory"] = new(_options.MemoryRequest),
                },
                Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new(_options.MemoryLimit) },
            },
            SecurityContext = new V1SecurityContext
            {
                RunAsNonRoot = true,
                RunAsUser = _options.RunAsUser,
                RunAsGroup = _options.RunAsUser,
                ReadOnlyRootFilesystem = true,
                AllowPrivilegeEscalation = false,
                Privileged = false,
                Capabilities = new V1Capabilities { Drop = ["ALL"], Add = ["NET_ADMIN"] },
                SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
            },
            // The application starts only once the tunnel is up: a native sidecar's startup probe gates the next
            // containers; a plain container's post-start hook does (the kubelet starts containers in order).
            StartupProbe = new V1Probe
            {
                HttpGet = new V1HTTPGetAction { Path = "/readyz", Port = health },
                PeriodSeconds = 1,
                FailureThreshold = 120,
            },
            LivenessProbe = new V1Probe
            {
                HttpGet = new V1HTTPGetAction { Path = "/healthz", Port = health },
                PeriodSeconds = 10,
                FailureThreshold = 3,
            },
        };
        if (form == SidecarForm.Container)
        {
            container.Lifecycle = new V1Lifecycle
            {
                PostStart = new V1LifecycleHandler
                {
                    Exec = new V1ExecAction { Command = ["/app/cloudvpn-sidecar", "--wait-ready", "--http", $"127.0.0.1:{_options.HealthPort.ToString(CultureInfo.InvariantCulture)}"] },
                },
            };
        }

        return container;
    }

    private static List<IPNetwork> ParseRoutes(string value)
    {
        var list = new List<IPNetwork>();
        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!IPNetwork.TryParse(part, out var network))
            {
                throw new InjectionException($"annotation {InjectionAnnotations.Routes}: '{part}' is not a CIDR (for example 10.20.0.0/16)");
            }

            list.Add(network);
        }

        return list;
    }

    private static void MergeList(Dictionary<string, string> annotations, string key, IEnumerable<string> values)
    {
        var existing = annotations.TryGetValue(key, out var v)
            ? v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList()
            : [];
        foreach (var value in values)
        {
            if (!existing.Contains(value, StringComparer.OrdinalIgnoreCase))
            {
                existing.Add(value);
            }
        }

        annotations[key] = string.Join(",", existing);
    }

    private static V1Pod Clone(V1Pod pod) => KubernetesJson.Deserialize<V1Pod>(KubernetesJson.Serialize(pod));
}
