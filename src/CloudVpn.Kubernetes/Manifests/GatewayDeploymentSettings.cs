using CloudVpn.Policy;

namespace CloudVpn.Kubernetes.Manifests;

/// <summary>
/// Everything the gateway's objects are built from: the C# twin of the chart's values (<see cref="ToHelmValues"/>
/// gives the values file for the same deployment).
/// </summary>
public sealed record GatewayDeploymentSettings
{
    /// <summary>Name of every object (the Helm release name); at most 50 characters.</summary>
    public required string Name { get; init; }

    /// <summary>Namespace of every object.</summary>
    public required string Namespace { get; init; }

    /// <summary>wireguard or openvpn.</summary>
    public string Driver { get; init; } = "wireguard";

    /// <summary>Container image repository.</summary>
    public string ImageRepository { get; init; } = "ghcr.io/cloudvpn/gateway";

    /// <summary>Image tag.</summary>
    public string ImageTag { get; init; } = "0.1.0";

    /// <summary>Image pull policy.</summary>
    public string ImagePullPolicy { get; init; } = "IfNotPresent";

    /// <summary>host:port clients dial.</summary>
    public required string PublicEndpoint { get; init; }

    /// <summary>Tunnel port in the pod.</summary>
    public int ListenPort { get; init; } = 51820;

    /// <summary>UDP or TCP (OpenVPN only).</summary>
    public string Protocol { get; init; } = "UDP";

    /// <summary>Gateway addresses on the tunnel (CIDR).</summary>
    public IReadOnlyList<string> Addresses { get; init; } = ["10.200.0.1/24"];

    /// <summary>Tunnel MTU.</summary>
    public int Mtu { get; init; } = 1380;

    /// <summary>Networks announced to clients.</summary>
    public IReadOnlyList<string> Routes { get; init; } = [];

    /// <summary>Port of /metrics, /healthz and /readyz.</summary>
    public int HttpPort { get; init; } = 9586;

    /// <summary>Where the keys come from.</summary>
    public GatewayKeySettings Keys { get; init; } = new();

    /// <summary>Replicas without autoscaling.</summary>
    public int Replicas { get; init; } = 2;

    /// <summary>Autoscaling; null: off.</summary>
    public Scaling.ConnectionScalingOptions? Autoscaling { get; init; }

    /// <summary>PodDisruptionBudget minAvailable; null: no PDB.</summary>
    public int? PodDisruptionBudgetMinAvailable { get; init; } = 1;

    /// <summary>Gateway container resources.</summary>
    public ContainerResources Resources { get; init; } = new("100m", "128Mi", "1", "256Mi");

    /// <summary>Node affinity for fast interfaces; null: none.</summary>
    public NodeAffinitySettings? NodeAffinity { get; init; }

    /// <summary>Tolerations (key, operator, value, effect).</summary>
    public IReadOnlyList<TolerationSettings> Tolerations { get; init; } = [];

    /// <summary>Topology spread; null: none.</summary>
    public TopologySpreadSettings? TopologySpread { get; init; } = new();

    /// <summary>Pod sysctls (name, value).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Sysctls { get; init; } = [new("net.ipv4.ip_forward", "1")];

    /// <summary>Extended resource of a TUN device plugin; null: none.</summary>
    public string? TunDeviceResource { get; init; }

    /// <summary>Public Service.</summary>
    public GatewayServiceSettings Service { get; init; } = new();

    /// <summary>The access policy (sources, destinations, client ranges, default deny).</summary>
    public GatewayAccessSettings Access { get; init; } = new();

    /// <summary>ServiceMonitor, PrometheusRule and the Grafana dashboard ConfigMap.</summary>
    public GatewayMonitoringSettings Monitoring { get; init; } = new();

