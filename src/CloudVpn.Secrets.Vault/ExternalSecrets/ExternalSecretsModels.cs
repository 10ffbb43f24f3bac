using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace CloudVpn.Secrets.Vault.ExternalSecrets;

/// <summary>An External Secrets Operator <c>SecretStore</c>: how ESO reaches a secret backend (here, Vault).</summary>
public sealed class SecretStore : IKubernetesObject<V1ObjectMeta>, ISpec<SecretStoreSpec>
{
    /// <summary>The object kind.</summary>
    public const string KubeKind = "SecretStore";

    /// <inheritdoc />
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = ExternalSecretsApi.DefaultApiVersion;

    /// <inheritdoc />
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KubeKind;

    /// <inheritdoc />
    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    /// <inheritdoc />
    [JsonPropertyName("spec")]
    public SecretStoreSpec Spec { get; set; } = new();
}

/// <summary>The spec of a <see cref="SecretStore"/>.</summary>
public sealed class SecretStoreSpec
{
    /// <summary>The backend; exactly one provider is set.</summary>
    [JsonPropertyName("provider")]
    public SecretStoreProvider Provider { get; set; } = new();
}

/// <summary>The provider of a <see cref="SecretStore"/>.</summary>
public sealed class SecretStoreProvider
{
    /// <summary>The HashiCorp Vault provider.</summary>
    [JsonPropertyName("vault")]
    public VaultProvider? Vault { get; set; }
}

/// <summary>ESO's Vault provider settings.</summary>
public sealed class VaultProvider
{
    /// <summary>Vault's address.</summary>
    [JsonPropertyName("server")]
    public string Server { get; set; } = string.Empty;

    /// <summary>The KV mount path.</summary>
    [JsonPropertyName("path")]
    public string? Path { get; set; }

    /// <summary>The KV engine version: <c>v2</c>.</summary>
    [JsonPropertyName("version")]
    public string Version { get; set; } = "v2";

    /// <summary>Vault Enterprise namespace.</summary>
    [JsonPropertyName("namespace")]
    public string? Namespace { get; set; }

    /// <summary>How ESO authenticates to Vault.</summary>
    [JsonPropertyName("auth")]
    public VaultProviderAuth Auth { get; set; } = new();
}

/// <summary>ESO's Vault authentication; exactly one member is set.</summary>
public sealed class VaultProviderAuth
{
    /// <summary>A token kept in a Kubernetes Secret.</summary>
    [JsonPropertyName("tokenSecretRef")]
    public SecretKeySelector? TokenSecretRef { get; set; }

    /// <summary>Kubernetes auth with a service account's token.</summary>
    [JsonPropertyName("kubernetes")]
    public VaultKubernetesAuth? Kubernetes { get; set; }

    /// <summary>AppRole auth with the secret id kept in a Kubernetes Secret.</summary>
    [JsonPropertyName("appRole")]
    public VaultAppRoleAuth? AppRole { get; set; }
}

/// <summary>ESO's Vault Kubernetes auth.</summary>
public sealed class VaultKubernetesAuth
{
    /// <summary>The auth mount path (default <c>kubernetes</c>).</summary>
    [JsonPropertyName("mountPath")]
    public string MountPath { get; set; } = "kubernetes";

    /// <summary>The Vault role.</summary>
    [JsonPropertyName("role")]
    public string Role { get; set; } = string.Empty;

    /// <summary>The service account whose token ESO presents.</summary>
    [JsonPropertyName("serviceAccountRef")]
    public ServiceAccountSelector? ServiceAccountRef { get; set; }
}

/// <summary>ESO's Vault AppRole auth.</summary>
public sealed class VaultAppRoleAuth
{
    /// <summary>The auth mount path (default <c>approle</c>).</summary>
    [JsonPropertyName("path")]
    public string Path { get; set; } = "approle";

    /// <summary>The role id.</summary>
    [JsonPropertyName("roleId")]
    public string RoleId { get; set; } = string.Empty;

    /// <summary>Where the secret id is kept.</summary>
    [JsonPropertyName("secretRef")]
    public SecretKeySelector SecretRef { get; set; } = new();
}

/// <summary>A key of a Kubernetes Secret.</summary>
public sealed class SecretKeySelector
{
    /// <summary>The Secret's name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    /// <summary>The key inside the Secret.</summary>
    [JsonPropertyName("key")]
    public string Key { get; set; } = string.Empty;
}

/// <summary>A service account by name.</summary>
public sealed class ServiceAccountSelector
{
    /// <summary>The service account's name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;
}

/// <summary>An External Secrets Operator <c>ExternalSecret</c>: which remote values ESO copies into which Kubernetes Secret.</summary>
public sealed class ExternalSecret : IKubernetesObject<V1ObjectMeta>, ISpec<ExternalSecretSpec>
{
    /// <summary>The object kind.</summary>
    public const string KubeKind = "ExternalSecret";

    /// <inheritdoc />
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = ExternalSecretsApi.DefaultApiVersion;

