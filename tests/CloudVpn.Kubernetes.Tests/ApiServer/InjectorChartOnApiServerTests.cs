using CloudVpn.Kubernetes.Tests.Chart;
using CloudVpn.Testing;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.ApiServer;

/// <summary>The injector chart installed into a real Kubernetes v1.20 API server.</summary>
[Trait("Category", "Integration")]
public sealed class InjectorChartOnApiServerTests
{
    [Fact]
    public async Task Installs_keeps_its_certificate_across_an_upgrade_and_uninstalls_without_leftovers()
    {
        HelmChart.RequireHelm();
        var ct = TestContext.Current.CancellationToken;
        var server = await KubeApiServer.GetAsync();
        using var helm = new HelmSession(server);
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("injector");
        var chart = Path.Combine(Path.GetDirectoryName(HelmChart.ChartDirectory)!, "cloudvpn-injector");
        var release = $"cloudvpn-injector-{ns}";

        helm.Ok($"install {release} {chart} --namespace {ns}");
        var manifest = StrictManifest.Load(helm.Ok($"get manifest {release} --namespace {ns}"));
        foreach (var o in manifest)
        {
            Assert.True(await ExistsAsync(admin, o, ns), $"{o.Key} not stored");
        }

        // v1.20 serves policy/v1beta1 only: the chart fell back to it
        Assert.Equal("policy/v1beta1", manifest.Single(o => o.Kind == "PodDisruptionBudget").ApiVersion);
        var config = await admin.AdmissionregistrationV1.ReadMutatingWebhookConfigurationAsync(release, cancellationToken: ct);
        var caBefore = config.Webhooks[0].ClientConfig.CaBundle;
        Assert.NotEmpty(caBefore);

        helm.Ok($"upgrade {release} {chart} --namespace {ns} --set webhook.failurePolicy=Ignore");
        config = await admin.AdmissionregistrationV1.ReadMutatingWebhookConfigurationAsync(release, cancellationToken: ct);
        Assert.Equal("Ignore", config.Webhooks[0].FailurePolicy);
        Assert.Equal(caBefore, config.Webhooks[0].ClientConfig.CaBundle);

        helm.Ok($"uninstall {release} --namespace {ns}");
        foreach (var o in manifest)
        {
            Assert.False(await ExistsAsync(admin, o, ns), $"{o.Key} left behind");
        }
    }

    private static async Task<bool> ExistsAsync(IKubernetes admin, RenderedObject o, string ns)
    {
        if (o.Kind != "MutatingWebhookConfiguration")
        {
            return await ClusterObjects.ExistsAsync(admin, o.ApiVersion, o.Kind, ns, o.Name);
        }

        // cluster-scoped
        var all = await admin.AdmissionregistrationV1.ListMutatingWebhookConfigurationAsync(cancellationToken: TestContext.Current.CancellationToken);
        return all.Items.Any(c => c.Metadata.Name == o.Name);
    }
}
