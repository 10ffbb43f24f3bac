namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>The strict loader and the security checks catch what they are meant to catch.</summary>
public sealed class StrictManifestTests
{
    private const string Deployment = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: gw
        spec:
          replicas: 2
          selector:
            matchLabels: {app: gw}
          template:
            metadata:
              labels: {app: gw}
            spec:
              containers:
                - name: gateway
                  image: example/gw:1
                  securityContext:
                    runAsNonRoot: true
                    readOnlyRootFilesystem: true
                    allowPrivilegeEscalation: false
                    capabilities: {drop: [ALL], add: [NET_ADMIN]}
                    seccompProfile: {type: RuntimeDefault}
                  resources:
                    requests: {cpu: 100m, memory: 64Mi}
                    limits: {cpu: 1, memory: 128Mi}
                  startupProbe: {httpGet: {path: /healthz, port: 8080}}
                  readinessProbe: {httpGet: {path: /readyz, port: 8080}}
                  livenessProbe: {httpGet: {path: /healthz, port: 8080}}
        """;

    [Fact]
    public void A_valid_object_loads_and_passes()
    {
        var objects = StrictManifest.Load(Deployment);
        Assert.Equal("Deployment/gw", Assert.Single(objects).Key);
        Assert.Empty(ManifestChecks.Check(objects));
    }

    [Fact]
    public void An_unknown_field_is_an_error_naming_its_path()
    {
        var ex = Assert.Throws<InvalidDataException>(() => StrictManifest.Load(Deployment.Replace("replicas: 2", "replica: 2", StringComparison.Ordinal)));
        Assert.Contains("Deployment/gw.spec.replica: unknown field", ex.Message, StringComparison.Ordinal);
        var nested = Assert.Throws<InvalidDataException>(() => StrictManifest.Load(Deployment.Replace("readOnlyRootFilesystem", "readOnlyRootFileSystem", StringComparison.Ordinal)));
        Assert.Contains("securityContext.readOnlyRootFileSystem", nested.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Custom_resources_are_strict_too()
    {
        const string monitor = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec:\n  selector: {matchLabels: {a: b}}\n  endpoints: [{port: http, path: /metrics}]\n";
        Assert.Single(StrictManifest.Load(monitor));
        var ex = Assert.Throws<InvalidDataException>(() => StrictManifest.Load(monitor.Replace("path:", "pathh:", StringComparison.Ordinal)));
        Assert.Contains("ServiceMonitor/m", ex.Message, StringComparison.Ordinal);
        Assert.Contains("pathh", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_kind_without_a_model_is_an_error() =>
        Assert.Throws<InvalidDataException>(() => StrictManifest.Load("apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n"));

    [Theory]
    [InlineData("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation not false")]
    [InlineData("add: [NET_ADMIN]", "add: [NET_ADMIN, SYS_ADMIN]", "adds capability SYS_ADMIN")]
    [InlineData("drop: [ALL]", "drop: [NET_RAW]", "do not drop ALL")]
    [InlineData("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "not read-only")]
    [InlineData("runAsNonRoot: true", "runAsNonRoot: true\n            privileged: true", "privileged")]
    [InlineData("readinessProbe: {httpGet: {path: /readyz, port: 8080}}", "terminationMessagePath: /dev/termination-log", "probes not all present")]
    [InlineData("limits: {cpu: 1, memory: 128Mi}", "limits: {cpu: 1}", "requests and limits")]
    public void The_security_checks_catch_a_violation(string from, string to, string expected)
    {
        var objects = StrictManifest.Load(Deployment.Replace(from, to, StringComparison.Ordinal));
        Assert.Contains(ManifestChecks.Check(objects), p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Key_material_in_a_config_map_is_caught()
    {
        var key = Convert.ToBase64String(new byte[32].Select((_, i) => (byte)(i * 7 + 1)).ToArray());
        var objects = StrictManifest.Load($"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  wg0.conf: \"PrivateKey = {key}\"\n");
        Assert.Contains(ManifestChecks.Check(objects), p => p.Contains("key material", StringComparison.Ordinal));
    }
}
