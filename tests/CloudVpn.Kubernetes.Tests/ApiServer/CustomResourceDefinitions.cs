using System.Net;
using CloudVpn.Kubernetes.Tests.Chart;
using CloudVpn.Testing;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.ApiServer;

/// <summary>
/// The minimal structural CRDs of ApiServer/Crds (ServiceMonitor, PrometheusRule, ExternalSecret, SecretStore), installed
/// on the shared API server for one test and removed again on dispose (with every object of their kinds), so that the
/// other tests' helm installs see a cluster without these APIs.
/// </summary>
internal sealed class CustomResourceDefinitions : IAsyncDisposable
{
    public static readonly string[] Names =
    [
        "servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
        "externalsecrets.external-secrets.io", "secretstores.external-secrets.io",
    ];

    private readonly IKubernetes _admin;

    private CustomResourceDefinitions(IKubernetes admin, IReadOnlyList<V1CustomResourceDefinition> definitions)
    {
        _admin = admin;
        Definitions = definitions;
    }

    public IReadOnlyList<V1CustomResourceDefinition> Definitions { get; }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Loads a CRD file strictly (every field must be one of V1CustomResourceDefinition's).</summary>
    public static V1CustomResourceDefinition Load(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "ApiServer", "Crds", name + ".yaml");
        return (V1CustomResourceDefinition)Assert.Single(StrictManifest.Load(File.ReadAllText(path))).Typed;
    }

    /// <summary>Creates every CRD and waits until the server serves their APIs.</summary>
    public static async Task<CustomResourceDefinitions> InstallAsync(IKubernetes admin)
    {
        var definitions = Names.Select(Load).ToList();
        var installed = new CustomResourceDefinitions(admin, definitions);
        try
        {
            foreach (var crd in definitions)
            {
                await DeleteAsync(admin, crd.Metadata.Name); // a leftover of an earlier, interrupted run
                await admin.ApiextensionsV1.CreateCustomResourceDefinitionAsync(crd, cancellationToken: Ct);
            }

            foreach (var crd in definitions)
            {
                var version = crd.Spec.Versions.Single().Name;
                await Eventually.HoldsAsync(
                    async () =>
                    {
                        var stored = await admin.ApiextensionsV1.ReadCustomResourceDefinitionAsync(crd.Metadata.Name, cancellationToken: Ct);
                        return stored.Status?.Conditions?.Any(c => c is { Type: "Established", Status: "True" }) == true
                            && await ServedAsync(admin, crd.Spec.Group, version, crd.Spec.Names.Plural);
                    },
                    $"{crd.Metadata.Name} established and served");
            }
        }
        catch
        {
            await installed.DisposeAsync();
            throw;
        }

        return installed;
    }

    /// <summary>Deletes the CRDs (the server deletes their objects) and waits until they are gone.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var crd in Definitions)
        {
            await DeleteAsync(_admin, crd.Metadata.Name);
        }
    }

    private static async Task<bool> ServedAsync(IKubernetes admin, string group, string version, string plural)
    {
        try
        {
            await admin.CustomObjects.ListClusterCustomObjectAsync(group, version, plural, cancellationToken: Ct);
            return true;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private static async Task DeleteAsync(IKubernetes admin, string name)
    {
        try
        {
            await admin.ApiextensionsV1.DeleteCustomResourceDefinitionAsync(name, cancellationToken: CancellationToken.None);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return;
        }

        await Eventually.HoldsAsync(
            async () =>
            {
                try
                {
                    await admin.ApiextensionsV1.ReadCustomResourceDefinitionAsync(name, cancellationToken: CancellationToken.None);
                    return false;
                }
                catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
                {
                    return true;
                }
            },
            $"{name} deleted",
            timeoutMs: 30_000);
    }
}
