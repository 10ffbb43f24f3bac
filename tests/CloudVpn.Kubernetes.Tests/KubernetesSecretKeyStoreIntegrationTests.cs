using System.Net;
using CloudVpn.KeyStores;
using CloudVpn.Kubernetes.KeyStores;
using CloudVpn.Testing;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging.Testing;

namespace CloudVpn.Kubernetes.Tests;

/// <summary>The Kubernetes Secret key store against a real API server (v1.20, RBAC on) on loopback.</summary>
[Trait("Category", "Integration")]
public sealed class KubernetesSecretKeyStoreIntegrationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Create_read_versions_and_cas_conflicts()
    {
        var (kube, ns) = await SetupAsync("ks-crud");
        using var admin = kube.AdminClient();
        var store = new KubernetesSecretKeyStore(admin, new KubernetesSecretKeyStoreOptions { Namespace = ns, MaxVersions = 3 });

        Assert.Null(await store.GetAsync("gw/private", cancellationToken: Ct));
        Assert.Equal(1, await store.PutAsync("gw/private", new byte[] { 1, 2, 3 }, expectedVersion: 0, Ct));
        var conflict = await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("gw/private", new byte[] { 9 }, expectedVersion: 0, Ct));
        Assert.Equal(1, conflict.ActualVersion);
        for (byte i = 2; i <= 5; i++)
        {
            Assert.Equal(i, await store.PutAsync("gw/private", new[] { i }, expectedVersion: i - 1, Ct));
        }

        using var latest = await store.GetAsync("gw/private", cancellationToken: Ct);
        Assert.Equal(5, latest!.Version);
        Assert.Equal([5], latest.Value.ToArray());
        using var four = await store.GetAsync("gw/private", 4, Ct);
        Assert.Equal([4], four!.Value.ToArray());
        Assert.Null(await store.GetAsync("gw/private", 2, Ct)); // pruned: MaxVersions 3
        Assert.Equal([3L, 4L, 5L], (await store.ListVersionsAsync("gw/private", Ct)).Select(v => v.Version));

        // What is on the server: one typed, labelled Secret, data keys per version.
        var secret = await admin.CoreV1.ReadNamespacedSecretAsync(store.SecretNameFor("gw/private"), ns, cancellationToken: Ct);
        Assert.Equal(KubernetesSecretKeyStore.SecretType, secret.Type);
        Assert.Equal("cloudvpn", secret.Metadata.Labels[KubernetesSecretKeyStore.ManagedByLabel]);
        Assert.Equal("gw/private", secret.Metadata.Annotations[KubernetesSecretKeyStore.KeyIdAnnotation]);
        Assert.Equal(["v3", "v4", "v5"], secret.Data.Keys.Order(StringComparer.Ordinal));

        Assert.Equal(2, await store.PruneAsync("gw/private", keep: 1, Ct));
        Assert.Equal([5L], (await store.ListVersionsAsync("gw/private", Ct)).Select(v => v.Version));

        Assert.True(await store.DeleteAsync("gw/private", Ct));
        Assert.False(await store.DeleteAsync("gw/private", Ct));
        Assert.Null(await store.GetAsync("gw/private", cancellationToken: Ct));
    }

    [Fact]
    public async Task A_write_on_a_stale_resourceVersion_is_refused_by_the_server_and_becomes_a_conflict_or_a_retry()
    {
        var (kube, ns) = await SetupAsync("ks-cas");
        using var admin = kube.AdminClient();
        var options = new KubernetesSecretKeyStoreOptions { Namespace = ns };
        var store = new KubernetesSecretKeyStore(admin, options);
        var rival = new KubernetesSecretKeyStore(admin, options);
        await store.PutAsync("psk", new byte[] { 1 }, cancellationToken: Ct);

        // The rival writes after our read: our replace carries a stale resourceVersion; the API server answers 409.
        store.BetweenReadAndWrite = async ct => await rival.PutAsync("psk", new byte[] { 2 }, cancellationToken: ct);
        var conflict = await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("psk", new byte[] { 3 }, expectedVersion: 1, Ct));
        Assert.Equal(1, conflict.ExpectedVersion);
        Assert.Equal(2, conflict.ActualVersion);
        using (var now = await store.GetAsync("psk", cancellationToken: Ct))
        {
            Assert.Equal([2], now!.Value.ToArray());
        }

        // Without an expected version the store re-reads and writes on top: no lost update.
        store.BetweenReadAndWrite = async ct => await rival.PutAsync("psk", new byte[] { 4 }, cancellationToken: ct);
        Assert.Equal(4, await store.PutAsync("psk", new byte[] { 5 }, cancellationToken: Ct));
        using var three = await store.GetAsync("psk", 3, Ct);
        using var four = await store.GetAsync("psk", 4, Ct);
        Assert.Equal([4], three!.Value.ToArray());
        Assert.Equal([5], four!.Value.ToArray());
    }

    [Fact]
    public async Task Secrets_without_the_owner_labels_are_reported_and_left_untouched()
    {
        var (kube, ns) = await SetupAsync("ks-own");
        using var admin = kube.AdminClient();
        var store = new KubernetesSecretKeyStore(admin, new KubernetesSecretKeyStoreOptions { Namespace = ns });
        var foreign = new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = store.SecretNameFor("db"), NamespaceProperty = ns },
            Data = new Dictionary<string, byte[]> { ["password"] = "hunter2"u8.ToArray() },
        };
        await admin.CoreV1.CreateNamespacedSecretAsync(foreign, ns, cancellationToken: Ct);
        var before = await admin.CoreV1.ReadNamespacedSecretAsync(foreign.Metadata.Name, ns, cancellationToken: Ct);

        var read = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.GetAsync("db", cancellationToken: Ct));
        await Assert.ThrowsAsync<KeyStoreException>(async () => await store.PutAsync("db", new byte[] { 1 }, cancellationToken: Ct));
        await Assert.ThrowsAsync<KeyStoreException>(async () => await store.DeleteAsync("db", Ct));

        Assert.Contains("left untouched", read.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", read.Message, StringComparison.Ordinal);
        var after = await admin.CoreV1.ReadNamespacedSecretAsync(foreign.Metadata.Name, ns, cancellationToken: Ct);
        Assert.Equal(before.Metadata.ResourceVersion, after.Metadata.ResourceVersion);

        // A second store in the namespace (another label) does not see the first one's keys.
        var other = new KubernetesSecretKeyStore(admin, new KubernetesSecretKeyStoreOptions { Namespace = ns, NamePrefix = "other-" }, storeName: "other");
        await store.PutAsync("shared-id", new byte[] { 1 }, cancellationToken: Ct);
        Assert.Null(await other.GetAsync("shared-id", cancellationToken: Ct));
    }

    [Fact]
    public async Task Watch_sees_changes_across_a_restart_of_the_watch()
    {
        var (kube, ns) = await SetupAsync("ks-watch");
        using var admin = kube.AdminClient();
        var log = new FakeLogger<KubernetesSecretKeyStore>();
        var store = new KubernetesSecretKeyStore(admin, new KubernetesSecretKeyStoreOptions { Namespace = ns, WatchTimeout = TimeSpan.FromSeconds(2) }, logger: log);
        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        await using var watch = new WatchRecorder(store.WatchAsync(cancellationToken: Ct));

        await Task.Delay(500, Ct);
        await store.PutAsync("k", new byte[] { 2 }, cancellationToken: Ct);
        await watch.WaitForAsync(new KeyStoreChange("k", KeyStoreChangeKind.Written, 2));

        // The server ends each watch after 2 s; the store starts the next one from the last resourceVersion seen.
        var requests = store.WatchRequests;
        await WaitUntilAsync(() => store.WatchRequests > requests + 1);
        await store.PutAsync("k", new byte[] { 3 }, cancellationToken: Ct);
        await store.PutAsync("other", new byte[] { 1 }, cancellationToken: Ct);
        await watch.WaitForAsync(new KeyStoreChange("k", KeyStoreChangeKind.Written, 3));
        await watch.WaitForAsync(new KeyStoreChange("other", KeyStoreChangeKind.Written, 1));
        await store.DeleteAsync("k", Ct);
        await watch.WaitForAsync(new KeyStoreChange("k", KeyStoreChangeKind.Deleted, 0));

        Assert.DoesNotContain(new KeyStoreChange("k", KeyStoreChangeKind.Written, 1), watch.Seen);
        Assert.True(store.Relists == 0, string.Join(Environment.NewLine, log.Collector.GetSnapshot().Select(r => r.Message)));
    }

    [Fact]
    public async Task A_410_Gone_on_the_watch_makes_the_store_relist_and_report_what_it_missed()
    {
        // A fresh v1.20 server keeps at least 75 s of history in its watch cache, so a real 410 cannot be provoked in a
        // test of seconds. The first watch request is answered, on the wire, with the ERROR event the API server sends
        // for an expired resourceVersion; everything else goes to the real server.
        var (kube, ns) = await SetupAsync("ks-gone");
        var config = KubernetesClientConfiguration.BuildConfigFromConfigFile(kube.KubeconfigPath);
        using var client = new k8s.Kubernetes(config, new FirstWatchExpires());
        var log = new FakeLogger<KubernetesSecretKeyStore>();
        var store = new KubernetesSecretKeyStore(client, new KubernetesSecretKeyStoreOptions { Namespace = ns, WatchTimeout = TimeSpan.FromSeconds(30) }, logger: log);
        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);

        await using var watch = new WatchRecorder(store.WatchAsync("k", Ct));
        await WaitUntilAsync(() => store.WatchRequests >= 1);
        await store.PutAsync("k", new byte[] { 2 }, cancellationToken: Ct); // written while the watch is "gone"
        await watch.WaitForAsync(new KeyStoreChange("k", KeyStoreChangeKind.Written, 2));
        await store.PutAsync("k", new byte[] { 3 }, cancellationToken: Ct);
        await watch.WaitForAsync(new KeyStoreChange("k", KeyStoreChangeKind.Written, 3));

        Assert.True(store.Relists >= 1, string.Join(Environment.NewLine, log.Collector.GetSnapshot().Select(r => r.Message)));
        Assert.Contains(log.Collector.GetSnapshot(), r => r.Message.Contains("is gone (410)", StringComparison.Ordinal));
    }

    private sealed class FirstWatchExpires : DelegatingHandler
    {
        private int _watches;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri!.Query.Contains("watch=true", StringComparison.Ordinal) && Interlocked.Increment(ref _watches) == 1)
            {
                await Task.Delay(1000, cancellationToken); // a write lands in this gap
                return new HttpResponseMessage(HttpStatusCode.OK)
                {
                    RequestMessage = request,
                    Content = new StringContent(
                        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource version: 1 (1200)\",\"reason\":\"Expired\",\"code\":410}}\n"),
                };
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }

    [Fact]
    public async Task The_documented_Role_is_enough_for_every_store_operation_under_a_non_admin_user()
    {
        var (kube, ns) = await SetupAsync("ks-rbac");
        using var admin = kube.AdminClient();
        await BindAsync(admin, KubernetesSecretKeyStoreRbac.Role("cloudvpn-keys", ns), "alice");
        using var alice = kube.UserClient("alice");
        var store = new KubernetesSecretKeyStore(alice, new KubernetesSecretKeyStoreOptions { Namespace = ns, WatchTimeout = TimeSpan.FromSeconds(2) });

        await using var watch = new WatchRecorder(store.WatchAsync(cancellationToken: Ct));
        await Task.Delay(300, Ct);
        Assert.Equal(1, await store.PutAsync("gw", new byte[] { 1 }, expectedVersion: 0, Ct));
        Assert.Equal(2, await store.PutAsync("gw", new byte[] { 2 }, expectedVersion: 1, Ct));
        await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("gw", new byte[] { 3 }, expectedVersion: 1, Ct));
        using (var read = await store.GetAsync("gw", 1, Ct))
        {
            Assert.Equal([1], read!.Value.ToArray());
        }

        Assert.Equal(2, (await store.ListVersionsAsync("gw", Ct)).Count);
        await watch.WaitForAsync(new KeyStoreChange("gw", KeyStoreChangeKind.Written, 2));
        Assert.True(await store.DeleteAsync("gw", Ct));
        await watch.WaitForAsync(new KeyStoreChange("gw", KeyStoreChangeKind.Deleted, 0));
    }

    [Fact]
    public async Task The_documented_Role_is_minimal_writes_outside_it_are_refused_and_every_verb_is_needed()
    {
        var kube = await KubeApiServer.GetAsync();
        using var admin = kube.AdminClient();
        var ns = await kube.CreateNamespaceAsync("ks-min");
        var elsewhere = await kube.CreateNamespaceAsync("ks-else");
        await BindAsync(admin, KubernetesSecretKeyStoreRbac.Role("cloudvpn-keys", ns), "bob");
        using var bob = kube.UserClient("bob");

        // Outside the Role: another resource, another namespace, a verb it does not list.
        await AssertForbiddenAsync(() => bob.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "x" } }, ns, cancellationToken: Ct));
        await AssertForbiddenAsync(() => bob.CoreV1.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = "x" } }, elsewhere, cancellationToken: Ct));
        await AssertForbiddenAsync(() => bob.CoreV1.ListNamespacedSecretAsync(elsewhere, cancellationToken: Ct));
        await AssertForbiddenAsync(() => bob.CoreV1.DeleteCollectionNamespacedSecretAsync(ns, cancellationToken: Ct));
        await AssertForbiddenAsync(() => bob.RbacAuthorizationV1.CreateNamespacedRoleAsync(KubernetesSecretKeyStoreRbac.Role("escalate", ns), ns, cancellationToken: Ct));

        // Each verb of the Role is needed: without it, some store operation is refused (403 with a hint).
        var needs = new Dictionary<string, Func<KubernetesSecretKeyStore, Task>>
        {
            ["get"] = async s => await s.GetAsync("k", cancellationToken: Ct),
            ["create"] = async s => await s.PutAsync("new", new byte[] { 1 }, cancellationToken: Ct),
            ["update"] = async s => await s.PutAsync("k", new byte[] { 2 }, cancellationToken: Ct),
            ["delete"] = async s => await s.DeleteAsync("k", Ct),
        };
        foreach (var (verb, operation) in needs)
        {
            var space = await kube.CreateNamespaceAsync("ks-verb");
            await new KubernetesSecretKeyStore(admin, new KubernetesSecretKeyStoreOptions { Namespace = space }).PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
            await BindAsync(admin, KubernetesSecretKeyStoreRbac.RoleWithVerbs("partial", space, KubernetesSecretKeyStoreRbac.Verbs.Where(v => v != verb)), "carol");
            using var carol = kube.UserClient("carol");
            var store = new KubernetesSecretKeyStore(carol, new KubernetesSecretKeyStoreOptions { Namespace = space });
            var ex = await Assert.ThrowsAsync<KeyStoreException>(() => operation(store));
            Assert.Contains("403", ex.Message, StringComparison.Ordinal);
            Assert.Contains("KubernetesSecretKeyStoreRbac.Role", ex.Message, StringComparison.Ordinal);
        }

        // list and watch: without them the watch cannot start.
        foreach (var verb in new[] { "list", "watch" })
        {
            var space = await kube.CreateNamespaceAsync("ks-verb");
            await BindAsync(admin, KubernetesSecretKeyStoreRbac.RoleWithVerbs("partial", space, KubernetesSecretKeyStoreRbac.Verbs.Where(v => v != verb)), "dave");
            using var dave = kube.UserClient("dave");
            var call = verb == "list"
                ? dave.CoreV1.ListNamespacedSecretAsync(space, labelSelector: "app.kubernetes.io/managed-by=cloudvpn", cancellationToken: Ct)
                : ListWatchAsync(dave, space);
            await AssertForbiddenAsync(() => call);
        }
    }

    [Fact]
    public async Task A_Role_limited_to_the_key_Secrets_is_enough_to_read_rotate_and_watch_precreated_keys()
    {
        var (kube, ns) = await SetupAsync("ks-names");
        using var admin = kube.AdminClient();
        var options = new KubernetesSecretKeyStoreOptions { Namespace = ns, WatchTimeout = TimeSpan.FromSeconds(2) };
        var installer = new KubernetesSecretKeyStore(admin, options);
        await installer.PutAsync("gw/private", new byte[] { 1 }, cancellationToken: Ct); // created at install time
        await installer.PutAsync("other", new byte[] { 7 }, cancellationToken: Ct);
        await BindAsync(admin, KubernetesSecretKeyStoreRbac.RoleForSecrets("cloudvpn-key-gw", ns, [installer.SecretNameFor("gw/private")]), "dave");
        using var dave = kube.UserClient("dave");
        var store = new KubernetesSecretKeyStore(dave, options);

        await using var watch = new WatchRecorder(store.WatchAsync("gw/private", Ct));
        await Task.Delay(300, Ct);
        Assert.Equal(2, await store.PutAsync("gw/private", new byte[] { 2 }, expectedVersion: 1, Ct));
        await watch.WaitForAsync(new KeyStoreChange("gw/private", KeyStoreChangeKind.Written, 2));
        using (var read = await store.GetAsync("gw/private", cancellationToken: Ct))
        {
            Assert.Equal([2], read!.Value.ToArray());
        }

        // Everything else is out of reach: another key, a new key, deleting.
        var other = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.GetAsync("other", cancellationToken: Ct));
        Assert.Contains("403", other.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<KeyStoreException>(async () => await store.PutAsync("new", new byte[] { 1 }, cancellationToken: Ct));
        await Assert.ThrowsAsync<KeyStoreException>(async () => await store.DeleteAsync("gw/private", Ct));
    }

    private static async Task<(KubeApiServer Kube, string Namespace)> SetupAsync(string prefix)
    {
        var kube = await KubeApiServer.GetAsync();
        return (kube, await kube.CreateNamespaceAsync(prefix));
    }

    private static async Task BindAsync(IKubernetes admin, V1Role role, string user)
    {
        var ns = role.Metadata.NamespaceProperty;
        await admin.RbacAuthorizationV1.CreateNamespacedRoleAsync(role, ns, cancellationToken: Ct);
        await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(
            KubernetesSecretKeyStoreRbac.Binding(role, new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }),
            ns,
            cancellationToken: Ct);
    }

    private static async Task AssertForbiddenAsync<T>(Func<Task<T>> call)
    {
        var ex = await Assert.ThrowsAsync<HttpOperationException>(call);
        Assert.Equal(HttpStatusCode.Forbidden, ex.Response.StatusCode);
    }

    private static async Task<V1SecretList> ListWatchAsync(IKubernetes client, string ns)
    {
        using var response = await client.CoreV1.ListNamespacedSecretWithHttpMessagesAsync(ns, watch: true, timeoutSeconds: 1, cancellationToken: Ct);
        return response.Body;
    }

    private static Task WaitUntilAsync(Func<bool> condition, Func<string>? explain = null) =>
        Eventually.HoldsAsync(condition, "the condition", timeoutMs: 30_000, explain);
}