    /// <summary>The values file (as a JSON-serializable tree) that makes the chart render the same objects.</summary>
    public Dictionary<string, object?> ToHelmValues()
    {
        var values = new Dictionary<string, object?>
        {
            ["fullnameOverride"] = Name,
            ["driver"] = Driver,
            ["image"] = new Dictionary<string, object?> { ["repository"] = ImageRepository, ["tag"] = ImageTag, ["pullPolicy"] = ImagePullPolicy },
            ["server"] = new Dictionary<string, object?>
            {
                ["publicEndpoint"] = PublicEndpoint, ["listenPort"] = ListenPort, ["protocol"] = Protocol,
                ["addresses"] = Addresses, ["mtu"] = Mtu, ["routes"] = Routes,
            },
            ["httpPort"] = HttpPort,
            ["keys"] = Keys.ToHelmValues(),
            ["replicaCount"] = Replicas,
            ["autoscaling"] = Autoscaling is null
                ? new Dictionary<string, object?> { ["enabled"] = false }
                : new Dictionary<string, object?>
                {
                    ["enabled"] = true, ["minReplicas"] = Autoscaling.MinReplicas, ["maxReplicas"] = Autoscaling.MaxReplicas,
                    ["targetActivePeersPerPod"] = Autoscaling.TargetActivePeersPerReplica,
                    ["activePeersMetric"] = Autoscaling.ActivePeersMetricName,
                    ["targetCPUUtilizationPercentage"] = Autoscaling.TargetCpuUtilizationPercent,
                    ["scaleDownStabilizationSeconds"] = (int)Autoscaling.ScaleDownStabilization.TotalSeconds,
                },
            ["podDisruptionBudget"] = new Dictionary<string, object?>
            {
                ["enabled"] = PodDisruptionBudgetMinAvailable is not null, ["minAvailable"] = PodDisruptionBudgetMinAvailable ?? 1,
            },
            ["resources"] = Resources.ToHelmValues(),
            ["nodeAffinity"] = NodeAffinity is null
                ? new Dictionary<string, object?> { ["enabled"] = false }
                : new Dictionary<string, object?> { ["enabled"] = true, ["mode"] = NodeAffinity.Required ? "required" : "preferred", ["key"] = NodeAffinity.Key, ["values"] = NodeAffinity.Values },
            ["tolerations"] = Tolerations.Select(t => t.ToHelmValues()).ToList(),
            ["topologySpread"] = TopologySpread is null
                ? new Dictionary<string, object?> { ["enabled"] = false }
                : new Dictionary<string, object?>
                {
                    ["enabled"] = true, ["maxSkew"] = TopologySpread.MaxSkew, ["topologyKey"] = TopologySpread.TopologyKey,
                    ["whenUnsatisfiable"] = TopologySpread.WhenUnsatisfiable,
                },
            ["sysctls"] = Sysctls.Select(s => new Dictionary<string, object?> { ["name"] = s.Key, ["value"] = s.Value }).ToList(),
            ["tunDeviceResource"] = TunDeviceResource ?? "",
            ["service"] = Service.ToHelmValues(),
            ["accessPolicy"] = Access.ToHelmValues(),
            ["monitoring"] = Monitoring.ToHelmValues(),
        };
        return values;
    }
}

/// <summary>Key source of the gateway.</summary>
public enum GatewayKeySource
{
    /// <summary>A Kubernetes Secret (created empty by the chart when no name is given).</summary>
    ExistingSecret,

    /// <summary>HashiCorp Vault with Kubernetes auth.</summary>
    Vault,

    /// <summary>An ExternalSecret (external-secrets.io) syncing into a Secret.</summary>
    ExternalSecret,
}

/// <summary>Keys: source, its parameters and rotation.</summary>
public sealed record GatewayKeySettings
{
    /// <summary>Where the keys live.</summary>
    public GatewayKeySource Source { get; init; } = GatewayKeySource.ExistingSecret;

    /// <summary>Name of an existing Secret; null: the chart's empty <c>&lt;name&gt;-keys</c>.</summary>
    public string? ExistingSecretName { get; init; }

    /// <summary>Vault address (https://...).</summary>
    public string? VaultAddress { get; init; }

    /// <summary>Vault Kubernetes auth role.</summary>
    public string? VaultRole { get; init; }

    /// <summary>KV path of the keys.</summary>
    public string? VaultPath { get; init; }

    /// <summary>Mount path of Vault's Kubernetes auth.</summary>
    public string VaultAuthMountPath { get; init; } = "kubernetes";

    /// <summary>SecretStore of the ExternalSecret.</summary>
    public string? ExternalSecretStore { get; init; }

    /// <summary>SecretStore or ClusterSecretStore.</summary>
    public string ExternalSecretStoreKind { get; init; } = "SecretStore";

    /// <summary>Remote key the ExternalSecret extracts.</summary>
    public string? ExternalSecretRemoteKey { get; init; }

    /// <summary>How often the ExternalSecret refreshes.</summary>
    public string ExternalSecretRefreshInterval { get; init; } = "1h";

    /// <summary>Rotation CronJob on.</summary>
    public bool RotationEnabled { get; init; } = true;

    /// <summary>Cron schedule of rotation.</summary>
    public string RotationSchedule { get; init; } = "0 3 * * 0";

    /// <summary>How long the previous key stays valid.</summary>
    public string RotationOverlap { get; init; } = "10m";

    /// <summary>Resources of the rotation container.</summary>
    public ContainerResources RotationResources { get; init; } = new("10m", "32Mi", "100m", "64Mi");

