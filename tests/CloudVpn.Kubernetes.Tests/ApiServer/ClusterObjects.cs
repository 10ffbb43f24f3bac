using System.Net;
using CloudVpn.Kubernetes.Tests.Chart;
using CloudVpn.Testing;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.ApiServer;

/// <summary>Creates and reads objects of any kind the chart uses through KubernetesClient, by apiVersion and kind.</summary>
internal static class ClusterObjects
{
    private static readonly Dictionary<string, string> Plurals = new()
    {
        ["ConfigMap"] = "configmaps", ["Secret"] = "secrets", ["ServiceAccount"] = "serviceaccounts", ["Service"] = "services",
        ["Namespace"] = "namespaces", ["Role"] = "roles", ["RoleBinding"] = "rolebindings", ["Deployment"] = "deployments",
        ["HorizontalPodAutoscaler"] = "horizontalpodautoscalers", ["PodDisruptionBudget"] = "poddisruptionbudgets",
        ["CronJob"] = "cronjobs", ["NetworkPolicy"] = "networkpolicies", ["ServiceMonitor"] = "servicemonitors",
        ["PrometheusRule"] = "prometheusrules", ["ExternalSecret"] = "externalsecrets", ["SecretStore"] = "secretstores",
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Creates <paramref name="obj"/> in <paramref name="ns"/> (server-side dry run when asked).</summary>
    public static async Task CreateAsync(IKubernetes client, IKubernetesObject<V1ObjectMeta> obj, string ns, bool dryRun)
    {
        var dry = dryRun ? "All" : null;
        obj.Metadata.NamespaceProperty = ns;
        switch (obj)
        {
            case V1ConfigMap o: await client.CoreV1.CreateNamespacedConfigMapAsync(o, ns, dryRun: dry, cancellationToken: Ct); break;
            case V1Secret o: await client.CoreV1.CreateNamespacedSecretAsync(o, ns, dryRun: dry, cancellationToken: Ct); break;
            case V1ServiceAccount o: await client.CoreV1.CreateNamespacedServiceAccountAsync(o, ns, dryRun: dry, cancellationToken: Ct); break;
            case V1Service o: await client.CoreV1.CreateNamespacedServiceAsync(o, ns, dryRun: dry, cancellationToken: Ct); break;
            default:
                var (group, version) = Split(obj.ApiVersion);
                await client.CustomObjects.CreateNamespacedCustomObjectAsync(obj, group, version, ns, Plurals[obj.Kind], dryRun: dry, cancellationToken: Ct);
                break;
        }
    }

    /// <summary>Deletes the object (its kind by apiVersion and kind).</summary>
    public static async Task DeleteAsync(IKubernetes client, string apiVersion, string kind, string ns, string name)
    {
        if (!apiVersion.Contains('/', StringComparison.Ordinal))
        {
            _ = kind switch
            {
                "ConfigMap" => (object)await client.CoreV1.DeleteNamespacedConfigMapAsync(name, ns, cancellationToken: Ct),
                "Secret" => await client.CoreV1.DeleteNamespacedSecretAsync(name, ns, cancellationToken: Ct),
                "ServiceAccount" => await client.CoreV1.DeleteNamespacedServiceAccountAsync(name, ns, cancellationToken: Ct),
                "Service" => await DeleteServiceAsync(client, ns, name),
                _ => throw new NotSupportedException(kind),
            };
        }
        else
        {
            var (group, version) = Split(apiVersion);
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(group, version, ns, Plurals[kind], name, propagationPolicy: "Background", cancellationToken: Ct);
        }
    }

    // Kubernetes 1.20 answers a Service's deletion with a Status, where the client (written for 1.21+) expects the
    // Service: the deletion happened; the caller checks that the Service is gone.
    private static async Task<object> DeleteServiceAsync(IKubernetes client, string ns, string name)
    {
        try
        {
            return await client.CoreV1.DeleteNamespacedServiceAsync(name, ns, cancellationToken: Ct);
        }
        catch (System.Text.Json.JsonException)
        {
            return name;
        }
    }

    /// <summary>Whether the object exists on the server.</summary>
    public static async Task<bool> ExistsAsync(IKubernetes client, string apiVersion, string kind, string ns, string name)
    {
        try
        {
            if (!apiVersion.Contains('/', StringComparison.Ordinal))
            {
                _ = kind switch
                {
                    "ConfigMap" => (object)await client.CoreV1.ReadNamespacedConfigMapAsync(name, ns, cancellationToken: Ct),
                    "Secret" => await client.CoreV1.ReadNamespacedSecretAsync(name, ns, cancellationToken: Ct),
                    "ServiceAccount" => await client.CoreV1.ReadNamespacedServiceAccountAsync(name, ns, cancellationToken: Ct),
                    "Service" => await client.CoreV1.ReadNamespacedServiceAsync(name, ns, cancellationToken: Ct),
                    "Namespace" => await client.CoreV1.ReadNamespaceAsync(name, cancellationToken: Ct),
                    _ => throw new NotSupportedException(kind),
                };
            }
            else
            {
                var (group, version) = Split(apiVersion);
                await client.CustomObjects.GetNamespacedCustomObjectAsync(group, version, ns, Plurals[kind], name, cancellationToken: Ct);
            }

            return true;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private static (string Group, string Version) Split(string apiVersion)
    {
        var slash = apiVersion.IndexOf('/', StringComparison.Ordinal);
        return (apiVersion[..slash], apiVersion[(slash + 1)..]);
    }
}

/// <summary>helm against the test API server, with its caches and config in a folder of its own.</summary>
internal sealed class HelmSession : IDisposable
{
    private readonly TempDir _home = new();

    public HelmSession(KubeApiServer server) => Server = server;

    public KubeApiServer Server { get; }

    public (int ExitCode, string Stdout, string Stderr) Run(string arguments) =>
        Cmd.Run("/usr/bin/env",
            $"HELM_CACHE_HOME={_home.Path}/cache HELM_CONFIG_HOME={_home.Path}/config HELM_DATA_HOME={_home.Path}/data KUBECACHEDIR={_home.Path}/kube " +
            $"{HelmChart.HelmPath} {arguments} --kubeconfig {Server.KubeconfigPath}",
            check: false, timeoutMs: 180_000);

    public string Ok(string arguments)
    {
        var (exit, stdout, stderr) = Run(arguments);
        Assert.True(exit == 0, $"helm {arguments} exited {exit}: {stderr}{stdout}");
        return stdout;
    }

    public void Dispose() => _home.Dispose();
}
