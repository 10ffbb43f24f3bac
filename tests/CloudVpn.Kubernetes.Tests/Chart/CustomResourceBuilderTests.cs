using CloudVpn.Kubernetes.CustomResources;
using CloudVpn.Kubernetes.Manifests;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>The custom resource models, the chart files the builder embeds, and the builder's conditions for both.</summary>
public sealed class CustomResourceBuilderTests
{
    private static readonly ClusterCapabilities AllApis = new(KubernetesVersion.Current, [ServiceMonitor.GroupVersion, ExternalSecret.GroupVersion]);

    [Fact]
    public void The_dashboard_and_the_rules_are_the_charts_own_files()
    {
        var files = Path.Combine(HelmChart.ChartDirectory, "files");
        var dashboard = Assert.Single(ChartFiles.Dashboards);
        Assert.Equal("cloudvpn-gateway-dashboard.json", dashboard.Key);
        Assert.Equal(File.ReadAllText(Path.Combine(files, dashboard.Key)), dashboard.Value);

        var rules = Assert.Single(ChartFiles.RuleFiles);
        Assert.Equal(File.ReadAllText(Path.Combine(files, rules.Key)), rules.Value);
        var group = Assert.Single(ChartFiles.RuleGroups);
        Assert.Equal("cloudvpn-gateway", group.Name);
        Assert.Equal(["CloudVpnActivePeersDropped", "CloudVpnHandshakeFailureRateHigh", "CloudVpnStaleHandshake", "CloudVpnGatewayNotReady"], group.Rules!.Select(r => r.Alert));
        Assert.Equal("critical", group.Rules!.Single(r => r.Alert == "CloudVpnGatewayNotReady").Labels!["severity"]);
    }

