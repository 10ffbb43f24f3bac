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
    public void ExternalSecret_syncs_the_keys_vault_path_into_a_secret_decoded_from_base64()
    {
        var store = ExternalSecretsApi.SecretStoreFor(Vault, "cloudvpn-vault", "vpn", new ExternalSecretsVaultAuth.Kubernetes("r", "sa"));
        var external = ExternalSecretsApi.ExternalSecretFor(Vault, store, "gw/private", "gateway-key", refreshInterval: TimeSpan.FromSeconds(90));

        var json = JsonNode.Parse(KubernetesJson.Serialize(external))!;

        Assert.Equal("external-secrets.io/v1", json["apiVersion"]!.GetValue<string>());
        Assert.Equal("ExternalSecret", json["kind"]!.GetValue<string>());
        Assert.Equal("vpn", json["metadata"]!["namespace"]!.GetValue<string>());
        var spec = json["spec"]!;
        Assert.Equal("1m30s", spec["refreshInterval"]!.GetValue<string>());
        Assert.Equal("cloudvpn-vault", spec["secretStoreRef"]!["name"]!.GetValue<string>());
        Assert.Equal("SecretStore", spec["secretStoreRef"]!["kind"]!.GetValue<string>());
        Assert.Equal("gateway-key", spec["target"]!["name"]!.GetValue<string>());
        Assert.Equal("Owner", spec["target"]!["creationPolicy"]!.GetValue<string>());
        var data = Assert.Single(spec["data"]!.AsArray())!;
        Assert.Equal("key", data["secretKey"]!.GetValue<string>());
        // ESO's key is the path inside the mount: our prefix plus the key id; the field is the store's value field.
        Assert.Equal("cloudvpn/prod/gw/private", data["remoteRef"]!["key"]!.GetValue<string>());
        Assert.Equal(VaultKeyStore.ValueField, data["remoteRef"]!["property"]!.GetValue<string>());
        Assert.Equal("Base64", data["remoteRef"]!["decodingStrategy"]!.GetValue<string>());
    }

    [Fact]
    public void Objects_round_trip_through_yaml()
    {
        var store = ExternalSecretsApi.SecretStoreFor(Vault, "cloudvpn-vault", "vpn", new ExternalSecretsVaultAuth.Kubernetes("r", "sa"), apiVersion: "external-secrets.io/v1beta1");
        var external = ExternalSecretsApi.ExternalSecretFor(Vault, store, "psk/site-a", "psk-site-a");

        var yaml = KubernetesYaml.Serialize(external);
        var back = KubernetesYaml.Deserialize<ExternalSecret>(yaml);

        Assert.Contains("apiVersion: external-secrets.io/v1beta1", yaml, StringComparison.Ordinal);
        Assert.Contains("decodingStrategy: Base64", yaml, StringComparison.Ordinal);
        Assert.Equal("cloudvpn/prod/psk/site-a", back.Spec.Data[0].RemoteRef.Key);
        Assert.Equal("psk-site-a", back.Spec.Target.Name);
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
        var ex2 = Assert.Throws<ArgumentException>(() => ExternalSecretsApi.ExternalSecretFor(Vault, store, "../x", "target", "bad key"));
        Assert.Contains("keyId", ex2.Message, StringComparison.Ordinal);
        Assert.Contains("secretKey", ex2.Message, StringComparison.Ordinal);
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