    /// <inheritdoc />
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KubeKind;

    /// <inheritdoc />
    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    /// <inheritdoc />
    [JsonPropertyName("spec")]
    public ExternalSecretSpec Spec { get; set; } = new();
}

/// <summary>The spec of an <see cref="ExternalSecret"/>.</summary>
public sealed class ExternalSecretSpec
{
    /// <summary>How often ESO re-reads the remote values, as a Go duration (<c>1m</c>).</summary>
    [JsonPropertyName("refreshInterval")]
    public string RefreshInterval { get; set; } = "1m";

    /// <summary>The store to read from.</summary>
    [JsonPropertyName("secretStoreRef")]
    public SecretStoreRef SecretStoreRef { get; set; } = new();

    /// <summary>The Kubernetes Secret ESO writes.</summary>
    [JsonPropertyName("target")]
    public ExternalSecretTarget Target { get; set; } = new();

    /// <summary>One entry per Secret key (single values); null: none.</summary>
    [JsonPropertyName("data")]
    public IList<ExternalSecretData>? Data { get; set; }

    /// <summary>Whole remote secrets whose properties all become Secret keys; null: none.</summary>
    [JsonPropertyName("dataFrom")]
    public IList<ExternalSecretDataFromSource>? DataFrom { get; set; }
}

/// <summary>A source of many Secret keys.</summary>
public sealed class ExternalSecretDataFromSource
{
    /// <summary>Every property of one remote secret becomes a Secret key of the same name.</summary>
    [JsonPropertyName("extract")]
    public ExternalSecretRemoteRef? Extract { get; set; }
}

/// <summary>A reference to a <see cref="SecretStore"/>.</summary>
public sealed class SecretStoreRef
{
    /// <summary>The store's name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    /// <summary><c>SecretStore</c> or <c>ClusterSecretStore</c>.</summary>
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = SecretStore.KubeKind;
}

/// <summary>The Kubernetes Secret an <see cref="ExternalSecret"/> writes.</summary>
public sealed class ExternalSecretTarget
{
    /// <summary>The Secret's name.</summary>
    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    /// <summary><c>Owner</c>: ESO creates the Secret and owns it (deleted with the ExternalSecret).</summary>
    [JsonPropertyName("creationPolicy")]
    public string CreationPolicy { get; set; } = "Owner";

    /// <summary><c>Retain</c>: keep the Secret when the remote value disappears (a gateway keeps its key).</summary>
    [JsonPropertyName("deletionPolicy")]
    public string DeletionPolicy { get; set; } = "Retain";

    /// <summary>Type, labels and annotations of the Secret written; null: an Opaque Secret with the ExternalSecret's metadata.</summary>
    [JsonPropertyName("template")]
    public ExternalSecretTargetTemplate? Template { get; set; }
}

/// <summary>The shape of the Secret an <see cref="ExternalSecret"/> writes. Without template data ESO writes the fetched data as it is.</summary>
public sealed class ExternalSecretTargetTemplate
{
    /// <summary>The Secret's type.</summary>
    [JsonPropertyName("type")]
    public string? Type { get; set; }

    /// <summary>Labels and annotations of the Secret.</summary>
    [JsonPropertyName("metadata")]
    public ExternalSecretTemplateMetadata? Metadata { get; set; }
}

/// <summary>Labels and annotations an <see cref="ExternalSecret"/> puts on the Secret it writes.</summary>
public sealed class ExternalSecretTemplateMetadata
{
    /// <summary>Labels.</summary>
    [JsonPropertyName("labels")]
    public IDictionary<string, string>? Labels { get; set; }

    /// <summary>Annotations.</summary>
    [JsonPropertyName("annotations")]
    public IDictionary<string, string>? Annotations { get; set; }
}

/// <summary>One Secret key and the remote value it comes from.</summary>
public sealed class ExternalSecretData
{
    /// <summary>The key in the Kubernetes Secret.</summary>
    [JsonPropertyName("secretKey")]
    public string SecretKey { get; set; } = string.Empty;

    /// <summary>Where the value comes from.</summary>
    [JsonPropertyName("remoteRef")]
    public ExternalSecretRemoteRef RemoteRef { get; set; } = new();
}

/// <summary>A value in the remote store.</summary>
public sealed class ExternalSecretRemoteRef
{
    /// <summary>The path of the secret inside the mount.</summary>
    [JsonPropertyName("key")]
    public string Key { get; set; } = string.Empty;

    /// <summary>The field of the secret's data.</summary>
    [JsonPropertyName("property")]
    public string? Property { get; set; }

    /// <summary>The KV version to read; null: the newest.</summary>
    [JsonPropertyName("version")]
    public string? Version { get; set; }

    /// <summary>How ESO decodes the value: <c>Base64</c> turns our base64 field back into the key's bytes.</summary>
    [JsonPropertyName("decodingStrategy")]
    public string? DecodingStrategy { get; set; }
}
