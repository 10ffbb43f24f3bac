using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CloudVpn.Kubernetes.CustomResources;
using CloudVpn.Policy;
using CloudVpn.Scaling;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Manifests;

/// <summary>
/// Builds the gateway's Kubernetes objects with the typed KubernetesClient models: the same objects the Helm chart
/// <c>deploy/helm/cloudvpn-gateway</c> renders for the same settings (a controller creates them through the API).
/// The custom resources the chart renders where their API is served (ServiceMonitor and PrometheusRule of
/// <c>monitoring.coreos.com/v1</c>, ExternalSecret of <c>external-secrets.io/v1beta1</c>) are built as the typed models of
/// <see cref="CustomResources"/>, on the same condition (<see cref="ClusterCapabilities"/>); the Grafana dashboard
/// ConfigMap and the PrometheusRule's groups come from the chart's own files (<see cref="ChartFiles"/>).
/// </summary>
public static partial class GatewayManifestBuilder
{
    /// <summary>The chart's name, the <c>app.kubernetes.io/name</c> label of every object.</summary>
    public const string AppName = "cloudvpn-gateway";

    /// <summary>Chart version and app version the labels carry.</summary>
    public const string ChartVersion = "0.1.0";

    private const int NonRootUser = 65532;

    /// <summary>
    /// Builds every object for a cluster of <paramref name="version"/> that serves no custom resource API (no
    /// ServiceMonitor or PrometheusRule; an ExternalSecret key source is refused, as by the chart); throws an
    /// <see cref="ArgumentException"/> naming each invalid setting.
    /// </summary>
    public static IReadOnlyList<IKubernetesObject<V1ObjectMeta>> Build(GatewayDeploymentSettings settings, KubernetesVersion version) =>
        Build(settings, new ClusterCapabilities(version));

