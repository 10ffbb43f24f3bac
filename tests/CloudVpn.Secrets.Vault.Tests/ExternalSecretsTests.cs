using System.Text.Json.Nodes;
using CloudVpn.Secrets.Vault.ExternalSecrets;
using k8s;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>The External Secrets Operator objects: their shape as ESO's CRDs define it.</summary>
public sealed class ExternalSecretsTests
{
    private static readonly VaultKeyStoreOptions Vault = new()
    {
        Address = new Uri("https://vault.vault.svc:8200/"),
        MountPath = "kv",
        PathPrefix = "cloudvpn/prod",
        Namespace = "team-a",
        Token = "unused",
    };

    [Fact]
    public void SecretStore_with_kubernetes_auth_has_the_vault_provider_shape()
    {
        var store = ExternalSecretsApi.SecretStoreFor(Vault, "cloudvpn-vault", "vpn", new ExternalSecretsVaultAuth.Kubernetes("eso-reader", "external-secrets"));

        var json = JsonNode.Parse(KubernetesJson.Serialize(store))!;

        Assert.Equal("external-secrets.io/v1", json["apiVersion"]!.GetValue<string>());
        Assert.Equal("SecretStore", json["kind"]!.GetValue<string>());
        Assert.Equal("vpn", json["metadata"]!["namespace"]!.GetValue<string>());
        var vault = json["spec"]!["provider"]!["vault"]!;
        Assert.Equal("https://vault.vault.svc:8200", vault["server"]!.GetValue<string>());
        Assert.Equal("kv", vault["path"]!.GetValue<string>());
        Assert.Equal("v2", vault["version"]!.GetValue<string>());
        Assert.Equal("team-a", vault["namespace"]!.GetValue<string>());
        var auth = vault["auth"]!.AsObject();
        Assert.Equal(["kubernetes"], auth.Select(p => p.Key));
        Assert.Equal("kubernetes", auth["kubernetes"]!["mountPath"]!.GetValue<string>());
        Assert.Equal("eso-reader", auth["kubernetes"]!["role"]!.GetValue<string>());
        Assert.Equal("external-secrets", auth["kubernetes"]!["serviceAccountRef"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public void SecretStore_with_approle_and_token_auth_reference_secrets_not_values()
    {
        var approle = JsonNode.Parse(KubernetesJson.Serialize(
            ExternalSecretsApi.SecretStoreFor(Vault, "s", "vpn", new ExternalSecretsVaultAuth.AppRole("role-1", "eso-approle"))))!;
        var auth = approle["spec"]!["provider"]!["vault"]!["auth"]!.AsObject();
        Assert.Equal(["appRole"], auth.Select(p => p.Key));
        Assert.Equal("approle", auth["appRole"]!["path"]!.GetValue<string>());
        Assert.Equal("role-1", auth["appRole"]!["roleId"]!.GetValue<string>());
        Assert.Equal("eso-approle", auth["appRole"]!["secretRef"]!["name"]!.GetValue<string>());
        Assert.Equal("secret-id", auth["appRole"]!["secretRef"]!["key"]!.GetValue<string>());

        var token = JsonNode.Parse(KubernetesJson.Serialize(
            ExternalSecretsApi.SecretStoreFor(Vault, "s", "vpn", new ExternalSecretsVaultAuth.Token("vault-token"))))!;
        var tokenAuth = token["spec"]!["provider"]!["vault"]!["auth"]!.AsObject();
        Assert.Equal(["tokenSecretRef"], tokenAuth.Select(p => p.Key));
        Assert.Equal("vault-token", tokenAuth["tokenSecretRef"]!["name"]!.GetValue<string>());
        Assert.DoesNotContain("unused", KubernetesJson.Serialize(token), StringComparison.Ordinal);
    }

    [Fact]
    public void ExternalSecret_extracts_the_keys_versions_into_a_secret_in_the_kubernetes_key_store_layout()
    {
        var store = ExternalSecretsApi.SecretStoreFor(Vault, "cloudvpn-vault", "vpn", new ExternalSecretsVaultAuth.Kubernetes("r", "sa"));
        var external = ExternalSecretsApi.ExternalSecretFor(Vault, store, "gw/private", new KubernetesKeyStoreTarget("gateway", "vpn-gw", "cloudvpn-key-"), refreshInterval: TimeSpan.FromSeconds(90));

        var json = JsonNode.Parse(KubernetesJson.Serialize(external))!;

        Assert.Equal("external-secrets.io/v1", json["apiVersion"]!.GetValue<string>());
        Assert.Equal("ExternalSecret", json["kind"]!.GetValue<string>());
        Assert.Equal("vpn", json["metadata"]!["namespace"]!.GetValue<string>());
        var spec = json["spec"]!;
        Assert.Equal("1m30s", spec["refreshInterval"]!.GetValue<string>());
        Assert.Equal("cloudvpn-vault", spec["secretStoreRef"]!["name"]!.GetValue<string>());
        Assert.Equal("SecretStore", spec["secretStoreRef"]!["kind"]!.GetValue<string>());
        var target = spec["target"]!;
        Assert.Equal("cloudvpn-key-gateway", target["name"]!.GetValue<string>());
        Assert.Equal("Owner", target["creationPolicy"]!.GetValue<string>());
        Assert.Equal("cloudvpn.io/key", target["template"]!["type"]!.GetValue<string>());
        Assert.Equal("vpn-gw", target["template"]!["metadata"]!["labels"]!["cloudvpn.io/key-store"]!.GetValue<string>());
        Assert.Equal("gateway", target["template"]!["metadata"]!["annotations"]!["cloudvpn.io/key-id"]!.GetValue<string>());
        Assert.Null(target["template"]!["data"]); // no template data: ESO writes the extracted properties as they are
        Assert.Null(spec["data"]);
        var extract = Assert.Single(spec["dataFrom"]!.AsArray())!["extract"]!;
        // mount/prefix/id: ESO drops the store's mount from the key and reads {mount}/data/{prefix}/{id}.
        Assert.Equal("kv/cloudvpn/prod/gw/private", extract["key"]!.GetValue<string>());
        Assert.Null(extract["version"]); // always the newest KV version: it carries the previous key as a property
        Assert.Equal("Base64", extract["decodingStrategy"]!.GetValue<string>());
    }

    [Fact]
    public void Objects_round_trip_through_yaml()
    {
        var store = ExternalSecretsApi.SecretStoreFor(Vault, "cloudvpn-vault", "vpn", new ExternalSecretsVaultAuth.Kubernetes("r", "sa"), apiVersion: "external-secrets.io/v1beta1");
        var external = ExternalSecretsApi.ExternalSecretFor(Vault, store, "psk/site-a", new KubernetesKeyStoreTarget("psk-site-a", "gw"));

        var yaml = KubernetesYaml.Serialize(external);
        var back = KubernetesYaml.Deserialize<ExternalSecret>(yaml);

        Assert.Contains("apiVersion: external-secrets.io/v1beta1", yaml, StringComparison.Ordinal);
        Assert.Contains("decodingStrategy: Base64", yaml, StringComparison.Ordinal);
        Assert.Equal("kv/cloudvpn/prod/psk/site-a", back.Spec.DataFrom![0].Extract!.Key);
        Assert.Equal("psk-site-a", back.Spec.Target.Name);
        Assert.Equal("gw", back.Spec.Target.Template!.Metadata!.Labels!["cloudvpn.io/key-store"]);
        Assert.Equal("1m", back.Spec.RefreshInterval);
    }

    [Fact]
    public void Bad_input_names_every_field()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            ExternalSecretsApi.SecretStoreFor(Vault, "Bad_Name", "vpn", new ExternalSecretsVaultAuth.Kubernetes(string.Empty, "sa")));
        Assert.Contains("name: 'Bad_Name'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("auth.Role", ex.Message, StringComparison.Ordinal);

        var store = ExternalSecretsApi.SecretStoreFor(Vault, "s", "vpn", new ExternalSecretsVaultAuth.Token("t"));
        var ex2 = Assert.Throws<ArgumentException>(() => ExternalSecretsApi.ExternalSecretFor(Vault, store, "../x", new KubernetesKeyStoreTarget("Key/Id", "-bad"), TimeSpan.Zero));
        Assert.Contains("keyId: '../x'", ex2.Message, StringComparison.Ordinal);
        Assert.Contains("target.SecretName", ex2.Message, StringComparison.Ordinal);
        Assert.Contains("target.StoreLabel: '-bad'", ex2.Message, StringComparison.Ordinal);
        Assert.Contains("refreshInterval", ex2.Message, StringComparison.Ordinal);

        var single = new VaultKeyStoreOptions { Address = Vault.Address, Token = "unused", VersionProperties = 1 };
        var ex3 = Assert.Throws<ArgumentException>(() => ExternalSecretsApi.ExternalSecretFor(single, store, "gw", new KubernetesKeyStoreTarget("gw", "gw")));
        Assert.Contains("VersionProperties: 1", ex3.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_strict_models_of_CloudVpn_Kubernetes_accept_every_emitted_object()
    {
        ExternalSecretsVaultAuth[] auths = [new ExternalSecretsVaultAuth.Kubernetes("r", "sa"), new ExternalSecretsVaultAuth.AppRole("role-1", "approle"), new ExternalSecretsVaultAuth.Token("vault-token")];
        foreach (var auth in auths)
        {
            var store = ExternalSecretsApi.SecretStoreFor(Vault, "cloudvpn-vault", "vpn", auth);
            var strictStore = KubernetesJson.Deserialize<CloudVpn.Kubernetes.CustomResources.SecretStore>(KubernetesJson.Serialize(store));
            Assert.Equal("team-a", strictStore.Spec.Provider.Vault!.Namespace);
            Assert.Equal(KubernetesJson.Serialize(store), KubernetesJson.Serialize(strictStore));

            var external = ExternalSecretsApi.ExternalSecretFor(Vault, store, "gw/private", new KubernetesKeyStoreTarget("gateway", "gw"));
            var strict = KubernetesJson.Deserialize<CloudVpn.Kubernetes.CustomResources.ExternalSecret>(KubernetesJson.Serialize(external));
            Assert.Equal("kv/cloudvpn/prod/gw/private", strict.Spec.DataFrom!.Single().Extract!.Key);
            Assert.Equal("gateway", strict.Spec.Target.Template!.Metadata!.Annotations!["cloudvpn.io/key-id"]);
            Assert.Equal(KubernetesJson.Serialize(external), KubernetesJson.Serialize(strict));
        }

        // Strict indeed: a field the model does not know is refused.
        var json = JsonNode.Parse(KubernetesJson.Serialize(ExternalSecretsApi.ExternalSecretFor(Vault, ExternalSecretsApi.SecretStoreFor(Vault, "s", "vpn", auths[0]), "gw", new KubernetesKeyStoreTarget("gw", "gw"))))!;
        json["spec"]!["dataFrom"]![0]!["extract"]!["rewrite"] = "x";
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KubernetesJson.Deserialize<CloudVpn.Kubernetes.CustomResources.ExternalSecret>(json.ToJsonString()));
    }

    [Theory]
    [InlineData(90, "1m30s")]
    [InlineData(3600, "1h")]
    [InlineData(3661, "1h1m1s")]
    [InlineData(0, "0s")]
    [InlineData(172800, "48h")]
    public void Durations_are_in_go_syntax(int seconds, string expected) =>
        Assert.Equal(expected, ExternalSecretsApi.GoDuration(TimeSpan.FromSeconds(seconds)));
}
