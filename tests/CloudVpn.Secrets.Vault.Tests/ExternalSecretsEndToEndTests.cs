using System.Text.Json.Nodes;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using CloudVpn.Kubernetes.KeyStores;
using CloudVpn.Secrets.Vault.ExternalSecrets;
using CloudVpn.Testing;
using k8s;
using k8s.Models;
using YamlDotNet.RepresentationModel;
using EsoExternalSecret = CloudVpn.Kubernetes.CustomResources.ExternalSecret;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>
/// A key published and rotated through <see cref="VaultKeyStore"/> (against <see cref="FakeVaultServer"/>) reaches the
/// gateway's <see cref="KubernetesSecretKeyStore"/> through External Secrets Operator (<see cref="FakeExternalSecretsOperator"/>,
/// a fake: ESO cannot run here) and a real API server: the ExternalSecret comes from the C# emitter and from the Helm
/// chart (<c>helm template</c>), each read through the strict <see cref="EsoExternalSecret"/> model; the gateway reads
/// under a read-only Role limited to its Secret.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ExternalSecretsEndToEndTests : IAsyncLifetime
{
    private const string EsoJwt = "eyJhbGciOiJSUzI1NiJ9.external-secrets.sig";
    private const string GatewayUser = "alice";
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private FakeVaultServer _vault = null!;

    public ValueTask InitializeAsync()
    {
        _vault = new FakeVaultServer();
        _vault.AddKubernetesRole("eso-reader", EsoJwt, TimeSpan.FromHours(1));
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _vault.DisposeAsync();
    }

    [Fact]
    public async Task A_rotation_in_vault_reaches_the_gateway_through_the_emitted_ExternalSecret()
    {
        var kube = await KubeApiServer.GetAsync();
        var ns = await kube.CreateNamespaceAsync("vault-eso");
        using var admin = kube.AdminClient();
        var vaultOptions = VaultOptions();
        var vaultStore = new VaultKeyStore(_http, vaultOptions);
        var store = ExternalSecretsApi.SecretStoreFor(vaultOptions, "cloudvpn-vault", ns, new ExternalSecretsVaultAuth.Kubernetes("eso-reader", "external-secrets"));
        var target = new KubernetesKeyStoreTarget("gateway", "vpn-gw", "cloudvpn-key-");
        var emitted = ExternalSecretsApi.ExternalSecretFor(vaultOptions, store, "gw/private", target);

        // The emitter's output goes through the strict model (an unknown field would throw here).
        var external = KubernetesJson.Deserialize<EsoExternalSecret>(KubernetesJson.Serialize(emitted));
        Assert.Equal("cloudvpn-key-gateway", external.Spec.Target.Name);

        var roleName = "gateway-keys";
        await admin.RbacAuthorizationV1.CreateNamespacedRoleAsync(KubernetesSecretKeyStoreRbac.RoleForSecrets(roleName, ns, [target.SecretName], readOnly: true), ns, cancellationToken: Ct);
        await BindToGatewayUserAsync(admin, ns, roleName);
        using var gatewayClient = kube.UserClient(GatewayUser);
        var storeOptions = new KubernetesSecretKeyStoreOptions { Namespace = ns, NamePrefix = target.NamePrefix, StoreLabel = target.StoreLabel };
        var gateway = new KubernetesSecretKeyStore(gatewayClient, storeOptions);

        // Published and rotated by the rotation loop's one-shot entry point (what a CronJob runs) over the Vault store.
        var rotation = new KeyRotationLoop(_ => vaultStore, [], new KeyRotationOptions { Keys = { new RotatedKey("gw/private", RotatedKeyKind.PrivateKey) }, Overlap = TimeSpan.Zero });
        await PublishRotateAndReadAsync(admin, ns, store, external, gateway, storeOptions, target.KeyId, async version =>
        {
            await rotation.RunOnceAsync(force: version > 1, Ct); // the first run creates the missing key once
            using var written = await vaultStore.GetAsync("gw/private", cancellationToken: Ct);
            Assert.Equal(version, written!.Version);
            return written.Value.ToArray();
        });
    }

    [Fact]
    public async Task A_rotation_in_vault_reaches_the_gateway_through_the_charts_ExternalSecret()
    {
        Prerequisite.Require(File.Exists(HelmPath), $"helm at {HelmPath} (run tests/prerequisites.d/helm.sh)");
        var kube = await KubeApiServer.GetAsync();
        var ns = await kube.CreateNamespaceAsync("vault-eso-chart");
        using var admin = kube.AdminClient();
        var vaultOptions = VaultOptions();
        var vaultStore = new VaultKeyStore(_http, vaultOptions);
        var store = ExternalSecretsApi.SecretStoreFor(vaultOptions, "cloudvpn-vault", ns, new ExternalSecretsVaultAuth.Kubernetes("eso-reader", "external-secrets"), apiVersion: "external-secrets.io/v1beta1");

        // The chart as a user installs it with keys.source=externalSecret; remoteKey is {mount}/{prefix}/{id}.
        var (exit, stdout, stderr) = Cmd.Run(
            HelmPath,
            $"template vpn-gateway {ChartDirectory} --namespace {ns} --kube-version 1.31.0 --api-versions external-secrets.io/v1beta1 "
            + "--set server.publicEndpoint=203.0.113.1:51820 --set keys.source=externalSecret "
            + "--set keys.externalSecret.secretStoreRef.name=cloudvpn-vault --set keys.externalSecret.remoteKey=secret/cloudvpn/gw/private",
            check: false,
            timeoutMs: 120_000);
        Assert.True(exit == 0, $"helm template failed: {stderr}");
        var objects = LoadManifest(stdout);
        var external = KubernetesJson.Deserialize<EsoExternalSecret>(objects.Single(o => o["kind"]!.GetValue<string>() == "ExternalSecret").ToJsonString());

        // The gateway opens the store with the settings the chart gives it, and runs under the chart's own Role.
        var config = objects.Single(o => o["kind"]!.GetValue<string>() == "ConfigMap" && o["data"]?["gateway.yaml"] is not null)["data"]!["gateway.yaml"]!.GetValue<string>();
        var keys = LoadManifest(config).Single()["keys"]!;
        var storeSettings = keys["kubernetesStore"]!;
        var keyId = storeSettings["keyId"]!.GetValue<string>();
        var role = KubernetesJson.Deserialize<V1Role>(objects.Single(o => o["kind"]!.GetValue<string>() == "Role" && o["metadata"]!["name"]!.GetValue<string>() == "vpn-gateway").ToJsonString());
        role.Metadata.NamespaceProperty = ns;
        await admin.RbacAuthorizationV1.CreateNamespacedRoleAsync(role, ns, cancellationToken: Ct);
        await BindToGatewayUserAsync(admin, ns, role.Metadata.Name);
        using var gatewayClient = kube.UserClient(GatewayUser);
        var storeOptions = new KubernetesSecretKeyStoreOptions
        {
            Namespace = ns,
            NamePrefix = storeSettings["namePrefix"]!.GetValue<string>(),
            StoreLabel = storeSettings["storeLabel"]!.GetValue<string>(),
        };
        var gateway = new KubernetesSecretKeyStore(gatewayClient, storeOptions);

        byte[][] material =
        [
            [.. Enumerable.Range(0, 32).Select(i => (byte)(i * 7))],
            [.. Enumerable.Range(0, 32).Select(i => (byte)(255 - i))],
            [0, 0, 0, 43, 47, 61, 255, 1], // bytes that are '+', '/', '=' in base64 and a NUL
        ];
        await PublishRotateAndReadAsync(admin, ns, store, external, gateway, storeOptions, keyId, async version =>
        {
            // the write step of a rotation: compare-and-swap on the version in force
            Assert.Equal(version, await vaultStore.PutAsync("gw/private", material[version - 1], expectedVersion: version - 1, Ct));
            return material[version - 1];
        });
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string HelmPath => Path.Combine(Environment.GetEnvironmentVariable("CLOUDVPN_CACHE") is { Length: > 0 } c ? c : "/var/cache/cloudvpn", "helm", "helm");

    private static string ChartDirectory
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "deploy", "helm", "cloudvpn-gateway");
                if (File.Exists(Path.Combine(candidate, "Chart.yaml")))
                {
                    return candidate;
                }
            }

            throw new InvalidOperationException("deploy/helm/cloudvpn-gateway not found above " + AppContext.BaseDirectory);
        }
    }

    private VaultKeyStoreOptions VaultOptions() => new()
    {
        Address = _vault.Address,
        Token = _vault.IssueToken(TimeSpan.FromHours(1)),
        MountPath = "secret",
        PathPrefix = "cloudvpn",
    };

    /// <summary>
    /// v1 published, synced, read; v2 written (<paramref name="writeVersion"/>), not seen before the operator's refresh,
    /// then synced and read as current with v1 as previous, byte-exact, and reported by a watch on the store's Secrets;
    /// v3: v1 leaves the Secret.
    /// </summary>
    private async Task PublishRotateAndReadAsync(
        IKubernetes admin, string ns, ExternalSecrets.SecretStore store, EsoExternalSecret external, KubernetesSecretKeyStore gateway, KubernetesSecretKeyStoreOptions watcherOptions, string gatewayKeyId, Func<int, Task<byte[]>> writeVersion)
    {
        var eso = new FakeExternalSecretsOperator(_http, admin, serviceAccount => serviceAccount == "external-secrets" ? EsoJwt : "unknown");

        var k1 = await writeVersion(1);
        var synced = await eso.SyncAsync(external, store, ns, Ct);
        Assert.Equal("cloudvpn.io/key", synced.Type);
        using (var current = await gateway.GetAsync(gatewayKeyId, cancellationToken: Ct))
        {
            Assert.NotNull(current);
            Assert.Equal(1, current.Version);
            Assert.Equal(k1, current.Value.ToArray());
        }

        var k2 = await writeVersion(2);
        Assert.NotEqual(k1, k2);

        // Until the operator refreshes, the gateway still sees version 1 only.
        using (var stale = await gateway.GetAsync(gatewayKeyId, cancellationToken: Ct))
        {
            Assert.Equal(1, stale!.Version);
        }

        // A watch over the store's label (as a follower watching every key would): a sentinel key written after it
        // starts proves the watch is past its baseline list, so the operator's write below must show up as a change.
        using var watch = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        watch.CancelAfter(TimeSpan.FromSeconds(60));
        var watcher = new KubernetesSecretKeyStore(admin, watcherOptions);
        var changes = watcher.WatchAsync(null, watch.Token).GetAsyncEnumerator(watch.Token);
        var first = changes.MoveNextAsync().AsTask();
        const string sentinel = "sentinel";
        await Eventually.HoldsAsync(
            async () =>
            {
                if (!first.IsCompleted)
                {
                    await watcher.PutAsync(sentinel, new byte[] { 1 }, cancellationToken: Ct);
                    await Task.WhenAny(first, Task.Delay(TimeSpan.FromMilliseconds(300), Ct));
                }

                return first.IsCompleted;
            },
            "the watch to report the sentinel key",
            timeoutMs: 30_000);
        Assert.True(await first);
        Assert.Equal(sentinel, changes.Current.Id);

        await eso.SyncAsync(external, store, ns, Ct);

        using (var current = await gateway.GetAsync(gatewayKeyId, cancellationToken: Ct))
        using (var previous = await gateway.GetAsync(gatewayKeyId, 1, Ct))
        {
            Assert.Equal(2, current!.Version);
            Assert.Equal(k2, current.Value.ToArray());
            Assert.Equal(1, previous!.Version);
            Assert.Equal(k1, previous.Value.ToArray());
        }

        Assert.Equal([1L, 2L], (await gateway.ListVersionsAsync(gatewayKeyId, Ct)).Select(v => v.Version));
        KeyStoreChange? seen = null;
        while (seen is null && await changes.MoveNextAsync())
        {
            seen = changes.Current.Id == gatewayKeyId ? changes.Current : null; // more sentinel versions may come first
        }

        Assert.Equal(new KeyStoreChange(gatewayKeyId, KeyStoreChangeKind.Written, 2), seen);
        await watch.CancelAsync();
        await changes.DisposeAsync();

        var k3 = await writeVersion(3);
        await eso.SyncAsync(external, store, ns, Ct);
        using (var current = await gateway.GetAsync(gatewayKeyId, cancellationToken: Ct))
        using (var previous = await gateway.GetAsync(gatewayKeyId, 2, Ct))
        {
            Assert.Equal(3, current!.Version);
            Assert.Equal(k3, current.Value.ToArray());
            Assert.Equal(k2, previous!.Value.ToArray());
        }

        Assert.Null(await gateway.GetAsync(gatewayKeyId, 1, Ct)); // the newest KV version carries two versions
        var secret = await admin.CoreV1.ReadNamespacedSecretAsync(external.Spec.Target.Name, ns, cancellationToken: Ct);
        Assert.Equal(["v2", "v3", VaultKeyStore.ValueField], secret.Data.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(3, eso.Writes);
    }

    private static async Task BindToGatewayUserAsync(IKubernetes admin, string ns, string roleName) =>
        await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(
            new V1RoleBinding
            {
                Metadata = new V1ObjectMeta { Name = roleName, NamespaceProperty = ns },
                RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = roleName },
                Subjects = [new Rbacv1Subject { Kind = "User", Name = GatewayUser, ApiGroup = "rbac.authorization.k8s.io" }],
            },
            ns,
            cancellationToken: Ct);

    /// <summary>Every document of a YAML stream as JSON (scalars as strings, which is what these manifests hold).</summary>
    internal static List<JsonObject> LoadManifest(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return [.. stream.Documents.Select(d => ToJson(d.RootNode)).OfType<JsonObject>()];
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode { Value: null or "~" or "null", Style: YamlDotNet.Core.ScalarStyle.Plain } => null,
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => null,
    };
}
