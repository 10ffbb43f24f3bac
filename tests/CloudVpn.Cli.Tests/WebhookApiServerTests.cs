using CloudVpn.Cli;
using CloudVpn.Kubernetes.Injection;
using CloudVpn.Testing;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace CloudVpn.Cli.Tests;

/// <summary>The webhook registered in a real API server (Kubernetes v1.20) through a MutatingWebhookConfiguration with a url client config.</summary>
[Trait("Category", "Integration")]
public sealed class WebhookApiServerTests
{
    private static V1Pod Pod(string name, bool optIn) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            Annotations = optIn
                ? new Dictionary<string, string> { [InjectionAnnotations.Inject] = "true", [InjectionAnnotations.Gateway] = "vpn-gateway" }
                : new Dictionary<string, string> { ["team"] = "a" },
        },
        Spec = new V1PodSpec { Containers = [new V1Container { Name = "app", Image = "registry.example/app:1" }] },
    };

    private static V1MutatingWebhookConfiguration Configuration(string name, string ns, RunningWebhook webhook, string failurePolicy) => new()
    {
        Metadata = new V1ObjectMeta { Name = name },
        Webhooks =
        [
            new V1MutatingWebhook
            {
                Name = "inject.cloudvpn.io",
                ClientConfig = new Admissionregistrationv1WebhookClientConfig
                {
                    Url = webhook.MutateUri.ToString(),
                    CaBundle = System.Text.Encoding.UTF8.GetBytes(webhook.CaBundlePem),
                },
                Rules = [new V1RuleWithOperations { Operations = ["CREATE"], ApiGroups = [""], ApiVersions = ["v1"], Resources = ["pods"] }],
                FailurePolicy = failurePolicy,
                SideEffects = "None",
                AdmissionReviewVersions = ["v1"],
                TimeoutSeconds = 5,
                NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["cloudvpn-injection-test"] = ns } },
            },
        ],
    };

    [Fact]
    public async Task Pods_submitted_to_the_api_server_come_back_injected_opted_out_ones_unchanged_and_failure_policy_decides_when_down()
    {
        var ct = TestContext.Current.CancellationToken;
        var server = await KubeApiServer.GetAsync();
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("inject");
        await admin.CoreV1.PatchNamespaceAsync(new V1Patch("{\"metadata\":{\"labels\":{\"cloudvpn-injection-test\":\"" + ns + "\"}}}", V1Patch.PatchType.MergePatch), ns, cancellationToken: ct);

        // the form follows the server's version, read as the webhook command reads it
        var version = await WebhookServer.TryReadServerVersionAsync(server.KubeconfigPath, TextWriter.Null, ct);
        Assert.Equal(new Version(1, 20), version);
        var port = RunningWebhook.FreePort();
        var webhook = await RunningWebhook.StartAsync(version, port);
        var configName = $"cloudvpn-inject-{ns}";
        await admin.AdmissionregistrationV1.CreateMutatingWebhookConfigurationAsync(Configuration(configName, ns, webhook, "Fail"), cancellationToken: ct);
        try
        {
            // the API server picks new webhook configurations up within a moment
            var probes = 0;
            var injected = await Eventually.ReturnsAsync(async () =>
            {
                var created = await admin.CoreV1.CreateNamespacedPodAsync(Pod($"probe-{probes++}", optIn: true), ns, cancellationToken: ct);
                return created.Spec.Containers.Any(c => c.Name == SidecarInjector.ContainerName) ? created : null;
            }, "the API server to call the new webhook");

            Assert.NotNull(injected);
            var stored = await admin.CoreV1.ReadNamespacedPodAsync(injected.Metadata.Name, ns, cancellationToken: ct);
            Assert.Equal([SidecarInjector.ContainerName, "app"], stored.Spec.Containers.Select(c => c.Name));
            Assert.Equal("container", stored.Metadata.Annotations[InjectionAnnotations.Status]);
            Assert.Equal(["NET_ADMIN"], stored.Spec.Containers[0].SecurityContext.Capabilities.Add);
            Assert.Contains(stored.Spec.Volumes, v => v.Secret?.SecretName == "vpn-gateway-client");
            Assert.Contains("10.60.0.0/16", stored.Metadata.Annotations[InjectionAnnotations.IstioExcludeOutboundIpRanges], StringComparison.Ordinal);

            var plain = await admin.CoreV1.CreateNamespacedPodAsync(Pod("opted-out", optIn: false), ns, cancellationToken: ct);
            Assert.Equal(["app"], plain.Spec.Containers.Select(c => c.Name));
            Assert.False(plain.Metadata.Annotations.ContainsKey(InjectionAnnotations.Status));

            // a Deployment's template: the Deployment is stored as written; a pod made from its template (what the
            // ReplicaSet controller does; there is no controller-manager here) is injected on its way in
            var deployment = await admin.AppsV1.CreateNamespacedDeploymentAsync(new V1Deployment
            {
                Metadata = new V1ObjectMeta { Name = "web" },
                Spec = new V1DeploymentSpec
                {
                    Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "web" } },
                    Template = new V1PodTemplateSpec
                    {
                        Metadata = new V1ObjectMeta
                        {
                            Labels = new Dictionary<string, string> { ["app"] = "web" },
                            Annotations = new Dictionary<string, string> { [InjectionAnnotations.Inject] = "true", [InjectionAnnotations.Gateway] = "edge" },
                        },
                        Spec = new V1PodSpec { Containers = [new V1Container { Name = "web", Image = "nginx" }] },
                    },
                },
            }, ns, cancellationToken: ct);
            var fromTemplate = await admin.CoreV1.CreateNamespacedPodAsync(new V1Pod
            {
                Metadata = new V1ObjectMeta { Name = "web-1", Labels = deployment.Spec.Template.Metadata.Labels, Annotations = deployment.Spec.Template.Metadata.Annotations },
                Spec = deployment.Spec.Template.Spec,
            }, ns, cancellationToken: ct);
            Assert.Equal([SidecarInjector.ContainerName, "web"], fromTemplate.Spec.Containers.Select(c => c.Name));
            Assert.Contains(fromTemplate.Spec.Volumes, v => v.Secret?.SecretName == "edge-client");

            // a pod the webhook refuses (no gateway named) is not created, with the webhook's reason
            var refused = await Assert.ThrowsAsync<HttpOperationException>(() => admin.CoreV1.CreateNamespacedPodAsync(new V1Pod
            {
                Metadata = new V1ObjectMeta { Name = "lost", Annotations = new Dictionary<string, string> { [InjectionAnnotations.Inject] = "true" } },
                Spec = new V1PodSpec { Containers = [new V1Container { Name = "app", Image = "nginx" }] },
            }, ns, cancellationToken: ct));
            Assert.Contains(InjectionAnnotations.Gateway, refused.Response.Content, StringComparison.Ordinal);

            // webhook down, failurePolicy Fail: the pod is refused
            await webhook.DisposeAsync();
            var down = await Assert.ThrowsAsync<HttpOperationException>(() => admin.CoreV1.CreateNamespacedPodAsync(Pod("while-down", optIn: true), ns, cancellationToken: ct));
            Assert.Contains("failed calling webhook", down.Response.Content, StringComparison.Ordinal);

            // failurePolicy Ignore: admitted without the sidecar
            var config = await admin.AdmissionregistrationV1.ReadMutatingWebhookConfigurationAsync(configName, cancellationToken: ct);
            config.Webhooks[0].FailurePolicy = "Ignore";
            await admin.AdmissionregistrationV1.ReplaceMutatingWebhookConfigurationAsync(config, configName, cancellationToken: ct);
            var attempts = 0;
            var admitted = await Eventually.ReturnsAsync(async () =>
            {
                try
                {
                    return await admin.CoreV1.CreateNamespacedPodAsync(Pod($"ignored-{attempts++}", optIn: true), ns, cancellationToken: ct);
                }
                catch (HttpOperationException e) when (e.Response.Content.Contains("failed calling webhook", StringComparison.Ordinal))
                {
                    return null;
                }
            }, "failurePolicy Ignore to take effect");

            Assert.NotNull(admitted);
            Assert.Equal(["app"], admitted.Spec.Containers.Select(c => c.Name));
        }
        finally
        {
            await webhook.DisposeAsync();
            try
            {
                await admin.AdmissionregistrationV1.DeleteMutatingWebhookConfigurationAsync(configName, cancellationToken: CancellationToken.None);
            }
            catch (HttpRequestException)
            {
                // the server is gone: the original failure is the one to report
            }
        }
    }
}