    internal Dictionary<string, object?> ToHelmValues() => new()
    {
        ["source"] = Source switch
        {
            GatewayKeySource.Vault => "vault",
            GatewayKeySource.ExternalSecret => "externalSecret",
            _ => "existingSecret",
        },
        ["existingSecret"] = new Dictionary<string, object?> { ["name"] = ExistingSecretName ?? "" },
        ["vault"] = new Dictionary<string, object?>
        {
            ["address"] = VaultAddress ?? "", ["role"] = VaultRole ?? "", ["path"] = VaultPath ?? "", ["authMountPath"] = VaultAuthMountPath,
        },
        ["externalSecret"] = new Dictionary<string, object?>
        {
            ["secretStoreRef"] = new Dictionary<string, object?> { ["name"] = ExternalSecretStore ?? "", ["kind"] = ExternalSecretStoreKind },
            ["remoteKey"] = ExternalSecretRemoteKey ?? "",
            ["refreshInterval"] = ExternalSecretRefreshInterval,
        },
        ["rotation"] = new Dictionary<string, object?>
        {
            ["enabled"] = RotationEnabled, ["schedule"] = RotationSchedule, ["overlap"] = RotationOverlap,
            ["resources"] = RotationResources.ToHelmValues(),
        },
    };
}

/// <summary>CPU and memory requests and limits (Kubernetes quantities).</summary>
public sealed record ContainerResources(string CpuRequest, string MemoryRequest, string CpuLimit, string MemoryLimit)
{
    internal Dictionary<string, object?> ToHelmValues() => new()
    {
        ["requests"] = new Dictionary<string, object?> { ["cpu"] = CpuRequest, ["memory"] = MemoryRequest },
        ["limits"] = new Dictionary<string, object?> { ["cpu"] = CpuLimit, ["memory"] = MemoryLimit },
    };
}

/// <summary>Node affinity for nodes with fast interfaces.</summary>
/// <param name="Key">Node label key.</param>
/// <param name="Values">Accepted label values.</param>
/// <param name="Required">Required (true) or preferred (false).</param>
public sealed record NodeAffinitySettings(string Key, IReadOnlyList<string> Values, bool Required = false);

/// <summary>A toleration.</summary>
public sealed record TolerationSettings(string Key, string Operator, string? Value, string Effect)
{
    internal Dictionary<string, object?> ToHelmValues()
    {
        var d = new Dictionary<string, object?> { ["key"] = Key, ["operator"] = Operator, ["effect"] = Effect };
        if (Value is not null)
        {
            d["value"] = Value;
        }

        return d;
    }
}

/// <summary>Topology spread of the gateway replicas.</summary>
public sealed record TopologySpreadSettings
{
    /// <summary>Largest allowed difference of replicas between domains.</summary>
    public int MaxSkew { get; init; } = 1;

    /// <summary>Node label of the domain.</summary>
    public string TopologyKey { get; init; } = "kubernetes.io/hostname";

    /// <summary>ScheduleAnyway or DoNotSchedule.</summary>
    public string WhenUnsatisfiable { get; init; } = "ScheduleAnyway";
}

/// <summary>The public Service and the headless one.</summary>
public sealed record GatewayServiceSettings
{
    /// <summary>LoadBalancer, NodePort or ClusterIP.</summary>
    public string Type { get; init; } = "LoadBalancer";

    /// <summary>Local or Cluster.</summary>
    public string ExternalTrafficPolicy { get; init; } = "Local";

    /// <summary>Source ranges of a LoadBalancer.</summary>
    public IReadOnlyList<string> LoadBalancerSourceRanges { get; init; } = [];

    /// <summary>Fixed node port; null: allocated.</summary>
    public int? NodePort { get; init; }

    /// <summary>Extra annotations.</summary>
    public IReadOnlyDictionary<string, string> Annotations { get; init; } = new Dictionary<string, string>();

    /// <summary>Hostname ExternalDNS publishes; null: none.</summary>
    public string? ExternalDnsHostname { get; init; }

    /// <summary>TTL of the ExternalDNS record in seconds.</summary>
    public int ExternalDnsTtl { get; init; } = 60;

    /// <summary>Headless Service for client-side balancing.</summary>
    public bool Headless { get; init; } = true;

    internal Dictionary<string, object?> ToHelmValues() => new()
    {
        ["type"] = Type,
        ["externalTrafficPolicy"] = ExternalTrafficPolicy,
        ["loadBalancerSourceRanges"] = LoadBalancerSourceRanges,
        ["nodePort"] = NodePort,
        ["annotations"] = Annotations,
        ["externalDns"] = new Dictionary<string, object?> { ["hostname"] = ExternalDnsHostname ?? "", ["ttl"] = ExternalDnsTtl },
        ["headless"] = new Dictionary<string, object?> { ["enabled"] = Headless },
    };
}

