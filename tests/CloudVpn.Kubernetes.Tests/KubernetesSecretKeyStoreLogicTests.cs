using CloudVpn.KeyStores;
using CloudVpn.Kubernetes.KeyStores;
using k8s;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudVpn.Kubernetes.Tests;

/// <summary>The Kubernetes Secret store's logic without an API server.</summary>
public sealed class KubernetesSecretKeyStoreLogicTests
{
    [Theory]
    [InlineData("gateway", "cloudvpn-key-gateway")]
    [InlineData("psk-site-a", "cloudvpn-key-psk-site-a")]
    public void Ids_that_are_dns_labels_keep_their_name(string id, string expected) =>
        Assert.Equal(expected, SecretNames.ForKey("cloudvpn-key-", id));

    [Fact]
    public void Other_ids_get_a_slug_and_a_hash_so_that_they_never_collide()
    {
        var a = SecretNames.ForKey("cloudvpn-key-", "gw/Private");
        var b = SecretNames.ForKey("cloudvpn-key-", "gw-private");
        var c = SecretNames.ForKey("cloudvpn-key-", "gw/private");
        Assert.StartsWith("cloudvpn-key-gw-private-", a, StringComparison.Ordinal);
        Assert.Equal("cloudvpn-key-gw-private", b);
        Assert.NotEqual(a, c);
        Assert.All(new[] { a, b, c }, n => Assert.True(SecretNames.IsDnsLabel(n), n));
        var longId = new string('x', 150) + "/Y";
        var name = SecretNames.ForKey("cloudvpn-key-", longId);
        Assert.True(SecretNames.IsDnsLabel(name) && name.Length <= 63, name);
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("semi;colon")]
    public void Bad_ids_are_refused_naming_the_id(string id)
    {
        var ex = Assert.Throws<ArgumentException>(() => SecretNames.ForKey("p-", id));
        Assert.Contains($"'{id}'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_validation_lists_every_problem()
    {
        var errors = KubernetesSecretKeyStoreOptionsValidator.Collect("KeyStores:k8s", new KubernetesSecretKeyStoreOptions
        {
            Namespace = "Bad_NS",
            NamePrefix = "UPPER-",
            StoreLabel = "-x",
            MaxVersions = 0,
            WatchTimeout = TimeSpan.Zero,
            WatchMaxBackoff = TimeSpan.Zero,
        });
        Assert.Equal(6, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("KeyStores:k8s:Namespace: 'Bad_NS'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("KeyStores:k8s:NamePrefix:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("KeyStores:k8s:StoreLabel:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("KeyStores:k8s:MaxVersions:", StringComparison.Ordinal));
        Assert.Empty(KubernetesSecretKeyStoreOptionsValidator.Collect("x", new KubernetesSecretKeyStoreOptions { Namespace = "vpn" }));
    }

    [Fact]
    public void The_role_grants_exactly_the_six_verbs_on_core_secrets_and_nothing_else()
    {
        var role = KubernetesSecretKeyStoreRbac.Role("cloudvpn-keys", "vpn");
        var rule = Assert.Single(role.Rules);
        Assert.Equal([string.Empty], rule.ApiGroups);
        Assert.Equal(["secrets"], rule.Resources);
        Assert.Equal(["create", "delete", "get", "list", "update", "watch"], rule.Verbs.Order(StringComparer.Ordinal));
        Assert.Null(rule.ResourceNames);
        Assert.DoesNotContain("*", rule.Verbs);
        Assert.Equal("vpn", role.Metadata.NamespaceProperty);
        Assert.Equal(["get", "list", "watch"], KubernetesSecretKeyStoreRbac.Role("r", "vpn", readOnly: true).Rules[0].Verbs);

        var named = KubernetesSecretKeyStoreRbac.RoleForSecrets("r", "vpn", ["cloudvpn-key-gw"]).Rules.Single();
        Assert.Equal(["cloudvpn-key-gw"], named.ResourceNames);
        Assert.Equal(["get", "list", "update", "watch"], named.Verbs.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("update", KubernetesSecretKeyStoreRbac.RoleForSecrets("r", "vpn", ["x"], readOnly: true).Rules[0].Verbs);
        Assert.Throws<ArgumentException>(() => KubernetesSecretKeyStoreRbac.RoleForSecrets("r", "vpn", []));

        var yaml = KubernetesYaml.Serialize(KubernetesSecretKeyStoreRbac.Binding(role, KubernetesSecretKeyStoreRbac.ServiceAccount("gateway", "vpn")));
        Assert.Contains("kind: RoleBinding", yaml, StringComparison.Ordinal);
        Assert.Contains("kind: ServiceAccount", yaml, StringComparison.Ordinal);
    }

    [Fact]
    public void AddKubernetesSecretKeyStore_uses_the_registered_client_and_validates_at_start()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IKubernetes>(new k8s.Kubernetes(new KubernetesClientConfiguration { Host = "https://127.0.0.1:1" }));
        services.AddCloudVpn()
            .AddKubernetesSecretKeyStore(o => o.Namespace = "vpn")
            .AddKubernetesSecretKeyStore(o => o.Namespace = "NOT OK", name: "broken");
        using var provider = services.BuildServiceProvider();

        Assert.IsType<KubernetesSecretKeyStore>(provider.GetRequiredKeyedService<IKeyStore>("kubernetes"));
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptionsMonitor<KubernetesSecretKeyStoreOptions>>().Get("broken"));
        Assert.Contains(ex.Failures, f => f.Contains("Namespace", StringComparison.Ordinal));
    }
}
