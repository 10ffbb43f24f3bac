using System.Net;
using CloudVpn.Kubernetes.CustomResources;
using CloudVpn.Kubernetes.Manifests;
using CloudVpn.Policy;
using CloudVpn.Scaling;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>The deployments the chart and the builders are checked with.</summary>
internal static class ValueSets
{
    public const string Release = "vpn-gateway";
    public const string Namespace = "vpn";

    public static readonly string[] KubeVersions = ["1.20.0", "1.31.0"];

    public static GatewayDeploymentSettings Get(string name) => name switch
    {
        "defaults" => Base,
        "openvpn" => Base with
        {
            Driver = "openvpn",
            PublicEndpoint = "[2001:db8::1]:1194",
            ListenPort = 1194,
            Protocol = "TCP",
            Service = new GatewayServiceSettings { Type = "ClusterIP", Headless = false },
            PodDisruptionBudgetMinAvailable = null,
        },
        "autoscaling" => Base with
        {
            PublicEndpoint = "vpn.example.org:51820",
            Autoscaling = new ConnectionScalingOptions { MinReplicas = 3, MaxReplicas = 12, TargetActivePeersPerReplica = 150, TargetCpuUtilizationPercent = 60, ScaleDownStabilization = TimeSpan.FromMinutes(15) },
            Service = new GatewayServiceSettings
            {
                Type = "NodePort", NodePort = 31820, ExternalDnsHostname = "vpn.example.org", ExternalDnsTtl = 120,
            },
        },
        "vault" => Base with
        {
            Keys = new GatewayKeySettings { Source = GatewayKeySource.Vault, VaultAddress = "https://vault.example:8200", VaultRole = "vpn-gateway", VaultPath = "secret/data/vpn-gateway" },
        },
        "externalSecret" => Base with
        {
            Keys = new GatewayKeySettings { Source = GatewayKeySource.ExternalSecret, ExternalSecretStore = "vault-backend", ExternalSecretRemoteKey = "vpn/gateway" },
        },
        "nodeAffinity" => Base with
        {
            NodeAffinity = new NodeAffinitySettings("feature.node.kubernetes.io/network-sriov.capable", ["true"], Required: true),
            Tolerations = [new TolerationSettings("dedicated", "Equal", "vpn", "NoSchedule")],
            TunDeviceResource = "squat.ai/tun",
            Keys = new GatewayKeySettings { ExistingSecretName = "my-gateway-keys", RotationSchedule = "@daily" },
        },
        "accessPolicy" => Base with
        {
            Access = new GatewayAccessSettings
            {
                DefaultDeny = true,
                ClientRanges = [IPNetwork.Parse("198.51.100.0/24"), IPNetwork.Parse("2001:db8:100::/48")],
                Sources =
                [
                    new PolicySource(null, new Dictionary<string, string> { ["app"] = "billing" }),
                    new PolicySource(new Dictionary<string, string> { ["team"] = "data" }, new Dictionary<string, string> { ["app"] = "etl" }),
                    new PolicySource(new Dictionary<string, string>(), new Dictionary<string, string>()),
                ],
                Destinations =
                [
                    new PolicyDestination(IPNetwork.Parse("10.20.0.0/16"), [new TunnelPort(5432, "TCP"), new TunnelPort(443, "TCP")]),
                    new PolicyDestination(IPNetwork.Parse("192.0.2.0/24"), [new TunnelPort(443, "TCP"), new TunnelPort(53, "UDP")]),
                ],
                MetricsNamespaceSelector = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = "monitoring" },
            },
            Routes = ["10.20.0.0/16", "192.0.2.0/24"],
        },
        "allowAll" => Base with
        {
            Access = new GatewayAccessSettings
            {
                DefaultDeny = false,
                Sources = [new PolicySource(null, new Dictionary<string, string> { ["vpn"] = "yes" })],
                Destinations = [new PolicyDestination(IPNetwork.Parse("0.0.0.0/0"), [])],
                ControlPlanePorts = [],
            },
            Keys = new GatewayKeySettings { RotationEnabled = false },
        },
        "monitoring" => Base with
        {
            Monitoring = new GatewayMonitoringSettings
            {
                ServiceMonitorInterval = "15s",
                ServiceMonitorLabels = new Dictionary<string, string> { ["release"] = "kube-prometheus-stack" },
                PrometheusRuleLabels = new Dictionary<string, string> { ["release"] = "kube-prometheus-stack", ["role"] = "alert-rules" },
                DashboardLabels = new Dictionary<string, string> { ["grafana_dashboard"] = "1", ["grafana_folder"] = "vpn" },
            },
        },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    public static readonly string[] Names = ["defaults", "openvpn", "autoscaling", "vault", "externalSecret", "nodeAffinity", "accessPolicy", "allowAll", "monitoring"];

    public static TheoryData<string, string> Matrix()
    {
        var data = new TheoryData<string, string>();
        foreach (var n in Names)
        {
            foreach (var v in KubeVersions)
            {
                data.Add(n, v);
            }
        }

        return data;
    }

    /// <summary>
    /// API versions the cluster of a value set serves beyond the built-in ones: External Secrets where the set needs it,
    /// the Prometheus Operator's API for the sets that show the monitoring objects (openvpn: without the headless
    /// Service, so no ServiceMonitor); the other sets see a cluster without either.
    /// </summary>
    public static string[] ApiVersionsFor(string name) => name switch
    {
        "externalSecret" => [ExternalSecret.GroupVersion, ServiceMonitor.GroupVersion],
        "monitoring" or "openvpn" => [ServiceMonitor.GroupVersion],
        _ => [],
    };

    private static GatewayDeploymentSettings Base => new()
    {
        Name = Release,
        Namespace = Namespace,
        PublicEndpoint = HelmChart.PublicEndpoint,
    };
}