    [Fact]
    public void Rules_files_parse_strictly_and_name_the_file()
    {
        var ok = ChartFiles.ParseRuleGroups([new("a-rules.yaml", "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n"), new("b-rules.yaml", "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nspec:\n  groups:\n    - name: h\n      rules: []\n")]);
        Assert.Equal(["g", "h"], ok.Select(g => g.Name));
        Assert.Equal("up", ok[0].Rules!.Single().Expr);

        var unknown = Assert.Throws<InvalidDataException>(() => ChartFiles.ParseRuleGroups([new("x-rules.yaml", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        fro: 5m\n")]));
        Assert.Contains("x-rules.yaml", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("fro", unknown.Message, StringComparison.Ordinal);
        var noExpr = Assert.Throws<InvalidDataException>(() => ChartFiles.ParseRuleGroups([new("y-rules.yaml", "groups:\n  - name: g\n    rules:\n      - alert: A\n")]));
        Assert.Contains("expr", noExpr.Message, StringComparison.Ordinal);
        var broken = Assert.Throws<InvalidDataException>(() => ChartFiles.ParseRuleGroups([new("z-rules.yaml", "groups: [\n")]));
        Assert.Contains("z-rules.yaml", broken.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_models_refuse_unknown_and_missing_fields_and_round_trip()
    {
        const string es = """{"apiVersion":"external-secrets.io/v1beta1","kind":"ExternalSecret","metadata":{"name":"k"},"spec":{"secretStoreRef":{"name":"s","kind":"SecretStore"},"target":{"name":"t"},"dataFrom":[{"extract":{"key":"vpn/gw"}}]}}""";
        var typed = KubernetesJson.Deserialize<ExternalSecret>(es);
        Assert.Equal("vpn/gw", typed.Spec.DataFrom!.Single().Extract!.Key);
        Assert.Equal(es, KubernetesJson.Serialize(typed));

        var unknown = Assert.ThrowsAny<System.Text.Json.JsonException>(() => KubernetesJson.Deserialize<ExternalSecret>(es.Replace("\"extract\"", "\"extrakt\"", StringComparison.Ordinal)));
        Assert.Contains("extrakt", unknown.Message, StringComparison.Ordinal);
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KubernetesJson.Deserialize<ExternalSecret>(es.Replace("\"key\":\"vpn/gw\"", "\"property\":\"p\"", StringComparison.Ordinal)));
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KubernetesJson.Deserialize<ServiceMonitor>("""{"apiVersion":"monitoring.coreos.com/v1","kind":"ServiceMonitor","metadata":{"name":"m"},"spec":{"selector":{},"endpoints":[{"port":"http","intervall":"30s"}]}}"""));
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KubernetesJson.Deserialize<PrometheusRule>("""{"apiVersion":"monitoring.coreos.com/v1","kind":"PrometheusRule","metadata":{"name":"r"},"spec":{"groups":[{"name":"g","rules":[{"alert":"A","expr":"up"}]}],"extra":1}}"""));
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KubernetesJson.Deserialize<SecretStore>("""{"apiVersion":"external-secrets.io/v1beta1","kind":"SecretStore","metadata":{"name":"s"},"spec":{"provider":{"vault":{"server":"https://v:8200","auth":{"kubernetes":{"mountPath":"kubernetes","role":"r","secretRef":{}}}}}}}"""));

        // the constants are what the API server and helm's .Capabilities.APIVersions use
        Assert.Equal("monitoring.coreos.com/v1", new ServiceMonitor { Spec = new ServiceMonitorSpec { Selector = new V1LabelSelector() } }.ApiVersion);
        Assert.Equal(("external-secrets.io", "v1beta1", "SecretStore", "secretstores"), (SecretStore.KubeGroup, SecretStore.KubeApiVersion, SecretStore.KubeKind, SecretStore.KubePluralName));
    }

    [Fact]
    public void Monitoring_objects_follow_the_served_apis_and_the_settings()
    {
        var settings = ValueSets.Get("defaults");
        string[] Kinds(GatewayDeploymentSettings s, ClusterCapabilities c) => [.. GatewayManifestBuilder.Build(s, c).Select(o => $"{o.Kind}/{o.Metadata.Name}").Where(k => k.Contains("Monitor", StringComparison.Ordinal) || k.Contains("Rule", StringComparison.Ordinal) || k.EndsWith("-dashboard", StringComparison.Ordinal))];

        Assert.Equal(["ConfigMap/vpn-gateway-dashboard"], Kinds(settings, new ClusterCapabilities(KubernetesVersion.Current)));
        Assert.Equal(["ServiceMonitor/vpn-gateway", "PrometheusRule/vpn-gateway", "ConfigMap/vpn-gateway-dashboard"], Kinds(settings, AllApis));
        var off = settings with { Monitoring = new GatewayMonitoringSettings { ServiceMonitorEnabled = false, PrometheusRuleEnabled = false, DashboardEnabled = false } };
        Assert.Empty(Kinds(off, AllApis));
        Assert.Equal(["PrometheusRule/vpn-gateway", "ConfigMap/vpn-gateway-dashboard"], Kinds(settings with { Service = new GatewayServiceSettings { Headless = false } }, AllApis));

        var monitor = GatewayManifestBuilder.Build(ValueSets.Get("monitoring"), AllApis).OfType<ServiceMonitor>().Single();
        Assert.Equal("kube-prometheus-stack", monitor.Metadata.Labels["release"]);
        Assert.Equal(GatewayManifestBuilder.GatewaySelector(settings), monitor.Spec.Selector.MatchLabels);
        Assert.Equal(["vpn"], monitor.Spec.NamespaceSelector!.MatchNames);
        Assert.Equal("15s", monitor.Spec.Endpoints!.Single().Interval);
    }

    [Fact]
    public void An_external_secret_key_source_needs_the_api_and_fills_the_key_secret()
    {
        var settings = ValueSets.Get("externalSecret");
        var refused = Assert.Throws<ArgumentException>(() => GatewayManifestBuilder.Build(settings, KubernetesVersion.Current));
        Assert.Contains("keys.source is externalSecret but the cluster does not serve external-secrets.io/v1beta1", refused.Message, StringComparison.Ordinal);

        var objects = GatewayManifestBuilder.Build(settings, AllApis);
        var es = objects.OfType<ExternalSecret>().Single();
        Assert.Equal("vpn-gateway-keys", es.Metadata.Name);
        Assert.Equal("vpn", es.Metadata.NamespaceProperty);
        Assert.Equal(("vault-backend", "SecretStore"), (es.Spec.SecretStoreRef.Name, es.Spec.SecretStoreRef.Kind));
        Assert.Equal("vpn/gateway", es.Spec.DataFrom!.Single().Extract!.Key);
        // the Secret it writes is the one the gateway's Role names, and the chart creates no Secret of its own
        var role = objects.OfType<V1Role>().Single(r => r.Metadata.Name == "vpn-gateway");
        Assert.Equal([es.Spec.Target.Name!], role.Rules.Single().ResourceNames);
        Assert.DoesNotContain(objects, o => o is V1Secret);
    }

    [Fact]
    public void Bad_monitoring_settings_are_named()
    {
        var settings = ValueSets.Get("defaults") with
        {
            Monitoring = new GatewayMonitoringSettings
            {
                ServiceMonitorInterval = "30 seconds",
                DashboardLabels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "x" },
            },
        };
        var ex = Assert.Throws<ArgumentException>(() => GatewayManifestBuilder.Build(settings, AllApis));
        Assert.Contains("monitoring.serviceMonitor.interval: '30 seconds'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("monitoring.dashboard.labels: 'app.kubernetes.io/name'", ex.Message, StringComparison.Ordinal);
    }
}
