using CloudVpn.Cli;
using CloudVpn.Kubernetes.Injection;
using k8s;
using k8s.Models;

namespace CloudVpn.Cli.Tests;

public sealed class InjectCommandTests
{
    private const string Stream = """
        # workloads of team a
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings   # kept as written
        data:
          a: "1"
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
              annotations:
                cloudvpn.io/inject: "true"
                cloudvpn.io/gateway: vpn-gateway
            spec:
              containers:
              - name: web
                image: nginx:1.27
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata:
          name: sync
        spec:
          schedule: "*/5 * * * *"
          jobTemplate:
            spec:
              template:
                metadata:
                  annotations: {cloudvpn.io/inject: "true", cloudvpn.io/gateway: vpn-gateway}
                spec:
                  restartPolicy: OnFailure
                  containers: [{name: sync, image: registry.example/sync:2}]
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata:
          name: db
        spec:
          serviceName: db
          selector:
            matchLabels: {app: db}
          template:
            metadata:
              labels: {app: db}
            spec:
              containers:
              - name: db
                image: postgres:16
        """;

    private static SidecarInjector Injector() => new(new SidecarInjectionOptions { Image = "registry.example/cloudvpn-sidecar:1.0" });

    [Fact]
    public void Opted_in_templates_are_injected_and_every_other_document_is_written_back_byte_for_byte()
    {
        var (output, injected) = InjectCommand.Inject(Stream, Injector(), new Version(1, 31));

        Assert.Equal(2, injected);
        var docs = InjectCommand.SplitDocuments(output);
        var inputDocs = InjectCommand.SplitDocuments(Stream);
        Assert.Equal(4, docs.Count);
        Assert.Equal(inputDocs[0], docs[0]);
        Assert.Equal(inputDocs[3], docs[3]);
        Assert.Contains("# kept as written", docs[0].Body, StringComparison.Ordinal);

        var deployment = KubernetesYaml.Deserialize<V1Deployment>(docs[1].Body, strict: true);
        Assert.Equal(SidecarInjector.ContainerName, deployment.Spec.Template.Spec.InitContainers[0].Name);
        Assert.Equal("web", deployment.Spec.Template.Spec.Containers.Single().Name);
        var cron = KubernetesYaml.Deserialize<V1CronJob>(docs[2].Body, strict: true);
        Assert.Equal(SidecarInjector.ContainerName, cron.Spec.JobTemplate.Spec.Template.Spec.InitContainers[0].Name);
    }

    [Fact]
    public void Injecting_the_output_again_changes_nothing()
    {
        var (once, _) = InjectCommand.Inject(Stream, Injector(), new Version(1, 20));
        var (twice, injected) = InjectCommand.Inject(once, Injector(), new Version(1, 20));
        Assert.Equal(0, injected);
        Assert.Equal(once, twice);
    }

    [Fact]
    public async Task Reads_stdin_and_writes_stdout()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var rc = await CliApp.RunAsync(["inject", "--kube-version", "1.20"], new StringReader(Stream), stdout, stderr, TestContext.Current.CancellationToken);

        Assert.Equal(0, rc);
        Assert.Contains("2 pod template(s) injected", stderr.ToString(), StringComparison.Ordinal);
        var deployment = KubernetesYaml.Deserialize<V1Deployment>(InjectCommand.SplitDocuments(stdout.ToString())[1].Body, strict: true);
        // 1.20 predates native sidecars: the plain-container form
        Assert.Equal(SidecarInjector.ContainerName, deployment.Spec.Template.Spec.Containers[0].Name);
        Assert.Null(deployment.Spec.Template.Spec.InitContainers);
    }

    [Fact]
    public async Task Reads_a_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"cloudvpn-inject-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(path, Stream, TestContext.Current.CancellationToken);
        try
        {
            var stdout = new StringWriter();
            var rc = await CliApp.RunAsync(["inject", "-f", path], new StringReader(""), stdout, new StringWriter(), TestContext.Current.CancellationToken);
            Assert.Equal(0, rc);
            Assert.Contains(SidecarInjector.ContainerName, stdout.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(new[] { "inject", "--form", "sideways" }, "--form: 'sideways'")]
    [InlineData(new[] { "inject", "--route", "10.0.0.0/33" }, "--route: '10.0.0.0/33'")]
    [InlineData(new[] { "inject", "--kube-version" }, "--kube-version: a value is required")]
    [InlineData(new[] { "inject", "--bogus" }, "unknown option '--bogus'")]
    [InlineData(new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    public async Task Bad_usage_exits_2_naming_the_problem(string[] args, string message)
    {
        var stderr = new StringWriter();
        var rc = await CliApp.RunAsync(args, new StringReader(""), new StringWriter(), stderr, TestContext.Current.CancellationToken);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains(message, stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Opted_in_template_without_a_gateway_fails_naming_the_document()
    {
        const string bad = """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: x}
            ---
            apiVersion: v1
            kind: Pod
            metadata:
              name: p
              annotations: {cloudvpn.io/inject: "true"}
            spec:
              containers: [{name: a, image: b}]
            """;
        var stderr = new StringWriter();
        var rc = await CliApp.RunAsync(["inject"], new StringReader(bad), new StringWriter(), stderr, TestContext.Current.CancellationToken);
        Assert.Equal(1, rc);
        Assert.Contains("document 2", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("cloudvpn.io/gateway", stderr.ToString(), StringComparison.Ordinal);
    }
}
