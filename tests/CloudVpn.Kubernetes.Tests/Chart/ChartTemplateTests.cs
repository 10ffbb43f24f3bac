using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>helm lint and helm template with the real helm over several value sets, for Kubernetes 1.20 and a current one.</summary>
[Trait("Category", "Integration")]
public sealed class ChartTemplateTests
{
    public static TheoryData<string, string> Matrix => ValueSets.Matrix();

    private static List<RenderedObject> Render(string set, string kubeVersion, IEnumerable<string>? extraApis = null, string? chart = null)
    {
        HelmChart.RequireHelm();
        using var dir = new TempDir();
        var values = HelmChart.WriteValues(dir, set, ValueSets.Get(set).ToHelmValues());
        var (exit, stdout, stderr) = HelmChart.Template([values], kubeVersion, ValueSets.ApiVersionsFor(set).Concat(extraApis ?? []), chartDirectory: chart);
        Assert.True(exit == 0, $"helm template {set} --kube-version {kubeVersion} failed: {stderr}");
        return StrictManifest.Load(stdout);
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Lint_passes(string set, string kubeVersion)
    {
        HelmChart.RequireHelm();
        using var dir = new TempDir();
        var values = HelmChart.WriteValues(dir, set, ValueSets.Get(set).ToHelmValues());
        var (exit, stdout, stderr) = HelmChart.Helm($"lint {HelmChart.ChartDirectory} --strict -f {values} --kube-version {kubeVersion}");
        if (ValueSets.ApiVersionsFor(set).Contains(CustomResources.ExternalSecret.GroupVersion))
        {
            // helm lint cannot be told about custom APIs and reports a template's fail() as information: the chart
            // must say clearly that the ExternalSecret API is missing rather than render an object the cluster rejects.
            Assert.Contains("does not serve external-secrets.io/v1beta1", stdout + stderr, StringComparison.Ordinal);
        }

        Assert.True(exit == 0, $"helm lint {set}: {stdout}{stderr}");
        Assert.Contains("0 chart(s) failed", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Every_object_deserializes_strictly_and_passes_the_security_checks(string set, string kubeVersion)
    {
        var objects = Render(set, kubeVersion);
        Assert.NotEmpty(objects);
        Assert.Equal(objects.Count, objects.Select(o => o.Key).Distinct().Count());
        var problems = ManifestChecks.Check(objects);
        Assert.True(problems.Count == 0, string.Join("\n", problems));

        // the objects every value set must have
        Assert.Contains(objects, o => o is { Kind: "Deployment", Name: ValueSets.Release });
        Assert.Contains(objects, o => o is { Kind: "Service", Name: ValueSets.Release });
        Assert.Contains(objects, o => o is { Kind: "ServiceAccount", Name: ValueSets.Release });
        Assert.Contains(objects, o => o is { Kind: "NetworkPolicy", Name: $"{ValueSets.Release}-gateway" });
    }

    [Theory]
    [InlineData("1.20.0", "autoscaling/v2beta2", "batch/v1beta1", "policy/v1beta1")]
    [InlineData("1.22.0", "autoscaling/v2beta2", "batch/v1", "policy/v1")]
    [InlineData("1.31.0", "autoscaling/v2", "batch/v1", "policy/v1")]
    public void Api_versions_fall_back_to_what_the_cluster_serves(string kubeVersion, string hpa, string cronJob, string pdb)
    {
        var objects = Render("autoscaling", kubeVersion);
        Assert.Equal(hpa, objects.Single(o => o.Kind == "HorizontalPodAutoscaler").ApiVersion);
        Assert.Equal(cronJob, objects.Single(o => o.Kind == "CronJob").ApiVersion);
        Assert.Equal(pdb, objects.Single(o => o.Kind == "PodDisruptionBudget").ApiVersion);
    }

    [Fact]
    public void The_one_command_install_renders_with_chart_defaults()
    {
        HelmChart.RequireHelm();
        var (exit, stdout, stderr) = HelmChart.Template([], "1.20.0", sets: [$"server.publicEndpoint={HelmChart.PublicEndpoint}"]);
        Assert.True(exit == 0, stderr);
        var objects = StrictManifest.Load(stdout);
        Assert.Empty(ManifestChecks.Check(objects));
        var deployment = (V1Deployment)objects.Single(o => o.Kind == "Deployment").Typed;
        Assert.Equal(2, deployment.Spec.Replicas);
        Assert.Equal("0", deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);
        var container = deployment.Spec.Template.Spec.Containers.Single();
        Assert.Equal("/readyz", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal(["NET_ADMIN"], container.SecurityContext.Capabilities.Add);
        Assert.Equal("net.ipv4.ip_forward", deployment.Spec.Template.Spec.SecurityContext.Sysctls.Single().Name);
        Assert.Null(deployment.Spec.Template.Spec.Affinity); // node affinity is off by default
        var config = (V1ConfigMap)objects.Single(o => o is { Kind: "ConfigMap", Name: "vpn-gateway" }).Typed;
        Assert.Contains("publicEndpoint: \"203.0.113.1:51820\"", config.Data["gateway.yaml"], StringComparison.Ordinal);
        Assert.DoesNotContain(objects, o => o.Kind == "HorizontalPodAutoscaler");
        Assert.Contains(objects, o => o is { Kind: "Service", Name: "vpn-gateway-headless" });
        Assert.Contains(objects, o => o is { Kind: "CronJob", Name: "vpn-gateway-key-rotation" });
        Assert.Contains(objects, o => o is { Kind: "NetworkPolicy", Name: "vpn-gateway-default-deny" });
        // monitoring objects only where their API is served
        Assert.DoesNotContain(objects, o => StrictManifest.CustomKinds.Contains(o.Kind));
    }

    [Fact]
    public void Autoscaler_scales_on_active_peers_and_cpu_with_scale_down_stabilisation()
    {
        var objects = Render("autoscaling", "1.31.0");
        var hpa = (V2HorizontalPodAutoscaler)objects.Single(o => o.Kind == "HorizontalPodAutoscaler").Typed;
        Assert.Equal(3, hpa.Spec.MinReplicas);
        Assert.Equal(12, hpa.Spec.MaxReplicas);
        Assert.Equal("cloudvpn_active_peers", hpa.Spec.Metrics[0].Pods.Metric.Name);
        Assert.Equal("150", hpa.Spec.Metrics[0].Pods.Target.AverageValue.ToString());
        Assert.Equal("cpu", hpa.Spec.Metrics[1].Resource.Name);
        Assert.Equal(900, hpa.Spec.Behavior.ScaleDown.StabilizationWindowSeconds);
        // the Deployment leaves the replica count to the HPA
        Assert.Null(((V1Deployment)objects.Single(o => o.Kind == "Deployment").Typed).Spec.Replicas);
        var service = (V1Service)objects.Single(o => o is { Kind: "Service", Name: "vpn-gateway" }).Typed;
        Assert.Equal("vpn.example.org", service.Metadata.Annotations["external-dns.alpha.kubernetes.io/hostname"]);
        Assert.Equal("120", service.Metadata.Annotations["external-dns.alpha.kubernetes.io/ttl"]);
        Assert.Equal(31820, service.Spec.Ports.Single().NodePort);
    }

    [Fact]
    public void Key_sources_change_rbac_and_objects()
    {
        var vault = Render("vault", "1.31.0");
        Assert.DoesNotContain(vault, o => o.Kind is "Role" && o.Name == ValueSets.Release); // nothing to read from the API
        Assert.DoesNotContain(vault, o => o.Kind == "Secret");
        Assert.Contains("vault:", ((V1ConfigMap)vault.Single(o => o is { Kind: "ConfigMap", Name: ValueSets.Release }).Typed).Data["gateway.yaml"], StringComparison.Ordinal);

        var external = Render("externalSecret", "1.31.0");
        var es = external.Single(o => o.Kind == "ExternalSecret");
        Assert.Equal("vpn-gateway-keys", es.Json["spec"]!["target"]!["name"]!.GetValue<string>());
        // the Secret the operator writes has the key store's layout, matching the store settings in the config
        var template = es.Json["spec"]!["target"]!["template"]!;
        Assert.Equal(CloudVpn.Kubernetes.KeyStores.KubernetesSecretKeyStore.SecretType, template["type"]!.GetValue<string>());
        Assert.Equal("vpn-gateway", template["metadata"]!["labels"]![CloudVpn.Kubernetes.KeyStores.KubernetesSecretKeyStore.StoreLabelName]!.GetValue<string>());
        Assert.Equal("vpn-gateway-keys", template["metadata"]!["annotations"]![CloudVpn.Kubernetes.KeyStores.KubernetesSecretKeyStore.KeyIdAnnotation]!.GetValue<string>());
        Assert.Equal("Base64", es.Json["spec"]!["dataFrom"]![0]!["extract"]!["decodingStrategy"]!.GetValue<string>());
        var externalConfig = ((V1ConfigMap)external.Single(o => o is { Kind: "ConfigMap", Name: ValueSets.Release }).Typed).Data["gateway.yaml"];
        Assert.Contains("storeLabel: \"vpn-gateway\"", externalConfig, StringComparison.Ordinal);
        Assert.Contains("keyId: \"vpn-gateway-keys\"", externalConfig, StringComparison.Ordinal);
        Assert.DoesNotContain(external, o => o.Kind == "CronJob"); // the external store rotates
        var role = (V1Role)external.Single(o => o is { Kind: "Role", Name: "vpn-gateway" }).Typed;
        Assert.Equal(["vpn-gateway-keys"], role.Rules.Single().ResourceNames);

        var existing = Render("nodeAffinity", "1.31.0");
        Assert.DoesNotContain(existing, o => o.Kind == "Secret"); // the user's Secret, not the chart's
        var existingConfig = ((V1ConfigMap)existing.Single(o => o is { Kind: "ConfigMap", Name: ValueSets.Release }).Typed).Data["gateway.yaml"];
        Assert.Contains("keyId: \"my-gateway-keys\"", existingConfig, StringComparison.Ordinal); // the store reads the user's Secret by its name
        var rotationRole = (V1Role)existing.Single(o => o is { Kind: "Role", Name: "vpn-gateway-rotation" }).Typed;
        Assert.Equal(["my-gateway-keys"], rotationRole.Rules.Single().ResourceNames);
        Assert.Equal(["get", "update", "patch"], rotationRole.Rules.Single().Verbs);
        var pod = ((V1Deployment)existing.Single(o => o.Kind == "Deployment").Typed).Spec.Template.Spec;
        Assert.Equal("feature.node.kubernetes.io/network-sriov.capable", pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Key);
        Assert.Equal("1", pod.Containers[0].Resources.Limits["squat.ai/tun"].ToString());
    }

    [Fact]
    public void Monitoring_objects_render_only_where_their_api_is_served_and_their_files_exist()
    {
        HelmChart.RequireHelm();
        using var dir = new TempDir();
        var chart = Path.Combine(dir.Path, "cloudvpn-gateway");
        CopyDirectory(HelmChart.ChartDirectory, chart);
        var rulesFile = Path.Combine(chart, "files", "prometheus-rules.yaml");
        var dashboardFile = Path.Combine(chart, "files", "grafana-dashboard.json");
        foreach (var file in Directory.Exists(Path.Combine(chart, "files")) ? Directory.GetFiles(Path.Combine(chart, "files")) : [])
        {
            File.Delete(file);
        }

        var withoutFiles = Render("defaults", "1.31.0", ["monitoring.coreos.com/v1"], chart);
        Assert.Contains(withoutFiles, o => o.Kind == "ServiceMonitor");
        Assert.DoesNotContain(withoutFiles, o => o.Kind == "PrometheusRule");
        Assert.DoesNotContain(withoutFiles, o => o.Name == "vpn-gateway-dashboard");

        Directory.CreateDirectory(Path.GetDirectoryName(rulesFile)!);
        File.WriteAllText(rulesFile, "groups:\n  - name: cloudvpn\n    rules:\n      - alert: CloudVpnGatewayNotReady\n        expr: cloudvpn_up == 0\n        for: 5m\n        annotations:\n          summary: \"{{ $labels.pod }} is not ready\"\n");
        File.WriteAllText(dashboardFile, "{\"title\": \"CloudVpn\", \"panels\": [{\"expr\": \"sum(cloudvpn_active_peers{pod=~\\\"$pod\\\"}) > 0 && 1 < 2\"}]}\n");
        var withFiles = Render("defaults", "1.31.0", ["monitoring.coreos.com/v1"], chart);
        var rule = withFiles.Single(o => o.Kind == "PrometheusRule");
        Assert.Equal("CloudVpnGatewayNotReady", rule.Json["spec"]!["groups"]![0]!["rules"]![0]!["alert"]!.GetValue<string>());
        var dashboard = (V1ConfigMap)withFiles.Single(o => o.Name == "vpn-gateway-dashboard").Typed;
        Assert.Equal("1", dashboard.Metadata.Labels["grafana_dashboard"]);
        Assert.Equal(File.ReadAllText(dashboardFile), dashboard.Data["grafana-dashboard.json"]); // verbatim
        Assert.Equal("{{ $labels.pod }} is not ready", rule.Json["spec"]!["groups"]![0]!["rules"]![0]!["annotations"]!["summary"]!.GetValue<string>());

        var noMonitoringApi = Render("defaults", "1.31.0", null, chart);
        Assert.DoesNotContain(noMonitoringApi, o => o.Kind is "ServiceMonitor" or "PrometheusRule");
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(dir.Replace(from, to, StringComparison.Ordinal));
        }

        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, file.Replace(from, to, StringComparison.Ordinal), overwrite: true);
        }
    }
}

/// <summary>The access-policy example of the chart README renders into the policies the README describes.</summary>
[Trait("Category", "Integration")]
public sealed class ChartReadmeExampleTests
{
    [Fact]
    public void The_readme_access_policy_example_renders_as_described()
    {
        HelmChart.RequireHelm();
        var readme = File.ReadAllText(Path.Combine(HelmChart.ChartDirectory, "README.md"));
        var start = readme.IndexOf("```yaml\naccessPolicy:", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no accessPolicy example");
        start += "```yaml\n".Length;
        var example = readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)];
        using var dir = new TempDir();
        var values = Path.Combine(dir.Path, "example.yaml");
        File.WriteAllText(values, example);
        var (exit, stdout, stderr) = HelmChart.Template([values], "1.31.0", sets: [$"server.publicEndpoint={HelmChart.PublicEndpoint}"]);
        Assert.True(exit == 0, stderr);
        var policies = StrictManifest.Load(stdout).Where(o => o.Kind == "NetworkPolicy").ToDictionary(o => o.Name, o => (V1NetworkPolicy)o.Typed);
        Assert.Contains("vpn-gateway-default-deny", policies.Keys);
        Assert.Contains("vpn-gateway-client-0", policies.Keys);
        Assert.Contains("vpn-gateway-client-1", policies.Keys);
        var gateway = policies["vpn-gateway-gateway"].Spec;
        Assert.Equal("198.51.100.0/24", gateway.Ingress[0].FromProperty.Single().IpBlock.Cidr);
        Assert.Equal("data", gateway.Ingress[1].FromProperty[1].NamespaceSelector.MatchLabels["team"]);
        Assert.Equal("5432", gateway.Ingress[1].Ports.Single().Port.Value);
        Assert.Equal("10.20.0.0/16", gateway.Egress[0].To.Single().IpBlock.Cidr);
    }
}
