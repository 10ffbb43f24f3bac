using System.Net;
using System.Text;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using CloudVpn.Kubernetes.CustomResources;
using CloudVpn.Kubernetes.KeyStores;
using CloudVpn.Kubernetes.Manifests;
using CloudVpn.Kubernetes.Tests.Chart;
using CloudVpn.Policy;
using CloudVpn.Scaling;
using CloudVpn.Testing;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.ApiServer;

/// <summary>
/// The chart and the builders against a real Kubernetes v1.20 API server: helm install/upgrade/uninstall, RBAC that
/// grants exactly the key Secret, custom resources where their APIs exist, and the typed objects created through
/// KubernetesClient. One class: the tests run one after the other on the shared server.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ChartOnApiServerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(KubeApiServer Server, HelmSession Helm)> StartAsync()
    {
        HelmChart.RequireHelm();
        var server = await KubeApiServer.GetAsync();
        return (server, new HelmSession(server));
    }

    private static async Task<List<RenderedObject>> AssertAllStoredAsync(IKubernetes admin, HelmSession helm, string release, string ns)
    {
        var objects = StrictManifest.Load(helm.Ok($"get manifest {release} --namespace {ns}"));
        Assert.NotEmpty(objects);
        foreach (var o in objects)
        {
            Assert.True(await ClusterObjects.ExistsAsync(admin, o.ApiVersion, o.Kind, ns, o.Name), $"{o.ApiVersion} {o.Key} is not stored in {ns}");
        }

        return objects;
    }

    [Fact]
    public async Task One_command_install_upgrade_and_uninstall_leave_nothing_behind()
    {
        var (server, helm) = await StartAsync();
        using var _ = helm;
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("helm");

        var notes = helm.Ok($"install vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} --set server.publicEndpoint={HelmChart.PublicEndpoint}");
        Assert.Contains($"kubectl -n {ns} create job vpn-gateway-key-init --from=cronjob/vpn-gateway-key-rotation", notes, StringComparison.Ordinal);
        Assert.Contains("pod-security.kubernetes.io/enforce=privileged", notes, StringComparison.Ordinal);
        var installed = await AssertAllStoredAsync(admin, helm, "vpn-gateway", ns);
        // Kubernetes 1.20 serves only the older versions of these kinds: the chart picked them from the server's APIs.
        Assert.Equal("batch/v1beta1", installed.Single(o => o.Kind == "CronJob").ApiVersion);
        Assert.Equal("policy/v1beta1", installed.Single(o => o.Kind == "PodDisruptionBudget").ApiVersion);
        var deployment = await admin.AppsV1.ReadNamespacedDeploymentAsync("vpn-gateway", ns, cancellationToken: Ct);
        Assert.Equal(["NET_ADMIN"], deployment.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add);
        Assert.Equal("0", deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);

        // The rotation job writes the key into the chart's empty Secret (through the key store); an upgrade must keep it.
        var secret = await admin.CoreV1.ReadNamespacedSecretAsync("vpn-gateway-keys", ns, cancellationToken: Ct);
        Assert.True(secret.Data is null || secret.Data.Count == 0);
        var keyStore = new KubernetesSecretKeyStore(admin, new KubernetesSecretKeyStoreOptions { Namespace = ns, NamePrefix = "", StoreLabel = "vpn-gateway" });
        Assert.Equal(1, await keyStore.PutAsync("vpn-gateway-keys", Encoding.ASCII.GetBytes("stand-in for a key version"), expectedVersion: 0, Ct));

        helm.Ok($"upgrade vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} --set server.publicEndpoint={HelmChart.PublicEndpoint} " +
            "--set autoscaling.enabled=true --set autoscaling.maxReplicas=6 --set service.type=ClusterIP " +
            "--set accessPolicy.sources[0].podSelector.app=web --set accessPolicy.destinations[0].cidr=10.1.0.0/16 --set keys.rotation.enabled=false");
        var upgraded = await AssertAllStoredAsync(admin, helm, "vpn-gateway", ns);
        Assert.Equal("autoscaling/v2beta2", upgraded.Single(o => o.Kind == "HorizontalPodAutoscaler").ApiVersion);
        var hpa = await admin.CustomObjects.GetNamespacedCustomObjectAsync("autoscaling", "v2beta2", ns, "horizontalpodautoscalers", "vpn-gateway", cancellationToken: Ct);
        Assert.Contains("cloudvpn_active_peers", KubernetesJson.Serialize(hpa), StringComparison.Ordinal);
        Assert.Equal("ClusterIP", (await admin.CoreV1.ReadNamespacedServiceAsync("vpn-gateway", ns, cancellationToken: Ct)).Spec.Type);
        Assert.True(await ClusterObjects.ExistsAsync(admin, "networking.k8s.io/v1", "NetworkPolicy", ns, "vpn-gateway-client-0"));
        Assert.False(await ClusterObjects.ExistsAsync(admin, "batch/v1beta1", "CronJob", ns, "vpn-gateway-key-rotation"));
        using (var kept = await keyStore.GetAsync("vpn-gateway-keys", cancellationToken: Ct))
        {
            Assert.Equal("stand-in for a key version", Encoding.ASCII.GetString(kept!.Value));
        }

        Assert.Contains("deployed", helm.Ok($"status vpn-gateway --namespace {ns}"), StringComparison.Ordinal);

        helm.Ok($"uninstall vpn-gateway --namespace {ns}");
        foreach (var o in installed.Concat(upgraded))
        {
            Assert.False(await ClusterObjects.ExistsAsync(admin, o.ApiVersion, o.Kind, ns, o.Name), $"{o.Key} left behind");
        }

        // nothing else either: no release records, no stray objects of any kind the chart uses
        Assert.Empty((await admin.CoreV1.ListNamespacedSecretAsync(ns, cancellationToken: Ct)).Items);
        Assert.Empty((await admin.CoreV1.ListNamespacedConfigMapAsync(ns, cancellationToken: Ct)).Items);
        Assert.Empty((await admin.CoreV1.ListNamespacedServiceAccountAsync(ns, cancellationToken: Ct)).Items);
        Assert.Empty((await admin.CoreV1.ListNamespacedServiceAsync(ns, cancellationToken: Ct)).Items);
        Assert.Empty((await admin.AppsV1.ListNamespacedDeploymentAsync(ns, cancellationToken: Ct)).Items);
        Assert.Empty((await admin.NetworkingV1.ListNamespacedNetworkPolicyAsync(ns, cancellationToken: Ct)).Items);
        Assert.Empty((await admin.RbacAuthorizationV1.ListNamespacedRoleAsync(ns, cancellationToken: Ct)).Items);
        Assert.Empty((await admin.RbacAuthorizationV1.ListNamespacedRoleBindingAsync(ns, cancellationToken: Ct)).Items);
        Assert.DoesNotContain("vpn-gateway", helm.Ok($"list --all --namespace {ns}"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Roles_grant_the_key_secret_by_name_and_nothing_else()
    {
        var (server, helm) = await StartAsync();
        using var _ = helm;
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("rbac");
        helm.Ok($"install vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} --set server.publicEndpoint={HelmChart.PublicEndpoint}");
        await admin.CoreV1.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = "someone-elses" }, StringData = new Dictionary<string, string> { ["k"] = "v" } }, ns, cancellationToken: Ct);

        // The static users stand in for the ServiceAccounts (no token controller runs here): same Roles, bound to them.
        await BindAsync(admin, ns, "vpn-gateway", "carol");
        await BindAsync(admin, ns, "vpn-gateway-rotation", "dave");
        using var gateway = server.UserClient("carol");
        using var rotation = server.UserClient("dave");

        var keys = await EventuallyAsync(() => gateway.CoreV1.ReadNamespacedSecretAsync("vpn-gateway-keys", ns, cancellationToken: Ct));
        Assert.Equal("vpn-gateway-keys", keys.Metadata.Name);
        await AssertForbiddenAsync(() => gateway.CoreV1.ReadNamespacedSecretAsync("someone-elses", ns, cancellationToken: Ct));
        await AssertForbiddenAsync(() => gateway.CoreV1.ListNamespacedSecretAsync(ns, cancellationToken: Ct));
        // a list (and so a watch) of just that Secret is allowed: what a key store's watch uses
        var single = await gateway.CoreV1.ListNamespacedSecretAsync(ns, fieldSelector: "metadata.name=vpn-gateway-keys", cancellationToken: Ct);
        Assert.Equal("vpn-gateway-keys", Assert.Single(single.Items).Metadata.Name);
        await AssertForbiddenAsync(() => gateway.CoreV1.ListNamespacedSecretAsync(ns, fieldSelector: "metadata.name=someone-elses", cancellationToken: Ct));
        await AssertForbiddenAsync(() => gateway.CoreV1.ReplaceNamespacedSecretAsync(keys, "vpn-gateway-keys", ns, cancellationToken: Ct));
        await AssertForbiddenAsync(() => gateway.CoreV1.ReadNamespacedConfigMapAsync("vpn-gateway", ns, cancellationToken: Ct));

        var rotated = await EventuallyAsync(() => rotation.CoreV1.ReadNamespacedSecretAsync("vpn-gateway-keys", ns, cancellationToken: Ct));
        rotated.Data = new Dictionary<string, byte[]> { ["v2"] = [1, 2, 3] };
        await rotation.CoreV1.ReplaceNamespacedSecretAsync(rotated, "vpn-gateway-keys", ns, cancellationToken: Ct);
        await AssertForbiddenAsync(() => rotation.CoreV1.ReadNamespacedSecretAsync("someone-elses", ns, cancellationToken: Ct));
        await AssertForbiddenAsync(() => rotation.CoreV1.DeleteNamespacedSecretAsync("vpn-gateway-keys", ns, cancellationToken: Ct));
        await AssertForbiddenAsync(() => rotation.CoreV1.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = "new" } }, ns, cancellationToken: Ct));
        helm.Ok($"uninstall vpn-gateway --namespace {ns}");
    }

    [Fact]
    public async Task The_key_store_reads_the_chart_secret_that_the_rotation_job_writes_under_the_charts_roles()
    {
        var (server, helm) = await StartAsync();
        using var _ = helm;
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("keys");
        helm.Ok($"install vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} --set server.publicEndpoint={HelmChart.PublicEndpoint}");

        // The store as the gateway is told to open it: the settings come from the chart's own config file.
        var config = (await admin.CoreV1.ReadNamespacedConfigMapAsync("vpn-gateway", ns, cancellationToken: Ct)).Data["gateway.yaml"];
        var (namePrefix, storeLabel, keyId) = KubernetesStoreSettings(config);
        var options = new KubernetesSecretKeyStoreOptions { Namespace = ns, NamePrefix = namePrefix, StoreLabel = storeLabel };
        await BindAsync(admin, ns, "vpn-gateway", "carol");
        await BindAsync(admin, ns, "vpn-gateway-rotation", "dave");
        using var gatewayClient = server.UserClient("carol");
        using var rotationClient = server.UserClient("dave");
        var gatewayStore = new KubernetesSecretKeyStore(gatewayClient, options);
        var rotationStore = new KubernetesSecretKeyStore(rotationClient, options);
        Assert.Equal("vpn-gateway-keys", gatewayStore.SecretNameFor(keyId));

        // Before the first rotation the store takes the chart's empty Secret as its key without a version (a Secret
        // in another layout would be refused as not its own).
        Assert.Null(await EventuallyPermittedAsync(() => gatewayStore.GetAsync(keyId, cancellationToken: Ct).AsTask()));

        // The rotation job (the one-shot loop, under the rotation Role: get and update of that Secret) writes
        // version 1, then rotates to version 2, into the chart's Secret; the gateway's store reads both.
        await EventuallyPermittedAsync(() => rotationStore.ListVersionsAsync(keyId, Ct).AsTask());
        var rotation = new KeyRotationOptions { Interval = TimeSpan.FromHours(1), Overlap = TimeSpan.FromMilliseconds(10), CheckInterval = TimeSpan.FromSeconds(1) };
        rotation.Keys.Add(new RotatedKey(keyId, RotatedKeyKind.PrivateKey));
        using (var job = new KeyRotationLoop(_ => rotationStore, [], rotation))
        {
            await job.RunOnceAsync(force: false, Ct); // the key does not exist yet: created once
            Assert.Equal(1, await job.RunOnceAsync(force: true, Ct));
        }

        using var latest = await gatewayStore.GetAsync(keyId, cancellationToken: Ct);
        Assert.Equal(2, latest!.Version);
        Assert.Equal(32, latest.Value.Length);
        Assert.Equal([1L, 2L], (await gatewayStore.ListVersionsAsync(keyId, Ct)).Select(v => v.Version));
        var stored = await admin.CoreV1.ReadNamespacedSecretAsync("vpn-gateway-keys", ns, cancellationToken: Ct);
        Assert.Equal(["v1", "v2"], stored.Data.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(KubernetesSecretKeyStore.SecretType, stored.Type);

        // An upgrade keeps the versions, and the store still reads them.
        helm.Ok($"upgrade vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} --set server.publicEndpoint={HelmChart.PublicEndpoint} --set replicaCount=3");
        using var afterUpgrade = await gatewayStore.GetAsync(keyId, cancellationToken: Ct);
        Assert.Equal(latest.Value.ToArray(), afterUpgrade!.Value.ToArray());
        helm.Ok($"uninstall vpn-gateway --namespace {ns}");
    }

    [Theory]
    [InlineData("openvpn")]
    [InlineData("autoscaling")]
    [InlineData("vault")]
    [InlineData("nodeAffinity")]
    [InlineData("accessPolicy")]
    [InlineData("allowAll")]
    public async Task Every_value_set_installs_with_every_object_accepted(string set)
    {
        var (server, helm) = await StartAsync();
        using var _ = helm;
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("set");
        using var dir = new TempDir();
        var values = HelmChart.WriteValues(dir, set, ValueSets.Get(set).ToHelmValues());
        helm.Ok($"install vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} -f {values}");
        var objects = await AssertAllStoredAsync(admin, helm, "vpn-gateway", ns);
        Assert.Contains(objects, o => o.Kind == "Deployment");
        helm.Ok($"uninstall vpn-gateway --namespace {ns}");
    }

    /// <summary>
    /// With the CRDs of the Prometheus Operator and External Secrets installed, the server lists their API groups, the
    /// chart renders its custom resources from them (helm reads <c>.Capabilities.APIVersions</c> from the server), and
    /// every object is accepted, stored, read back into the strict models with no field lost, and removed on uninstall.
    /// </summary>
    [Fact]
    public async Task Custom_resources_install_with_helm_once_the_server_serves_their_apis()
    {
        var (server, helm) = await StartAsync();
        using var _ = helm;
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("crd");
        using var dir = new TempDir();
        var values = HelmChart.WriteValues(dir, "externalSecret", ValueSets.Get("externalSecret").ToHelmValues());

        // Without the External Secrets API the chart refuses, naming what is missing.
        var (exit, _, stderr) = helm.Run($"install vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} -f {values}");
        Assert.NotEqual(0, exit);
        Assert.Contains("does not serve external-secrets.io/v1beta1", stderr, StringComparison.Ordinal);
        var defaults = StrictManifest.Load(helm.Ok($"template vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} --validate --set server.publicEndpoint={HelmChart.PublicEndpoint}"));
        Assert.DoesNotContain(defaults, o => o.Kind is "ServiceMonitor" or "PrometheusRule");

        await using (await CustomResourceDefinitions.InstallAsync(admin))
        {
            helm.Ok($"install vpn-gateway {HelmChart.ChartDirectory} --namespace {ns} -f {values}");
            var objects = await AssertAllStoredAsync(admin, helm, "vpn-gateway", ns);
            Assert.Contains(objects, o => o is { Kind: "ConfigMap", Name: "vpn-gateway-dashboard" });

            // what the server stored is what the chart rendered (nothing pruned by the structural schemas), and it
            // deserializes strictly into the models
            var externalSecret = await ReadBackAsync<ExternalSecret>(admin, objects, ns, "vpn-gateway-keys");
            Assert.Equal("vault-backend", externalSecret.Spec.SecretStoreRef.Name);
            Assert.Equal("Retain", externalSecret.Spec.Target.DeletionPolicy); // the CRD's default, filled in by the server
            var monitor = await ReadBackAsync<ServiceMonitor>(admin, objects, ns, "vpn-gateway");
            Assert.Equal([ns], monitor.Spec.NamespaceSelector!.MatchNames);
            var rule = await ReadBackAsync<PrometheusRule>(admin, objects, ns, "vpn-gateway");
            Assert.Equal(ChartFiles.RuleGroups.SelectMany(g => g.Rules!).Select(r => r.Alert), rule.Spec.Groups!.SelectMany(g => g.Rules!).Select(r => r.Alert));

            // the Secret it fills is what the gateway's Role names
            var role = (V1Role)objects.Single(o => o is { Kind: "Role", Name: "vpn-gateway" }).Typed;
            Assert.Equal(["vpn-gateway-keys"], role.Rules.Single().ResourceNames);

            helm.Ok($"uninstall vpn-gateway --namespace {ns}");
            foreach (var o in objects)
            {
                Assert.False(await ClusterObjects.ExistsAsync(admin, o.ApiVersion, o.Kind, ns, o.Name), $"{o.Key} left behind");
            }
        }

        await admin.CoreV1.DeleteNamespaceAsync(ns, cancellationToken: Ct);
    }

    /// <summary>
    /// The builder's custom resources for the APIs the server reports (<see cref="ClusterCapabilities.DiscoverAsync"/>),
    /// created through KubernetesClient's custom object API (server-side dry run, then for real), read back typed with
    /// the generic client, and deleted again; with the SecretStore their ExternalSecret reads from.
    /// </summary>
    [Fact]
    public async Task Builder_custom_resources_are_created_and_read_back_through_kubernetes_client()
    {
        var server = await KubeApiServer.GetAsync();
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("built-crd");
        var settings = ValueSets.Get("monitoring") with
        {
            Namespace = ns,
            Keys = ValueSets.Get("externalSecret").Keys,
        };

        // before the CRDs: the server serves neither API, and the builder refuses the ExternalSecret key source
        var bare = await ClusterCapabilities.DiscoverAsync(admin, Ct);
        Assert.Equal(KubernetesVersion.V1_20, bare.Version);
        Assert.True(bare.Serves("apps/v1") && !bare.ServesMonitoring && !bare.ServesExternalSecrets);
        Assert.Throws<ArgumentException>(() => GatewayManifestBuilder.Build(settings, bare));

        await using (await CustomResourceDefinitions.InstallAsync(admin))
        {
            var cluster = await ClusterCapabilities.DiscoverAsync(admin, Ct);
            Assert.True(cluster.ServesMonitoring && cluster.ServesExternalSecrets);
            var store = new SecretStore
            {
                Metadata = new V1ObjectMeta { Name = "vault-backend", NamespaceProperty = ns },
                Spec = new SecretStoreSpec
                {
                    Provider = new SecretStoreProvider
                    {
                        Vault = new SecretStoreVaultProvider
                        {
                            Server = "https://vault.example:8200", Path = "secret",
                            Auth = new SecretStoreVaultAuth { Kubernetes = new SecretStoreVaultKubernetesAuth { MountPath = "kubernetes", Role = "vpn-gateway" } },
                        },
                    },
                },
            };
            using (var stores = new GenericClient(admin, SecretStore.KubeGroup, SecretStore.KubeApiVersion, SecretStore.KubePluralName, disposeClient: false))
            {
                var created = await stores.CreateNamespacedAsync(store, ns, Ct);
                Assert.Equal("v2", created.Spec.Provider.Vault!.Version); // the CRD's default, read back into the strict model
            }

            var objects = GatewayManifestBuilder.Build(settings, cluster).ToList();
            var custom = objects.Where(o => o is ServiceMonitor or PrometheusRule or ExternalSecret).Append(store).ToList();
            Assert.Equal(["ExternalSecret", "ServiceMonitor", "PrometheusRule", "SecretStore"], custom.Select(o => o.Kind));

            foreach (var o in objects)
            {
                await ClusterObjects.CreateAsync(admin, o, ns, dryRun: true);
            }

            Assert.False(await ClusterObjects.ExistsAsync(admin, ServiceMonitor.GroupVersion, ServiceMonitor.KubeKind, ns, settings.Name), "dry run stored the ServiceMonitor");
            foreach (var o in objects)
            {
                await ClusterObjects.CreateAsync(admin, o, ns, dryRun: false);
            }

            foreach (var o in custom)
            {
                var (group, version, plural) = Resource(o);
                using var generic = new GenericClient(admin, group, version, plural, disposeClient: false);
                var stored = o switch
                {
                    ServiceMonitor => (IKubernetesObject<V1ObjectMeta>)await generic.ReadNamespacedAsync<ServiceMonitor>(ns, o.Metadata.Name, Ct),
                    PrometheusRule => await generic.ReadNamespacedAsync<PrometheusRule>(ns, o.Metadata.Name, Ct),
                    ExternalSecret => await generic.ReadNamespacedAsync<ExternalSecret>(ns, o.Metadata.Name, Ct),
                    _ => await generic.ReadNamespacedAsync<SecretStore>(ns, o.Metadata.Name, Ct),
                };
                // every field the builder set came back unchanged (the server adds metadata and the CRDs' defaults)
                StrictManifest.CompareStrict(
                    System.Text.Json.Nodes.JsonNode.Parse(KubernetesJson.Serialize(o)), System.Text.Json.Nodes.JsonNode.Parse(KubernetesJson.Serialize(stored)), $"{o.Kind}/{o.Metadata.Name}");
            }

            var dashboard = await admin.CoreV1.ReadNamespacedConfigMapAsync($"{settings.Name}-dashboard", ns, cancellationToken: Ct);
            Assert.Equal(ChartFiles.Dashboards.Single().Value, dashboard.Data["cloudvpn-gateway-dashboard.json"]);
            Assert.Equal("vpn", dashboard.Metadata.Labels["grafana_folder"]);

            foreach (var o in Enumerable.Reverse(objects).Append(store))
            {
                await ClusterObjects.DeleteAsync(admin, o.ApiVersion, o.Kind, ns, o.Metadata.Name);
                Assert.False(await ClusterObjects.ExistsAsync(admin, o.ApiVersion, o.Kind, ns, o.Metadata.Name), $"{o.Kind}/{o.Metadata.Name} not deleted");
            }
        }

        await admin.CoreV1.DeleteNamespaceAsync(ns, cancellationToken: Ct);
    }

    private static (string Group, string Version, string Plural) Resource(IKubernetesObject<V1ObjectMeta> o) => o switch
    {
        ServiceMonitor => (ServiceMonitor.KubeGroup, ServiceMonitor.KubeApiVersion, ServiceMonitor.KubePluralName),
        PrometheusRule => (PrometheusRule.KubeGroup, PrometheusRule.KubeApiVersion, PrometheusRule.KubePluralName),
        ExternalSecret => (ExternalSecret.KubeGroup, ExternalSecret.KubeApiVersion, ExternalSecret.KubePluralName),
        SecretStore => (SecretStore.KubeGroup, SecretStore.KubeApiVersion, SecretStore.KubePluralName),
        _ => throw new ArgumentOutOfRangeException(nameof(o), o.Kind),
    };

    // A custom resource as the server stored it, strictly typed; what the chart rendered must have survived unchanged.
    private static async Task<T> ReadBackAsync<T>(IKubernetes admin, List<RenderedObject> rendered, string ns, string name)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        var entity = typeof(T).GetCustomAttributes(typeof(KubernetesEntityAttribute), false).Cast<KubernetesEntityAttribute>().Single();
        using var generic = new GenericClient(admin, entity.Group, entity.ApiVersion, entity.PluralName, disposeClient: false);
        var stored = await generic.ReadNamespacedAsync<T>(ns, name, Ct);
        var source = rendered.Single(o => o.Kind == entity.Kind && o.Name == name);
        StrictManifest.CompareStrict(source.Json, System.Text.Json.Nodes.JsonNode.Parse(KubernetesJson.Serialize(stored)), source.Key);
        return stored;
    }

    [Theory]
    [InlineData("defaults")]
    [InlineData("openvpn")]
    [InlineData("autoscaling")]
    [InlineData("vault")]
    [InlineData("nodeAffinity")]
    [InlineData("accessPolicy")]
    public async Task Builder_objects_are_accepted_by_the_api_server(string set)
    {
        var server = await KubeApiServer.GetAsync();
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("built");
        var settings = ValueSets.Get(set) with { Namespace = ns };
        // node ports are cluster-wide: the chart installs of the same value set (another test, maybe running at the
        // same time on the shared server) use the set's port, so the objects stored here take the next one
        if (settings.Service.NodePort is { } nodePort)
        {
            settings = settings with { Service = settings.Service with { NodePort = nodePort + 1 } };
        }

        var objects = GatewayManifestBuilder.Build(settings, KubernetesVersion.V1_20);

        // First a server-side dry run of everything (validation and admission, nothing stored) ...
        foreach (var o in objects)
        {
            await ClusterObjects.CreateAsync(admin, o, ns, dryRun: true);
        }

        Assert.Empty((await admin.AppsV1.ListNamespacedDeploymentAsync(ns, cancellationToken: Ct)).Items);

        // ... then for real, and what the server stored keeps the security context the builder set.
        foreach (var o in objects)
        {
            await ClusterObjects.CreateAsync(admin, o, ns, dryRun: false);
            Assert.True(await ClusterObjects.ExistsAsync(admin, o.ApiVersion, o.Kind, ns, o.Metadata.Name), $"{o.Kind}/{o.Metadata.Name} not stored");
        }

        var stored = await admin.AppsV1.ReadNamespacedDeploymentAsync(settings.Name, ns, cancellationToken: Ct);
        var sc = stored.Spec.Template.Spec.Containers[0].SecurityContext;
        Assert.True(sc.ReadOnlyRootFilesystem == true && sc.AllowPrivilegeEscalation == false && sc.RunAsNonRoot == true && sc.Privileged == false);
        Assert.Equal(["ALL"], sc.Capabilities.Drop);
    }

    [Fact]
    public async Task Emitted_policies_and_the_scaling_strategys_hpa_are_accepted()
    {
        var server = await KubeApiServer.GetAsync();
        using var admin = server.AdminClient();
        var ns = await server.CreateNamespaceAsync("emit");
        var policy = GatewayManifestBuilder.AccessPolicyOf(ValueSets.Get("accessPolicy") with { Namespace = ns });
        var emission = new KubernetesPolicyEmitter().Emit(policy);
        foreach (var p in emission.PlatformObjects.Cast<V1NetworkPolicy>())
        {
            await admin.NetworkingV1.CreateNamespacedNetworkPolicyAsync(p, ns, cancellationToken: Ct);
        }

        var stored = await admin.NetworkingV1.ListNamespacedNetworkPolicyAsync(ns, cancellationToken: Ct);
        Assert.Equal(emission.PlatformObjects.Count, stored.Items.Count);
        var gateway = stored.Items.Single(p => p.Metadata.Name == "vpn-gateway-gateway");
        Assert.Equal("198.51.100.0/24", gateway.Spec.Ingress[0].FromProperty[0].IpBlock.Cidr);

        var strategy = new ConnectionScalingStrategy(new ConnectionScalingOptions(), legacyAutoscalingApi: true);
        var hpa = (V2HorizontalPodAutoscaler)strategy.DescribeAutoscaler(new AutoscalerTarget("vpn-gateway", ns, "Deployment", "vpn-gateway")).PlatformObjects.Single();
        await ClusterObjects.CreateAsync(admin, hpa, ns, dryRun: false);
        var read = await admin.CustomObjects.GetNamespacedCustomObjectAsync("autoscaling", "v2beta2", ns, "horizontalpodautoscalers", "vpn-gateway", cancellationToken: Ct);
        var roundTrip = KubernetesJson.Deserialize<V2HorizontalPodAutoscaler>(KubernetesJson.Serialize(read));
        Assert.Equal(600, roundTrip.Spec.Behavior.ScaleDown.StabilizationWindowSeconds);
        Assert.Equal("cloudvpn_active_peers", roundTrip.Spec.Metrics[0].Pods.Metric.Name);

        // The current API versions do not exist on 1.20: what the fallback is for.
        var current = (V2HorizontalPodAutoscaler)new ConnectionScalingStrategy(new ConnectionScalingOptions()).DescribeAutoscaler(new AutoscalerTarget("other", ns, "Deployment", "vpn-gateway")).PlatformObjects.Single();
        var missing = await Assert.ThrowsAsync<HttpOperationException>(() => ClusterObjects.CreateAsync(admin, current, ns, dryRun: true));
        Assert.Equal(HttpStatusCode.NotFound, missing.Response.StatusCode);
    }

    [Fact]
    public async Task The_pod_security_namespace_is_accepted_with_its_labels()
    {
        var server = await KubeApiServer.GetAsync();
        using var admin = server.AdminClient();
        var name = $"psa-{Environment.ProcessId % 100000}";
        await admin.CoreV1.CreateNamespaceAsync(GatewayManifestBuilder.PodSecurityNamespace(name), cancellationToken: Ct);
        var stored = await admin.CoreV1.ReadNamespaceAsync(name, cancellationToken: Ct);
        Assert.Equal("privileged", stored.Metadata.Labels["pod-security.kubernetes.io/enforce"]);
        Assert.Equal("baseline", stored.Metadata.Labels["pod-security.kubernetes.io/warn"]);
        await admin.CoreV1.DeleteNamespaceAsync(name, cancellationToken: Ct);
        Assert.Throws<ArgumentException>(() => GatewayManifestBuilder.PodSecurityNamespace("Not_A_Label"));
    }

    private static async Task BindAsync(IKubernetes admin, string ns, string role, string user) =>
        await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = $"{role}-{user}" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = role },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns, cancellationToken: Ct);

    /// <summary>keys.kubernetesStore of the gateway's config file: namePrefix, storeLabel, keyId.</summary>
    private static (string NamePrefix, string StoreLabel, string KeyId) KubernetesStoreSettings(string configYaml)
    {
        var yaml = new YamlDotNet.RepresentationModel.YamlStream();
        yaml.Load(new StringReader(configYaml));
        var root = (YamlDotNet.RepresentationModel.YamlMappingNode)yaml.Documents[0].RootNode;
        var store = (YamlDotNet.RepresentationModel.YamlMappingNode)((YamlDotNet.RepresentationModel.YamlMappingNode)root["keys"])["kubernetesStore"];
        string Value(string key) => ((YamlDotNet.RepresentationModel.YamlScalarNode)store[key]).Value ?? string.Empty;
        return (Value("namePrefix"), Value("storeLabel"), Value("keyId"));
    }

    // RBAC changes reach the authorizer through an informer: retry a refused store call briefly.
    private static async Task<T> EventuallyPermittedAsync<T>(Func<Task<T>> call)
    {
        for (var i = 0; ; i++)
        {
            try
            {
                return await call();
            }
            catch (KeyStoreException e) when (e.Message.Contains("403", StringComparison.Ordinal) && i < 50)
            {
                await Task.Delay(100, Ct);
            }
        }
    }

    // RBAC changes reach the authorizer through an informer: retry a forbidden answer briefly.
    private static async Task<T> EventuallyAsync<T>(Func<Task<T>> call)
    {
        for (var i = 0; ; i++)
        {
            try
            {
                return await call();
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Forbidden && i < 50)
            {
                await Task.Delay(100, Ct);
            }
        }
    }

    private static async Task AssertForbiddenAsync(Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<HttpOperationException>(call);
        Assert.Equal(HttpStatusCode.Forbidden, e.Response.StatusCode);
    }
}
