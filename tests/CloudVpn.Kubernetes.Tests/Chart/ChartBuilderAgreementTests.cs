using System.Text.Json.Nodes;
using CloudVpn.Kubernetes.Manifests;
using k8s;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>
/// The chart and the C# builders agree for the same settings: the same kinds and names, and every object equal field
/// by field (security contexts, ports, probes, policies, RBAC rules, config) once both went through the typed models.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ChartBuilderAgreementTests
{
    public static TheoryData<string, string> Matrix => ValueSets.Matrix();

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Chart_and_builders_render_the_same_objects(string set, string kubeVersion)
    {
        HelmChart.RequireHelm();
        var settings = ValueSets.Get(set);
        using var dir = new TempDir();
        var values = HelmChart.WriteValues(dir, set, settings.ToHelmValues());
        var (exit, stdout, stderr) = HelmChart.Template([values], kubeVersion, ValueSets.ApiVersionsFor(set), ns: settings.Namespace);
        Assert.True(exit == 0, stderr);
        var chart = StrictManifest.Load(stdout).ToDictionary(o => o.Key, o => o);

        // the same cluster as helm was told about: its version and the custom resource APIs it serves
        var cluster = new ClusterCapabilities(KubernetesVersion.Parse(kubeVersion), ValueSets.ApiVersionsFor(set));
        var built = GatewayManifestBuilder.Build(settings, cluster).ToDictionary(o => $"{o.Kind}/{o.Metadata.Name}", o => o);

        Assert.Equal(chart.Keys.Order(StringComparer.Ordinal), built.Keys.Order(StringComparer.Ordinal));
        // the custom resources and the dashboard are among them exactly where the chart's conditions hold
        Assert.Equal(cluster.ServesMonitoring && settings.Service.Headless, built.ContainsKey($"ServiceMonitor/{settings.Name}"));
        Assert.Equal(cluster.ServesMonitoring, built.ContainsKey($"PrometheusRule/{settings.Name}"));
        Assert.Equal(settings.Keys.Source == GatewayKeySource.ExternalSecret, built.ContainsKey($"ExternalSecret/{settings.Name}-keys"));
        Assert.True(built.ContainsKey($"ConfigMap/{settings.Name}-dashboard"));
        foreach (var (key, fromChart) in chart)
        {
            var fromBuilder = JsonNode.Parse(KubernetesJson.Serialize(built[key]))!;
            Assert.Equal(settings.Namespace, fromBuilder["metadata"]!["namespace"]?.GetValue<string>());
            // helm template leaves the namespace to the install; the builder sets it.
            fromBuilder["metadata"]!.AsObject().Remove("namespace");
            Assert.True(
                JsonNode.DeepEquals(fromChart.Json, fromBuilder),
                $"{key} differs:\nchart:   {fromChart.Json.ToJsonString()}\nbuilder: {fromBuilder.ToJsonString()}");
        }
    }

    [Fact]
    public void Builders_reject_bad_settings_naming_each_value()
    {
        var settings = ValueSets.Get("defaults") with
        {
            Driver = "ipsec",
            PublicEndpoint = "203.0.113.1",
            Addresses = ["10.200.0.1/33"],
            Keys = new GatewayKeySettings { Source = GatewayKeySource.Vault },
            Replicas = 1,
        };
        var ex = Assert.Throws<ArgumentException>(() => GatewayManifestBuilder.Build(settings, KubernetesVersion.Current));
        foreach (var named in new[] { "driver", "server.publicEndpoint", "server.addresses[0]", "keys.vault.address", "keys.vault.role", "keys.vault.path", "podDisruptionBudget.minAvailable" })
        {
            Assert.Contains(named, ex.Message, StringComparison.Ordinal);
        }
    }
}