/// <summary>The access policy in chart terms; the NetworkPolicies come from <see cref="KubernetesPolicyEmitter"/>.</summary>
public sealed record GatewayAccessSettings
{
    /// <summary>Default deny in the gateway's namespace.</summary>
    public bool DefaultDeny { get; init; } = true;

    /// <summary>VPN client ranges allowed to the tunnel port; empty: anyone.</summary>
    public IReadOnlyList<System.Net.IPNetwork> ClientRanges { get; init; } = [];

    /// <summary>Pods that may use the gateway.</summary>
    public IReadOnlyList<PolicySource> Sources { get; init; } = [];

    /// <summary>Networks reachable through it.</summary>
    public IReadOnlyList<PolicyDestination> Destinations { get; init; } = [];

    /// <summary>API server / Vault ports reachable under default deny.</summary>
    public IReadOnlyList<int> ControlPlanePorts { get; init; } = [443, 6443];

    /// <summary>Namespaces allowed to scrape metrics; empty: all.</summary>
    public IReadOnlyDictionary<string, string> MetricsNamespaceSelector { get; init; } = new Dictionary<string, string>();

    internal Dictionary<string, object?> ToHelmValues() => new()
    {
        ["defaultDeny"] = DefaultDeny,
        ["clientRanges"] = ClientRanges.Select(c => c.ToString()).ToList(),
        ["sources"] = Sources.Select(s =>
        {
            var d = new Dictionary<string, object?> { ["podSelector"] = s.PodSelector };
            if (s.NamespaceSelector is not null)
            {
                d["namespaceSelector"] = s.NamespaceSelector;
            }

            return d;
        }).ToList(),
        ["destinations"] = Destinations.Select(d => new Dictionary<string, object?>
        {
            ["cidr"] = d.Cidr.ToString(),
            ["ports"] = d.Ports.Select(p => new Dictionary<string, object?> { ["port"] = p.Port, ["protocol"] = p.Protocol }).ToList(),
        }).ToList(),
        ["controlPlanePorts"] = ControlPlanePorts,
        ["metricsNamespaceSelector"] = MetricsNamespaceSelector,
    };
}

/// <summary>
/// Monitoring objects: a ServiceMonitor and a PrometheusRule (built only where the cluster serves
/// <c>monitoring.coreos.com/v1</c>, see <see cref="ClusterCapabilities"/>) and the ConfigMap of the Grafana dashboard
/// (label <c>grafana_dashboard</c>, for the Grafana dashboard sidecar). Rules and dashboard are the chart's own files
/// (<c>deploy/helm/cloudvpn-gateway/files</c>).
/// </summary>
public sealed record GatewayMonitoringSettings
{
    /// <summary>ServiceMonitor on the headless Service's http port (needs <see cref="GatewayServiceSettings.Headless"/>).</summary>
    public bool ServiceMonitorEnabled { get; init; } = true;

    /// <summary>Scrape interval of the ServiceMonitor.</summary>
    public string ServiceMonitorInterval { get; init; } = "30s";

    /// <summary>Extra labels of the ServiceMonitor (for the Prometheus' serviceMonitorSelector).</summary>
    public IReadOnlyDictionary<string, string> ServiceMonitorLabels { get; init; } = new Dictionary<string, string>();

    /// <summary>PrometheusRule with the chart's alert rules.</summary>
    public bool PrometheusRuleEnabled { get; init; } = true;

    /// <summary>Extra labels of the PrometheusRule (for the Prometheus' ruleSelector).</summary>
    public IReadOnlyDictionary<string, string> PrometheusRuleLabels { get; init; } = new Dictionary<string, string>();

    /// <summary>ConfigMap with the Grafana dashboard.</summary>
    public bool DashboardEnabled { get; init; } = true;

    /// <summary>Labels of the dashboard ConfigMap (the Grafana sidecar selects on them).</summary>
    public IReadOnlyDictionary<string, string> DashboardLabels { get; init; } = new Dictionary<string, string> { ["grafana_dashboard"] = "1" };

    internal Dictionary<string, object?> ToHelmValues() => new()
    {
        ["serviceMonitor"] = new Dictionary<string, object?> { ["enabled"] = ServiceMonitorEnabled, ["interval"] = ServiceMonitorInterval, ["labels"] = ServiceMonitorLabels },
        ["prometheusRule"] = new Dictionary<string, object?> { ["enabled"] = PrometheusRuleEnabled, ["labels"] = PrometheusRuleLabels },
        ["dashboard"] = new Dictionary<string, object?> { ["enabled"] = DashboardEnabled, ["labels"] = DashboardLabels },
    };
}
