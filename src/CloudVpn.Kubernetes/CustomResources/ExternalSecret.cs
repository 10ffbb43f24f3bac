using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.CustomResources;

/// <summary>
/// An External Secrets Operator ExternalSecret (<c>external-secrets.io/v1beta1</c>): a Secret kept in sync with a key
/// of an external store. Strict: an unknown field is a deserialization error.
/// </summary>
[KubernetesEntity(Group = KubeGroup, Kind = KubeKind, ApiVersion = KubeApiVersion, PluralName = KubePluralName)]
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecret : IKubernetesObject<V1ObjectMeta>
{
    /// <summary>API group.</summary>
    public const string KubeGroup = "external-secrets.io";

    /// <summary>Version within the group.</summary>
    public const string KubeApiVersion = "v1beta1";

    /// <summary>Kind.</summary>
    public const string KubeKind = "ExternalSecret";

    /// <summary>Resource name in URLs.</summary>
    public const string KubePluralName = "externalsecrets";

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

    /// <summary>Store, remote keys and the Secret they go to.</summary>
    [JsonPropertyName("spec")]
    public required ExternalSecretSpec Spec { get; set; }
}

/// <summary><c>spec</c> of an ExternalSecret.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretSpec
{
    /// <summary>How often the Secret is refreshed from the store (Go duration, for example 1h).</summary>
    [JsonPropertyName("refreshInterval")]
    public string? RefreshInterval { get; set; }

    /// <summary>The SecretStore or ClusterSecretStore to read from.</summary>
    [JsonPropertyName("secretStoreRef")]
    public required ExternalSecretStoreRef SecretStoreRef { get; set; }

    /// <summary>The Secret written.</summary>
    [JsonPropertyName("target")]
    public required ExternalSecretTarget Target { get; set; }

    /// <summary>Single values: Secret key from a remote key (and property).</summary>
    [JsonPropertyName("data")]
    public IList<ExternalSecretData>? Data { get; set; }

    /// <summary>Whole remote keys whose properties all become Secret keys.</summary>
    [JsonPropertyName("dataFrom")]
    public IList<ExternalSecretDataFromSource>? DataFrom { get; set; }
}

/// <summary>Reference to a SecretStore (namespaced) or a ClusterSecretStore.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretStoreRef
{
    /// <summary>Name of the store.</summary>
    [JsonPropertyName("name")]
    public required string Name { get; set; }

    /// <summary>SecretStore or ClusterSecretStore.</summary>
    [JsonPropertyName("kind")]
    public string? Kind { get; set; }
}

/// <summary>The Secret an ExternalSecret writes.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretTarget
{
    /// <summary>Name of the Secret; null: the ExternalSecret's name.</summary>
    [JsonPropertyName("name")]
    public string? Name { get; set; }

    /// <summary>Owner (the operator creates and owns the Secret), Orphan, Merge or None.</summary>
    [JsonPropertyName("creationPolicy")]
    public string? CreationPolicy { get; set; }

    /// <summary>Retain, Delete or Merge when the remote key is gone.</summary>
    [JsonPropertyName("deletionPolicy")]
    public string? DeletionPolicy { get; set; }

    /// <summary>Type and metadata of the Secret written (the fetched data as it is); null: an Opaque Secret.</summary>
    [JsonPropertyName("template")]
    public ExternalSecretTargetTemplate? Template { get; set; }
}

/// <summary>The shape of the Secret an ExternalSecret writes (ESO's target template; no data templating here).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretTargetTemplate
{
    /// <summary>The Secret's type (for CloudVpn's key store: cloudvpn.io/key).</summary>
    [JsonPropertyName("type")]
    public string? Type { get; set; }

    /// <summary>Labels and annotations of the Secret.</summary>
    [JsonPropertyName("metadata")]
    public ExternalSecretTemplateMetadata? Metadata { get; set; }
}

/// <summary>Labels and annotations an ExternalSecret puts on the Secret it writes.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretTemplateMetadata
{
    /// <summary>Labels.</summary>
    [JsonPropertyName("labels")]
    public IDictionary<string, string>? Labels { get; set; }

    /// <summary>Annotations.</summary>
    [JsonPropertyName("annotations")]
    public IDictionary<string, string>? Annotations { get; set; }
}

/// <summary>One Secret key taken from a remote key.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretData
{
    /// <summary>Key in the Secret.</summary>
    [JsonPropertyName("secretKey")]
    public required string SecretKey { get; set; }

    /// <summary>Where the value comes from.</summary>
    [JsonPropertyName("remoteRef")]
    public required ExternalSecretDataRemoteRef RemoteRef { get; set; }
}

/// <summary>A source of many Secret keys.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretDataFromSource
{
    /// <summary>Every property of one remote key.</summary>
    [JsonPropertyName("extract")]
    public ExternalSecretDataRemoteRef? Extract { get; set; }
}

/// <summary>A key (and optionally one property and version) in the external store.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ExternalSecretDataRemoteRef
{
    /// <summary>Key (path) in the store.</summary>
    [JsonPropertyName("key")]
    public required string Key { get; set; }

    /// <summary>One property of the key; null: all.</summary>
    [JsonPropertyName("property")]
    public string? Property { get; set; }

    /// <summary>Version of the key; null: the current one.</summary>
    [JsonPropertyName("version")]
    public string? Version { get; set; }

    /// <summary>How the operator decodes the fetched values (None, Base64, Base64URL, Auto); null: None.</summary>
    [JsonPropertyName("decodingStrategy")]
    public string? DecodingStrategy { get; set; }
}
