using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.CustomResources;

/// <summary>
/// An External Secrets Operator SecretStore (<c>external-secrets.io/v1beta1</c>) with the HashiCorp Vault provider
/// (Kubernetes, AppRole or token auth): the store an <see cref="ExternalSecret"/> of the gateway reads its keys from. The chart does not
/// render one (the platform team owns the store); the model lets a controller create it. Strict: an unknown field is a
/// deserialization error.
/// </summary>
[KubernetesEntity(Group = KubeGroup, Kind = KubeKind, ApiVersion = KubeApiVersion, PluralName = KubePluralName)]
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStore : IKubernetesObject<V1ObjectMeta>
{
    /// <summary>API group.</summary>
    public const string KubeGroup = "external-secrets.io";

    /// <summary>Version within the group.</summary>
    public const string KubeApiVersion = "v1beta1";

    /// <summary>Kind.</summary>
    public const string KubeKind = "SecretStore";

    /// <summary>Resource name in URLs.</summary>
    public const string KubePluralName = "secretstores";

    /// <summary><c>external-secrets.io/v1beta1</c>.</summary>
    public const string GroupVersion = KubeGroup + "/" + KubeApiVersion;

    /// <inheritdoc />
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = GroupVersion;

    /// <inheritdoc />
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KubeKind;

    /// <inheritdoc />
    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    /// <summary>The provider.</summary>
    [JsonPropertyName("spec")]
    public required SecretStoreSpec Spec { get; set; }
}

/// <summary><c>spec</c> of a SecretStore.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreSpec
{
    /// <summary>The external store.</summary>
    [JsonPropertyName("provider")]
    public required SecretStoreProvider Provider { get; set; }
}

/// <summary>Provider of a SecretStore (only Vault is modelled).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreProvider
{
    /// <summary>HashiCorp Vault.</summary>
    [JsonPropertyName("vault")]
    public SecretStoreVaultProvider? Vault { get; set; }
}

/// <summary>The Vault provider.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreVaultProvider
{
    /// <summary>Vault address (https://host:8200).</summary>
    [JsonPropertyName("server")]
    public required string Server { get; set; }

    /// <summary>Mount path of the KV engine (for example secret).</summary>
    [JsonPropertyName("path")]
    public string? Path { get; set; }

    /// <summary>KV engine version: v1 or v2.</summary>
    [JsonPropertyName("version")]
    public string? Version { get; set; }

    /// <summary>Vault Enterprise namespace; null: none.</summary>
    [JsonPropertyName("namespace")]
    public string? Namespace { get; set; }

    /// <summary>How the operator logs in.</summary>
    [JsonPropertyName("auth")]
    public required SecretStoreVaultAuth Auth { get; set; }
}

/// <summary>Vault authentication of a SecretStore: Kubernetes, AppRole or a token kept in a Secret (one of them).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreVaultAuth
{
    /// <summary>Vault's Kubernetes auth method.</summary>
    [JsonPropertyName("kubernetes")]
    public SecretStoreVaultKubernetesAuth? Kubernetes { get; set; }

    /// <summary>Vault's AppRole auth method.</summary>
    [JsonPropertyName("appRole")]
    public SecretStoreVaultAppRoleAuth? AppRole { get; set; }

    /// <summary>A Vault token kept in a Secret of the store's namespace.</summary>
    [JsonPropertyName("tokenSecretRef")]
    public SecretStoreSecretKeyRef? TokenSecretRef { get; set; }
}

/// <summary>Vault AppRole auth: a role id and the secret id kept in a Secret.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreVaultAppRoleAuth
{
    /// <summary>Mount path of the auth method (default approle).</summary>
    [JsonPropertyName("path")]
    public required string Path { get; set; }

    /// <summary>The role id.</summary>
    [JsonPropertyName("roleId")]
    public string? RoleId { get; set; }

    /// <summary>Where the secret id is kept.</summary>
    [JsonPropertyName("secretRef")]
    public required SecretStoreSecretKeyRef SecretRef { get; set; }
}

/// <summary>One key of a Secret.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreSecretKeyRef
{
    /// <summary>Name of the Secret.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; set; }

    /// <summary>Key within the Secret.</summary>
    [JsonPropertyName("key")]
    public string? Key { get; set; }
}

/// <summary>Vault Kubernetes auth: a ServiceAccount's token is exchanged for a Vault token of a role.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreVaultKubernetesAuth
{
    /// <summary>Mount path of the auth method (default kubernetes).</summary>
    [JsonPropertyName("mountPath")]
    public required string MountPath { get; set; }

    /// <summary>Vault role.</summary>
    [JsonPropertyName("role")]
    public required string Role { get; set; }

    /// <summary>ServiceAccount whose token is used; null: the operator's own.</summary>
    [JsonPropertyName("serviceAccountRef")]
    public SecretStoreServiceAccountRef? ServiceAccountRef { get; set; }
}

/// <summary>A ServiceAccount by name.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class SecretStoreServiceAccountRef
{
    /// <summary>Name of the ServiceAccount.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; set; }
}