    /// <summary>
    /// Builds every object the chart renders for <paramref name="settings"/> on a cluster with
    /// <paramref name="cluster"/>'s version and APIs (<see cref="ClusterCapabilities.DiscoverAsync"/> reads them); throws an
    /// <see cref="ArgumentException"/> naming each invalid setting.
    /// </summary>
    public static IReadOnlyList<IKubernetesObject<V1ObjectMeta>> Build(GatewayDeploymentSettings settings, ClusterCapabilities cluster)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(cluster);
        var errors = new List<string>(Validate(settings));
        if (settings.Keys.Source == GatewayKeySource.ExternalSecret && !cluster.ServesExternalSecrets)
        {
            errors.Add($"keys.source is externalSecret but the cluster does not serve {ExternalSecret.GroupVersion} (install External Secrets Operator first)");
        }

        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid gateway settings: {string.Join("; ", errors)}", nameof(settings));
        }

        var b = new Context(settings, cluster.Version);
        var objects = new List<IKubernetesObject<V1ObjectMeta>>();
        objects.Add(b.ConfigMap());
        if (settings.Keys.Source == GatewayKeySource.ExistingSecret && settings.Keys.ExistingSecretName is null)
        {
            objects.Add(b.KeySecret());
        }

        objects.AddRange(b.Rbac());
        objects.Add(b.Deployment());
        objects.AddRange(b.Services());
        if (settings.Autoscaling is not null)
        {
            objects.Add(b.Autoscaler());
        }

        if (settings.PodDisruptionBudgetMinAvailable is not null)
        {
            objects.Add(b.DisruptionBudget());
        }

        objects.AddRange(b.NetworkPolicies());
        if (b.RotationEnabled)
        {
            objects.Add(b.RotationCronJob());
        }

        if (settings.Keys.Source == GatewayKeySource.ExternalSecret)
        {
            objects.Add(b.KeyExternalSecret());
        }

        var monitoring = settings.Monitoring;
        if (monitoring.ServiceMonitorEnabled && cluster.ServesMonitoring && settings.Service.Headless)
        {
            objects.Add(b.ServiceMonitor());
        }

        if (monitoring.PrometheusRuleEnabled && cluster.ServesMonitoring && ChartFiles.RuleGroups.Count > 0)
        {
            objects.Add(b.PrometheusRule());
        }

        if (monitoring.DashboardEnabled && ChartFiles.Dashboards.Count > 0)
        {
            objects.Add(b.DashboardConfigMap());
        }

        return objects;
    }

    /// <summary>
    /// The gateway's namespace with its Pod Security Admission labels: <c>enforce: privileged</c>, because the gateway
    /// adds NET_ADMIN and sets net.ipv4.ip_forward (neither is admitted by baseline), with <c>warn</c> and <c>audit</c> at
    /// baseline so that every other deviation stays visible. Label it before installing the chart.
    /// </summary>
    public static V1Namespace PodSecurityNamespace(string name)
    {
        if (!AccessPolicyValidation.IsDnsLabel(name))
        {
            throw new ArgumentException($"namespace: '{name}' is not a DNS label", nameof(name));
        }

        return new V1Namespace
        {
            ApiVersion = "v1",
            Kind = "Namespace",
            Metadata = new V1ObjectMeta
            {
                Name = name,
                Labels = new Dictionary<string, string>
                {
                    ["pod-security.kubernetes.io/enforce"] = "privileged",
                    ["pod-security.kubernetes.io/warn"] = "baseline",
                    ["pod-security.kubernetes.io/audit"] = "baseline",
                },
            },
        };
    }

    /// <summary>Lists every invalid setting by its chart value name; empty when valid.</summary>
    public static IReadOnlyList<string> Validate(GatewayDeploymentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var errors = new List<string>();
        if (!AccessPolicyValidation.IsDnsLabel(settings.Name) || settings.Name.Length > 50)
        {
            errors.Add($"fullnameOverride: '{settings.Name}' is not a DNS label of at most 50 characters");
        }

        if (!AccessPolicyValidation.IsDnsLabel(settings.Namespace))
        {
            errors.Add($"namespace: '{settings.Namespace}' is not a DNS label");
        }

        if (settings.Driver is not ("wireguard" or "openvpn"))
        {
            errors.Add($"driver: '{settings.Driver}' is not wireguard or openvpn");
        }

        var endpoint = Endpoint().Match(settings.PublicEndpoint ?? "");
        if (!endpoint.Success || !int.TryParse(endpoint.Groups["port"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            errors.Add($"server.publicEndpoint: '{settings.PublicEndpoint}' is not host:port with a port in 1..65535");
        }

        if (settings.ListenPort is < 1 or > 65535)
        {
            errors.Add($"server.listenPort: {settings.ListenPort} is outside 1..65535");
        }

        if (settings.Protocol is not ("UDP" or "TCP"))
        {
            errors.Add($"server.protocol: '{settings.Protocol}' is not UDP or TCP");
        }
        else if (settings.Driver == "wireguard" && settings.Protocol != "UDP")
        {
            errors.Add($"server.protocol: WireGuard runs over UDP only, got \"{settings.Protocol}\" (driver: wireguard)");
        }

        if (settings.Addresses.Count == 0)
        {
            errors.Add("server.addresses: at least one tunnel address is needed");
        }

        CheckCidrs(settings.Addresses, "server.addresses", errors, allowHostBits: true);
        CheckCidrs(settings.Routes, "server.routes", errors, allowHostBits: false);
        CheckCidrs(settings.Service.LoadBalancerSourceRanges, "service.loadBalancerSourceRanges", errors, allowHostBits: false);
        if (settings.Mtu is < 1280 or > 9000)
        {
            errors.Add($"server.mtu: {settings.Mtu} is outside 1280..9000");
        }

        if (settings.HttpPort is < 1 or > 65535)
        {
            errors.Add($"httpPort: {settings.HttpPort} is outside 1..65535");
        }

        if (settings.Replicas < 1)
        {
            errors.Add($"replicaCount: {settings.Replicas} must be at least 1");
        }

        if (settings.Autoscaling is not null)
        {
            errors.AddRange(settings.Autoscaling.Validate().Select(e => $"autoscaling.{e}"));
        }

        var floor = settings.Autoscaling?.MinReplicas ?? settings.Replicas;
        if (settings.PodDisruptionBudgetMinAvailable is { } minAvailable && minAvailable >= floor)
        {
            errors.Add($"podDisruptionBudget.minAvailable ({minAvailable}) must be below the replica count ({floor}): otherwise no node running the gateway can be drained");
        }

        if (settings.Service.Type is not ("LoadBalancer" or "NodePort" or "ClusterIP"))
        {
            errors.Add($"service.type: '{settings.Service.Type}' is not LoadBalancer, NodePort or ClusterIP");
        }

        if (settings.Service.NodePort is not null && settings.Service.Type == "ClusterIP")
        {
            errors.Add("service.nodePort is set but service.type is ClusterIP");
        }

        var keys = settings.Keys;
        if (keys.Source == GatewayKeySource.Vault)
        {
            if (string.IsNullOrEmpty(keys.VaultAddress))
            {
                errors.Add("keys.vault.address is required when keys.source is vault");
            }

            if (string.IsNullOrEmpty(keys.VaultRole))
            {
                errors.Add("keys.vault.role is required when keys.source is vault");
            }

            if (string.IsNullOrEmpty(keys.VaultPath))
            {
                errors.Add("keys.vault.path is required when keys.source is vault");
            }
        }

        if (keys.Source == GatewayKeySource.ExternalSecret)
        {
            if (string.IsNullOrEmpty(keys.ExternalSecretStore))
            {
                errors.Add("keys.externalSecret.secretStoreRef.name is required when keys.source is externalSecret");
            }

            if (string.IsNullOrEmpty(keys.ExternalSecretRemoteKey))
            {
                errors.Add("keys.externalSecret.remoteKey is required when keys.source is externalSecret");
            }
        }

        errors.AddRange(AccessPolicyValidation.Validate(AccessPolicyOf(settings)).Select(e => $"accessPolicy.{e}"));
        var monitoring = settings.Monitoring;
        if (!MonitoringInterval().IsMatch(monitoring.ServiceMonitorInterval ?? ""))
        {
            errors.Add($"monitoring.serviceMonitor.interval: '{monitoring.ServiceMonitorInterval}' is not a number of seconds or minutes (30s, 1m)");
        }

        CheckExtraLabels(monitoring.ServiceMonitorLabels, "monitoring.serviceMonitor.labels", errors);
        CheckExtraLabels(monitoring.PrometheusRuleLabels, "monitoring.prometheusRule.labels", errors);
        CheckExtraLabels(monitoring.DashboardLabels, "monitoring.dashboard.labels", errors);
        return errors;
    }

    /// <summary>The access policy of the deployment, as the policy emitter takes it.</summary>
    public static AccessPolicy AccessPolicyOf(GatewayDeploymentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new AccessPolicy(settings.Name, settings.Namespace, GatewaySelector(settings), settings.Access.Sources, settings.Access.Destinations)
        {
            TunnelPort = new TunnelPort(settings.ListenPort, settings.Protocol),
            ClientRanges = settings.Access.ClientRanges,
            DefaultDeny = settings.Access.DefaultDeny,
        };
    }

    /// <summary>Labels selecting the gateway pods.</summary>
    public static Dictionary<string, string> GatewaySelector(GatewayDeploymentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new() { ["app.kubernetes.io/name"] = AppName, ["app.kubernetes.io/instance"] = settings.Name, ["app.kubernetes.io/component"] = "gateway" };
    }

    /// <summary>The gateway's configuration file (gateway.yaml); it holds no key material.</summary>
    public static string ConfigFile(GatewayDeploymentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var s = settings;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"driver: {s.Driver}\n");
        sb.Append(CultureInfo.InvariantCulture, $"publicEndpoint: {Quote(s.PublicEndpoint)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"listenPort: {s.ListenPort}\n");
        sb.Append(CultureInfo.InvariantCulture, $"protocol: {s.Protocol}\n");
        sb.Append(CultureInfo.InvariantCulture, $"addresses: {Json(s.Addresses)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"mtu: {s.Mtu}\n");
        sb.Append(CultureInfo.InvariantCulture, $"routes: {Json(s.Routes)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"http: {Quote($"0.0.0.0:{s.HttpPort}")}\n");
        sb.Append("keys:\n");
        sb.Append(CultureInfo.InvariantCulture, $"  source: {SourceName(s.Keys.Source)}\n");
        if (s.Keys.Source == GatewayKeySource.Vault)
        {
            sb.Append("  vault:\n");
            sb.Append(CultureInfo.InvariantCulture, $"    address: {Quote(s.Keys.VaultAddress ?? "")}\n");
            sb.Append(CultureInfo.InvariantCulture, $"    role: {Quote(s.Keys.VaultRole ?? "")}\n");
            sb.Append(CultureInfo.InvariantCulture, $"    path: {Quote(s.Keys.VaultPath ?? "")}\n");
            sb.Append(CultureInfo.InvariantCulture, $"    authMountPath: {Quote(s.Keys.VaultAuthMountPath)}\n");
        }
        else
        {
            sb.Append(CultureInfo.InvariantCulture, $"  secretName: {Quote(KeySecretName(s))}\n");
            sb.Append("  kubernetesStore:\n");
            sb.Append("    namePrefix: \"\"\n");
            sb.Append(CultureInfo.InvariantCulture, $"    storeLabel: {Quote(KeyStoreLabel(s))}\n");
            sb.Append(CultureInfo.InvariantCulture, $"    keyId: {Quote(KeySecretName(s))}\n");
        }

        sb.Append(CultureInfo.InvariantCulture, $"  rotationOverlap: {Quote(s.Keys.RotationOverlap)}\n");
        sb.Append("accessPolicy:\n");
        sb.Append(CultureInfo.InvariantCulture, $"  clientRanges: {Json(s.Access.ClientRanges.Select(c => c.ToString()))}\n");
        var destinations = s.Access.Destinations.Select(d => new SortedDictionary<string, object>(StringComparer.Ordinal)
        {
            ["cidr"] = d.Cidr.ToString(),
            ["ports"] = d.Ports.Select(p => new SortedDictionary<string, object>(StringComparer.Ordinal) { ["port"] = p.Port, ["protocol"] = p.Protocol }).ToList(),
        });
        sb.Append(CultureInfo.InvariantCulture, $"  destinations: {Json(destinations)}");
        return sb.ToString();
    }

    /// <summary>
    /// The <c>cloudvpn.io/key-store</c> label of the key Secret: the gateway's name. With it, the Kubernetes Secret key
    /// store (<c>NamePrefix</c> "", <c>StoreLabel</c> this, key id <see cref="KeySecretName"/>) reads the Secret the
    /// rotation job writes through the same store; two gateways in one namespace never see each other's keys.
    /// </summary>
    public static string KeyStoreLabel(GatewayDeploymentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Name;
    }

    /// <summary>Name of the Secret holding the keys (existingSecret and externalSecret sources).</summary>
    public static string KeySecretName(GatewayDeploymentSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Keys is { Source: GatewayKeySource.ExistingSecret, ExistingSecretName: { Length: > 0 } name } ? name : $"{settings.Name}-keys";
    }

    private static string SourceName(GatewayKeySource source) => source switch
    {
        GatewayKeySource.Vault => "vault",
        GatewayKeySource.ExternalSecret => "externalSecret",
        _ => "existingSecret",
    };

    private static void CheckCidrs(IReadOnlyList<string> values, string field, List<string> errors, bool allowHostBits)
    {
        for (var i = 0; i < values.Count; i++)
        {
            var value = values[i];
            var slash = value.IndexOf('/', StringComparison.Ordinal);
            var ok = slash > 0
                && System.Net.IPAddress.TryParse(value.AsSpan(0, slash), out var address)
                && int.TryParse(value.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
                && length <= (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)
                && (allowHostBits || System.Net.IPNetwork.TryParse(value, out _));
            if (!ok)
            {
                errors.Add($"{field}[{i}]: '{value}' is not a CIDR prefix");
            }
        }
    }

    // Extra labels go next to the chart's own labels; one of the same key would be a duplicate key in the chart's YAML.
    private static void CheckExtraLabels(IReadOnlyDictionary<string, string> labels, string field, List<string> errors)
    {
        foreach (var key in labels.Keys.Order(StringComparer.Ordinal))
        {
            if (key.StartsWith("app.kubernetes.io/", StringComparison.Ordinal) || key == "helm.sh/chart")
            {
                errors.Add($"{field}: '{key}' is one of the labels the chart sets itself");
            }
        }
    }

    private static string Quote(string value) => JsonSerializer.Serialize(value);

    private static string Json<T>(IEnumerable<T> values) => JsonSerializer.Serialize(values.ToList());

    [GeneratedRegex(@"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(?<port>[0-9]{1,5})$", RegexOptions.CultureInvariant)]
    private static partial Regex Endpoint();

    [GeneratedRegex("^[0-9]+(s|m)$", RegexOptions.CultureInvariant)]
    private static partial Regex MonitoringInterval();

    private sealed class Context(GatewayDeploymentSettings s, KubernetesVersion version)
    {
        private string Name => s.Name;

        private string Image => $"{s.ImageRepository}:{s.ImageTag}";

        public bool RotationEnabled => s.Keys.RotationEnabled && s.Keys.Source != GatewayKeySource.ExternalSecret;

        private Dictionary<string, string> SelectorLabels() => new() { ["app.kubernetes.io/name"] = AppName, ["app.kubernetes.io/instance"] = Name };

        private Dictionary<string, string> Labels(string? component)
        {
            var labels = SelectorLabels();
            labels["app.kubernetes.io/version"] = ChartVersion;
            labels["app.kubernetes.io/managed-by"] = "Helm";
            labels["helm.sh/chart"] = $"{AppName}-{ChartVersion}";
            if (component is not null)
            {
                labels["app.kubernetes.io/component"] = component;
            }

            return labels;
        }

        private V1ObjectMeta Meta(string name, string? component) => new() { Name = name, NamespaceProperty = s.Namespace, Labels = Labels(component) };

        public V1ConfigMap ConfigMap() => new()
        {
            ApiVersion = "v1",
            Kind = "ConfigMap",
            Metadata = Meta(Name, "gateway"),
            Data = new Dictionary<string, string> { ["gateway.yaml"] = ConfigFile(s) + "\n" },
        };

        /// <summary>The empty key Secret in the key store's layout (see <see cref="KeyStoreLabel"/>).</summary>
        public V1Secret KeySecret()
        {
            var metadata = Meta(KeySecretName(s), "gateway");
            metadata.Labels[KeyStores.KubernetesSecretKeyStore.StoreLabelName] = KeyStoreLabel(s);
            metadata.Annotations = new Dictionary<string, string> { [KeyStores.KubernetesSecretKeyStore.KeyIdAnnotation] = KeySecretName(s) };
            return new V1Secret
            {
                ApiVersion = "v1",
                Kind = "Secret",
                Metadata = metadata,
                Type = KeyStores.KubernetesSecretKeyStore.SecretType,
            };
        }

        public IEnumerable<IKubernetesObject<V1ObjectMeta>> Rbac()
        {
            yield return new V1ServiceAccount { ApiVersion = "v1", Kind = "ServiceAccount", Metadata = Meta(Name, "gateway"), AutomountServiceAccountToken = false };
            if (s.Keys.Source != GatewayKeySource.Vault)
            {
                yield return SecretRole(Name, "gateway", ["get", "list", "watch"]);
                yield return Binding(Name, "gateway");
            }

            if (RotationEnabled)
            {
                yield return new V1ServiceAccount { ApiVersion = "v1", Kind = "ServiceAccount", Metadata = Meta($"{Name}-rotation", "key-rotation"), AutomountServiceAccountToken = false };
                if (s.Keys.Source == GatewayKeySource.ExistingSecret)
                {
                    yield return SecretRole($"{Name}-rotation", "key-rotation", ["get", "update", "patch"]);
                    yield return Binding($"{Name}-rotation", "key-rotation");
                }
            }
        }

        private V1Role SecretRole(string name, string component, List<string> verbs) => new()
        {
            ApiVersion = "rbac.authorization.k8s.io/v1",
            Kind = "Role",
            Metadata = Meta(name, component),
            Rules = [new V1PolicyRule { ApiGroups = [""], Resources = ["secrets"], ResourceNames = [KeySecretName(s)], Verbs = verbs }],
        };

        private V1RoleBinding Binding(string name, string component) => new()
        {
            ApiVersion = "rbac.authorization.k8s.io/v1",
            Kind = "RoleBinding",
            Metadata = Meta(name, component),
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = name },
            Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = name, NamespaceProperty = s.Namespace }],
        };

        private static V1SecurityContext ContainerSecurity(bool netAdmin) => new()
        {
            RunAsNonRoot = true,
            ReadOnlyRootFilesystem = true,
            AllowPrivilegeEscalation = false,
            Privileged = false,
            Capabilities = new V1Capabilities { Drop = ["ALL"], Add = netAdmin ? ["NET_ADMIN"] : null },
            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
        };

        private static V1Probe HttpProbe(string path, int period, int failures) => new()
        {
            HttpGet = new V1HTTPGetAction { Path = path, Port = "http" },
            PeriodSeconds = period,
            FailureThreshold = failures,
        };

        private V1ResourceRequirements GatewayResources()
        {
            var requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(s.Resources.CpuRequest), ["memory"] = new(s.Resources.MemoryRequest) };
            var limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(s.Resources.CpuLimit), ["memory"] = new(s.Resources.MemoryLimit) };
            if (!string.IsNullOrEmpty(s.TunDeviceResource))
            {
                requests[s.TunDeviceResource] = new("1");
                limits[s.TunDeviceResource] = new("1");
            }

            return new V1ResourceRequirements { Requests = requests, Limits = limits };
        }

        public V1Deployment Deployment()
        {
            var selector = GatewaySelector(s);
            var pod = new V1PodSpec
            {
                ServiceAccountName = Name,
                AutomountServiceAccountToken = true,
                EnableServiceLinks = false,
                TerminationGracePeriodSeconds = 30,
                SecurityContext = new V1PodSecurityContext
                {
                    RunAsNonRoot = true,
                    RunAsUser = NonRootUser,
                    RunAsGroup = NonRootUser,
                    FsGroup = NonRootUser,
                    SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                    Sysctls = s.Sysctls.Count == 0 ? null : [.. s.Sysctls.Select(x => new V1Sysctl { Name = x.Key, Value = x.Value })],
                },
                Tolerations = s.Tolerations.Count == 0 ? null : [.. s.Tolerations.Select(t => new V1Toleration { Key = t.Key, OperatorProperty = t.Operator, Value = t.Value, Effect = t.Effect })],
                Containers =
                [
                    new V1Container
                    {
                        Name = "gateway",
                        Image = Image,
                        ImagePullPolicy = s.ImagePullPolicy,
                        Args =
                        [
                            $"--driver={s.Driver}",
                            $"--public-endpoint={s.PublicEndpoint}",
                            $"--listen-port={s.ListenPort.ToString(CultureInfo.InvariantCulture)}",
                            $"--address={s.Addresses[0]}",
                            $"--http=0.0.0.0:{s.HttpPort.ToString(CultureInfo.InvariantCulture)}",
                            "--data-dir=/var/lib/cloudvpn",
                            $"--Gateway:Mtu={s.Mtu.ToString(CultureInfo.InvariantCulture)}",
                        ],
                        Env =
                        [
                            new V1EnvVar { Name = "CLOUDVPN_POD_NAME", ValueFrom = new V1EnvVarSource { FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.name" } } },
                            new V1EnvVar { Name = "CLOUDVPN_POD_NAMESPACE", ValueFrom = new V1EnvVarSource { FieldRef = new V1ObjectFieldSelector { FieldPath = "metadata.namespace" } } },
                        ],
                        Ports =
                        [
                            new V1ContainerPort { Name = "tunnel", ContainerPort = s.ListenPort, Protocol = s.Protocol },
                            new V1ContainerPort { Name = "http", ContainerPort = s.HttpPort, Protocol = "TCP" },
                        ],
                        StartupProbe = HttpProbe("/healthz", 2, 30),
                        ReadinessProbe = HttpProbe("/readyz", 5, 2),
                        LivenessProbe = HttpProbe("/healthz", 10, 3),
                        Resources = GatewayResources(),
                        SecurityContext = ContainerSecurity(netAdmin: true),
                        VolumeMounts =
                        [
                            new V1VolumeMount { Name = "config", MountPath = "/etc/cloudvpn", ReadOnlyProperty = true },
                            new V1VolumeMount { Name = "data", MountPath = "/var/lib/cloudvpn" },
                            new V1VolumeMount { Name = "tmp", MountPath = "/tmp" },
                        ],
                    },
                ],
                Volumes =
                [
                    new V1Volume { Name = "config", ConfigMap = new V1ConfigMapVolumeSource { Name = Name } },
                    new V1Volume { Name = "data", EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = new ResourceQuantity("16Mi") } },
                    new V1Volume { Name = "tmp", EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity("16Mi") } },
                ],
            };
            if (s.NodeAffinity is { } na)
            {
                var term = new V1NodeSelectorTerm { MatchExpressions = [new V1NodeSelectorRequirement { Key = na.Key, OperatorProperty = "In", Values = [.. na.Values] }] };
                pod.Affinity = new V1Affinity
                {
                    NodeAffinity = na.Required
                        ? new V1NodeAffinity { RequiredDuringSchedulingIgnoredDuringExecution = new V1NodeSelector { NodeSelectorTerms = [term] } }
                        : new V1NodeAffinity { PreferredDuringSchedulingIgnoredDuringExecution = [new V1PreferredSchedulingTerm { Weight = 100, Preference = term }] },
                };
            }

            if (s.TopologySpread is { } ts)
            {
                pod.TopologySpreadConstraints =
                [
                    new V1TopologySpreadConstraint
                    {
                        MaxSkew = ts.MaxSkew, TopologyKey = ts.TopologyKey, WhenUnsatisfiable = ts.WhenUnsatisfiable,
                        LabelSelector = new V1LabelSelector { MatchLabels = GatewaySelector(s) },
                    },
                ];
            }

            return new V1Deployment
            {
                ApiVersion = "apps/v1",
                Kind = "Deployment",
                Metadata = Meta(Name, "gateway"),
                Spec = new V1DeploymentSpec
                {
                    Replicas = s.Autoscaling is null ? s.Replicas : null,
                    RevisionHistoryLimit = 5,
                    Selector = new V1LabelSelector { MatchLabels = selector },
                    Strategy = new V1DeploymentStrategy
                    {
                        Type = "RollingUpdate",
                        RollingUpdate = new V1RollingUpdateDeployment { MaxUnavailable = 0, MaxSurge = 1 },
                    },
                    Template = new V1PodTemplateSpec
                    {
                        Metadata = new V1ObjectMeta
                        {
                            Labels = selector,
                            Annotations = new Dictionary<string, string> { ["checksum/config"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ConfigFile(s)))) },
                        },
                        Spec = pod,
                    },
                },
            };
        }

        public IEnumerable<V1Service> Services()
        {
            var annotations = new Dictionary<string, string>(s.Service.Annotations);
            if (!string.IsNullOrEmpty(s.Service.ExternalDnsHostname))
            {
                annotations["external-dns.alpha.kubernetes.io/hostname"] = s.Service.ExternalDnsHostname;
                annotations["external-dns.alpha.kubernetes.io/ttl"] = s.Service.ExternalDnsTtl.ToString(CultureInfo.InvariantCulture);
            }

            var publicMeta = Meta(Name, "gateway");
            publicMeta.Annotations = annotations.Count == 0 ? null : annotations;
            var clusterIp = s.Service.Type == "ClusterIP";
            yield return new V1Service
            {
                ApiVersion = "v1",
                Kind = "Service",
                Metadata = publicMeta,
                Spec = new V1ServiceSpec
                {
                    Type = s.Service.Type,
                    ExternalTrafficPolicy = clusterIp ? null : s.Service.ExternalTrafficPolicy,
                    LoadBalancerSourceRanges = s.Service.Type == "LoadBalancer" && s.Service.LoadBalancerSourceRanges.Count > 0 ? [.. s.Service.LoadBalancerSourceRanges] : null,
                    Selector = GatewaySelector(s),
                    Ports = [new V1ServicePort { Name = "tunnel", Port = s.ListenPort, TargetPort = "tunnel", Protocol = s.Protocol, NodePort = clusterIp ? null : s.Service.NodePort }],
                },
            };
            if (s.Service.Headless)
            {
                yield return new V1Service
                {
                    ApiVersion = "v1",
                    Kind = "Service",
                    Metadata = Meta($"{Name}-headless", "gateway"),
                    Spec = new V1ServiceSpec
                    {
                        ClusterIP = "None",
                        PublishNotReadyAddresses = false,
                        Selector = GatewaySelector(s),
                        Ports =
                        [
                            new V1ServicePort { Name = "tunnel", Port = s.ListenPort, TargetPort = "tunnel", Protocol = s.Protocol },
                            new V1ServicePort { Name = "http", Port = s.HttpPort, TargetPort = "http", Protocol = "TCP" },
                        ],
                    },
                };
            }
        }

        public V2HorizontalPodAutoscaler Autoscaler()
        {
            var strategy = new ConnectionScalingStrategy(s.Autoscaling!, legacyAutoscalingApi: !version.AtLeast(1, 23));
            var hpa = (V2HorizontalPodAutoscaler)strategy.DescribeAutoscaler(new AutoscalerTarget(Name, s.Namespace, "Deployment", Name)).PlatformObjects[0];
            hpa.Metadata = Meta(Name, "gateway");
            return hpa;
        }

        public V1PodDisruptionBudget DisruptionBudget() => new()
        {
            ApiVersion = version.PodDisruptionBudgetApiVersion,
            Kind = "PodDisruptionBudget",
            Metadata = Meta(Name, "gateway"),
            Spec = new V1PodDisruptionBudgetSpec { MinAvailable = s.PodDisruptionBudgetMinAvailable!.Value, Selector = new V1LabelSelector { MatchLabels = GatewaySelector(s) } },
        };

        public IEnumerable<V1NetworkPolicy> NetworkPolicies()
        {
            var emission = new KubernetesPolicyEmitter().Emit(AccessPolicyOf(s));
            foreach (var policy in emission.PlatformObjects.Cast<V1NetworkPolicy>())
            {
                policy.Metadata.Labels = Labels(policy.Metadata.Name == $"{Name}-gateway" ? "gateway" : null);
                yield return policy;
            }

            yield return new V1NetworkPolicy
            {
                ApiVersion = "networking.k8s.io/v1",
                Kind = "NetworkPolicy",
                Metadata = Meta($"{Name}-metrics", "gateway"),
                Spec = new V1NetworkPolicySpec
                {
                    PodSelector = new V1LabelSelector { MatchLabels = GatewaySelector(s) },
                    PolicyTypes = ["Ingress"],
                    Ingress =
                    [
                        new V1NetworkPolicyIngressRule
                        {
                            FromProperty = [new V1NetworkPolicyPeer { NamespaceSelector = KubernetesPolicyEmitter.Selector(s.Access.MetricsNamespaceSelector) }],
                            Ports = [new V1NetworkPolicyPort { Port = s.HttpPort, Protocol = "TCP" }],
                        },
                    ],
                },
            };
            if (s.Access.DefaultDeny && s.Access.ControlPlanePorts.Count > 0)
            {
                yield return new V1NetworkPolicy
                {
                    ApiVersion = "networking.k8s.io/v1",
                    Kind = "NetworkPolicy",
                    Metadata = Meta($"{Name}-control-plane", null),
                    Spec = new V1NetworkPolicySpec
                    {
                        PodSelector = new V1LabelSelector { MatchLabels = SelectorLabels() },
                        PolicyTypes = ["Egress"],
                        Egress =
                        [
                            new V1NetworkPolicyEgressRule { Ports = [.. s.Access.ControlPlanePorts.Select(p => new V1NetworkPolicyPort { Port = p, Protocol = "TCP" })] },
                            KubernetesPolicyEmitter.ClusterDnsRule(),
                        ],
                    },
                };
            }
        }

        private V1ObjectMeta MetaWithExtraLabels(string name, IReadOnlyDictionary<string, string> extra)
        {
            var meta = Meta(name, "gateway");
            foreach (var (key, value) in extra)
            {
                meta.Labels[key] = value;
            }

            return meta;
        }

        public ExternalSecret KeyExternalSecret() => new()
        {
            Metadata = Meta($"{Name}-keys", "gateway"),
            Spec = new ExternalSecretSpec
            {
                RefreshInterval = s.Keys.ExternalSecretRefreshInterval,
                SecretStoreRef = new ExternalSecretStoreRef { Name = s.Keys.ExternalSecretStore!, Kind = s.Keys.ExternalSecretStoreKind },
                // the Secret the operator writes has the key store's layout (type, store label, key-id annotation), so
                // the gateway's store reads it; the data keys are the remote key's properties v1, v2, ... (base64)
                Target = new ExternalSecretTarget
                {
                    Name = KeySecretName(s),
                    CreationPolicy = "Owner",
                    Template = new ExternalSecretTargetTemplate
                    {
                        Type = KeyStores.KubernetesSecretKeyStore.SecretType,
                        Metadata = new ExternalSecretTemplateMetadata
                        {
                            Labels = new Dictionary<string, string> { [KeyStores.KubernetesSecretKeyStore.StoreLabelName] = KeyStoreLabel(s) },
                            Annotations = new Dictionary<string, string> { [KeyStores.KubernetesSecretKeyStore.KeyIdAnnotation] = KeySecretName(s) },
                        },
                    },
                },
                DataFrom = [new ExternalSecretDataFromSource { Extract = new ExternalSecretDataRemoteRef { Key = s.Keys.ExternalSecretRemoteKey!, DecodingStrategy = "Base64" } }],
            },
        };

        public ServiceMonitor ServiceMonitor() => new()
        {
            Metadata = MetaWithExtraLabels(Name, s.Monitoring.ServiceMonitorLabels),
            Spec = new ServiceMonitorSpec
            {
                Selector = new V1LabelSelector { MatchLabels = GatewaySelector(s) },
                NamespaceSelector = new ServiceMonitorNamespaceSelector { MatchNames = [s.Namespace] },
                Endpoints = [new ServiceMonitorEndpoint { Port = "http", Path = "/metrics", Interval = s.Monitoring.ServiceMonitorInterval }],
            },
        };

        public PrometheusRule PrometheusRule() => new()
        {
            Metadata = MetaWithExtraLabels(Name, s.Monitoring.PrometheusRuleLabels),
            Spec = new PrometheusRuleSpec { Groups = [.. ChartFiles.RuleGroups] },
        };

        public V1ConfigMap DashboardConfigMap() => new()
        {
            ApiVersion = "v1",
            Kind = "ConfigMap",
            Metadata = MetaWithExtraLabels($"{Name}-dashboard", s.Monitoring.DashboardLabels),
            Data = ChartFiles.Dashboards.ToDictionary(f => f.Key, f => f.Value, StringComparer.Ordinal),
        };

        public V1CronJob RotationCronJob()
        {
            var r = s.Keys.RotationResources;
            var selector = SelectorLabels();
            selector["app.kubernetes.io/component"] = "key-rotation";
            return new V1CronJob
            {
                ApiVersion = version.CronJobApiVersion,
                Kind = "CronJob",
                Metadata = Meta($"{Name}-key-rotation", "key-rotation"),
                Spec = new V1CronJobSpec
                {
                    Schedule = s.Keys.RotationSchedule,
                    ConcurrencyPolicy = "Forbid",
                    StartingDeadlineSeconds = 3600,
                    SuccessfulJobsHistoryLimit = 3,
                    FailedJobsHistoryLimit = 3,
                    JobTemplate = new V1JobTemplateSpec
                    {
                        Spec = new V1JobSpec
                        {
                            BackoffLimit = 3,
                            ActiveDeadlineSeconds = 600,
                            Template = new V1PodTemplateSpec
                            {
                                Metadata = new V1ObjectMeta { Labels = selector },
                                Spec = new V1PodSpec
                                {
                                    ServiceAccountName = $"{Name}-rotation",
                                    AutomountServiceAccountToken = true,
                                    EnableServiceLinks = false,
                                    RestartPolicy = "Never",
                                    SecurityContext = new V1PodSecurityContext
                                    {
                                        RunAsNonRoot = true, RunAsUser = NonRootUser, RunAsGroup = NonRootUser,
                                        SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                                    },
                                    Containers =
                                    [
                                        new V1Container
                                        {
                                            Name = "rotate",
                                            Image = Image,
                                            ImagePullPolicy = s.ImagePullPolicy,
                                            Args = ["rotate-keys", "--config", "/etc/cloudvpn/gateway.yaml"],
                                            Resources = new V1ResourceRequirements
                                            {
                                                Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(r.CpuRequest), ["memory"] = new(r.MemoryRequest) },
                                                Limits = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(r.CpuLimit), ["memory"] = new(r.MemoryLimit) },
                                            },
                                            SecurityContext = ContainerSecurity(netAdmin: false),
                                            VolumeMounts =
                                            [
                                                new V1VolumeMount { Name = "config", MountPath = "/etc/cloudvpn", ReadOnlyProperty = true },
                                                new V1VolumeMount { Name = "tmp", MountPath = "/tmp" },
                                            ],
                                        },
                                    ],
                                    Volumes =
                                    [
                                        new V1Volume { Name = "config", ConfigMap = new V1ConfigMapVolumeSource { Name = Name } },
                                        new V1Volume { Name = "tmp", EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity("8Mi") } },
                                    ],
                                },
                            },
                        },
                    },
                },
            };
        }
    }
}
