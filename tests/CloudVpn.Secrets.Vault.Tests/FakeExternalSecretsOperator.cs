using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using EsoExternalSecret = CloudVpn.Kubernetes.CustomResources.ExternalSecret;
using EsoRemoteRef = CloudVpn.Kubernetes.CustomResources.ExternalSecretDataRemoteRef;
using VaultSecretStore = CloudVpn.Secrets.Vault.ExternalSecrets.SecretStore;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>
/// A FAKE External Secrets Operator (ESO cannot run here): one reconcile of an ExternalSecret against a SecretStore
/// with the HashiCorp Vault provider (KV v2), reading over HTTP from <see cref="FakeVaultServer"/>, following ESO's
/// documented semantics for the fields CloudVpn uses, and refusing every other field rather than guessing:
/// <list type="bullet">
/// <item>Vault provider (https://external-secrets.io/latest/provider/hashicorp-vault/): <c>server</c>, <c>path</c> (the
/// KV mount; a key that starts with "{path}/" has it dropped, and for <c>version: v2</c> "data" goes after the mount),
/// <c>namespace</c> (X-Vault-Namespace), auth by <c>tokenSecretRef</c> or <c>kubernetes</c> (a service account token
/// posted to <c>auth/{mountPath}/login</c> with the role); <c>remoteRef.version</c> is KV v2's <c>?version=</c>;
/// a version without data (missing, deleted, destroyed) fails the sync and leaves the Secret as it was.</item>
/// <item>ExternalSecret (https://external-secrets.io/latest/api/externalsecret/): <c>dataFrom</c> entries first, in
/// order, then <c>data</c> entries, later keys replacing earlier ones; <c>dataFrom.extract</c> makes every property of
/// the secret's data a Secret key (strings as their bytes, other JSON values as their JSON text); <c>data</c> takes one
/// <c>remoteRef.property</c>, or the whole data as JSON without one.</item>
/// <item>Decoding (https://external-secrets.io/latest/guides/decoding-strategy/): <c>None</c> (default) keeps the value,
/// <c>Base64</c>/<c>Base64URL</c> decode it and fail the sync when it does not decode, <c>Auto</c> tries both and
/// falls back to <c>None</c>.</item>
/// <item>Target and template (https://external-secrets.io/latest/guides/templating/, https://external-secrets.io/latest/guides/ownership-deletion-policy/):
/// <c>target.name</c> (default: the ExternalSecret's name); <c>creationPolicy: Owner</c> (the default) creates the Secret
/// with an owner reference to the ExternalSecret and replaces its data on every sync; <c>template.type</c> and
/// <c>template.metadata</c> labels/annotations go on the Secret; a template without <c>data</c>/<c>templateFrom</c>
/// passes the fetched data through unchanged. ESO adds its annotation <c>reconcile.external-secrets.io/data-hash</c>.</item>
/// </list>
/// Not modelled: refresh scheduling (a test calls <see cref="SyncAsync"/> where ESO's refreshInterval would fire),
/// status conditions, templated data, generators, ClusterSecretStore, KV v1.
/// </summary>
internal sealed class FakeExternalSecretsOperator(HttpClient http, IKubernetes kubernetes, Func<string, string> serviceAccountToken)
{
    public const string DataHashAnnotation = "reconcile.external-secrets.io/data-hash";

    /// <summary>How many syncs wrote the Secret (created or replaced).</summary>
    public int Writes { get; private set; }

    /// <summary>
    /// One reconcile: reads every remote value the ExternalSecret names from Vault through <paramref name="store"/> and
    /// writes the target Secret in <paramref name="namespace"/>. Throws (and writes nothing) when any read fails.
    /// </summary>
    public async Task<V1Secret> SyncAsync(EsoExternalSecret external, VaultSecretStore store, string @namespace, CancellationToken cancellationToken)
    {
        var desired = await RenderAsync(external, store, @namespace, cancellationToken);
        V1Secret? existing;
        try
        {
            existing = await kubernetes.CoreV1.ReadNamespacedSecretAsync(desired.Metadata.Name, @namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            existing = null;
        }

        V1Secret written;
        if (existing is null)
        {
            written = await kubernetes.CoreV1.CreateNamespacedSecretAsync(desired, @namespace, cancellationToken: cancellationToken);
        }
        else
        {
            // Owner: the operator's object; its data is replaced as a whole (keys no longer fetched disappear).
            desired.Metadata.ResourceVersion = existing.Metadata.ResourceVersion;
            written = await kubernetes.CoreV1.ReplaceNamespacedSecretAsync(desired, desired.Metadata.Name, @namespace, cancellationToken: cancellationToken);
        }

        Writes++;
        return written;
    }

    /// <summary>The Secret one reconcile would write (nothing is written).</summary>
    public async Task<V1Secret> RenderAsync(EsoExternalSecret external, VaultSecretStore store, string @namespace, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(external);
        ArgumentNullException.ThrowIfNull(store);
        var spec = external.Spec;
        if (spec.SecretStoreRef.Name != store.Metadata.Name || (spec.SecretStoreRef.Kind ?? "SecretStore") != "SecretStore")
        {
            throw new NotSupportedException($"spec.secretStoreRef {spec.SecretStoreRef.Kind}/{spec.SecretStoreRef.Name} is not the store given ({store.Metadata.Name}).");
        }

        if (spec.Target.CreationPolicy is not (null or "Owner"))
        {
            throw new NotSupportedException($"spec.target.creationPolicy '{spec.Target.CreationPolicy}' is not modelled by the fake (only Owner).");
        }

        var vault = store.Spec.Provider.Vault ?? throw new NotSupportedException("only the Vault provider is modelled");
        if (vault.Version != "v2")
        {
            throw new NotSupportedException($"Vault KV '{vault.Version}' is not modelled (only v2).");
        }

        var token = await LoginAsync(vault, @namespace, cancellationToken);
        var data = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (source, index) in (spec.DataFrom ?? []).Select((s, i) => (s, i)))
        {
            var extract = source.Extract ?? throw new NotSupportedException($"spec.dataFrom[{index}]: only extract is modelled.");
            if (extract.Property is not null)
            {
                throw new NotSupportedException($"spec.dataFrom[{index}].extract.property is not modelled.");
            }

            var fields = await ReadKvAsync(vault, token, extract, cancellationToken);
            foreach (var (name, value) in fields)
            {
                data[name] = Decode(ValueBytes(value), extract.DecodingStrategy, $"spec.dataFrom[{index}].extract, property '{name}'");
            }
        }

        foreach (var (entry, index) in (spec.Data ?? []).Select((d, i) => (d, i)))
        {
            var fields = await ReadKvAsync(vault, token, entry.RemoteRef, cancellationToken);
            byte[] raw;
            if (entry.RemoteRef.Property is { } property)
            {
                raw = fields.TryGetPropertyValue(property, out var value) && value is not null
                    ? ValueBytes(value)
                    : throw new InvalidOperationException($"spec.data[{index}]: property '{property}' not found in '{entry.RemoteRef.Key}'.");
            }
            else
            {
                raw = Encoding.UTF8.GetBytes(fields.ToJsonString());
            }

            data[entry.SecretKey] = Decode(raw, entry.RemoteRef.DecodingStrategy, $"spec.data[{index}]");
        }

        var template = spec.Target.Template;
        var labels = new Dictionary<string, string>(template?.Metadata?.Labels ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        var annotations = new Dictionary<string, string>(template?.Metadata?.Annotations ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        if (labels.Values.Concat(annotations.Values).Any(v => v.Contains("{{", StringComparison.Ordinal)))
        {
            throw new NotSupportedException("templated labels or annotations are not modelled by the fake.");
        }

        if (template is null)
        {
            // Without a template ESO copies the ExternalSecret's own labels and annotations.
            labels = new Dictionary<string, string>(external.Metadata.Labels ?? new Dictionary<string, string>(), StringComparer.Ordinal);
            annotations = new Dictionary<string, string>(external.Metadata.Annotations ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        }

        annotations[DataHashAnnotation] = DataHash(data);
        return new V1Secret
        {
            ApiVersion = "v1",
            Kind = "Secret",
            Metadata = new V1ObjectMeta
            {
                Name = spec.Target.Name ?? external.Metadata.Name,
                NamespaceProperty = @namespace,
                Labels = labels,
                Annotations = annotations,
                OwnerReferences =
                [
                    new V1OwnerReference
                    {
                        ApiVersion = external.ApiVersion,
                        Kind = external.Kind,
                        Name = external.Metadata.Name,
                        Uid = external.Metadata.Uid ?? DeterministicUid(@namespace, external.Metadata.Name),
                        Controller = true,
                        BlockOwnerDeletion = true,
                    },
                ],
            },
            Type = template?.Type ?? "Opaque",
            Data = data,
        };
    }

    /// <summary>ESO's Vault path rule for KV v2: drop a leading "{mount}/" (and then "data/"), then "{mount}/data/{rest}".</summary>
    internal static string DataPath(string? mount, string key)
    {
        var rest = key;
        if (mount is { Length: > 0 } m)
        {
            if (rest.StartsWith(m + "/", StringComparison.Ordinal))
            {
                rest = rest[(m.Length + 1)..];
                if (rest.StartsWith("data/", StringComparison.Ordinal))
                {
                    rest = rest["data/".Length..];
                }
            }

            return $"{m}/data/{rest}";
        }

        // No mount in the store: the key's first segment is the mount.
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? rest : $"{rest[..slash]}/data/{rest[(slash + 1)..]}";
    }

    private async Task<string> LoginAsync(ExternalSecrets.VaultProvider vault, string @namespace, CancellationToken cancellationToken)
    {
        if (vault.Auth.TokenSecretRef is { } tokenRef)
        {
            var secret = await kubernetes.CoreV1.ReadNamespacedSecretAsync(tokenRef.Name, @namespace, cancellationToken: cancellationToken);
            return secret.Data is not null && secret.Data.TryGetValue(tokenRef.Key, out var t)
                ? Encoding.UTF8.GetString(t)
                : throw new InvalidOperationException($"tokenSecretRef: Secret {tokenRef.Name} has no key '{tokenRef.Key}'.");
        }

        if (vault.Auth.Kubernetes is { } k8sAuth)
        {
            var jwt = serviceAccountToken(k8sAuth.ServiceAccountRef?.Name ?? "external-secrets");
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(vault.Server.TrimEnd('/') + "/"), $"v1/auth/{k8sAuth.MountPath.Trim('/')}/login"))
            {
                Content = JsonContent.Create(new { role = k8sAuth.Role, jwt }),
            };
            AddNamespace(request, vault);
            using var response = await http.SendAsync(request, cancellationToken);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
            return response.IsSuccessStatusCode && body?["auth"]?["client_token"]?.GetValue<string>() is { } token
                ? token
                : throw new InvalidOperationException($"Vault Kubernetes login as role '{k8sAuth.Role}' failed: {(int)response.StatusCode} {body?["errors"]}");
        }

        throw new NotSupportedException("only tokenSecretRef and kubernetes auth are modelled by the fake.");
    }

    private async Task<JsonObject> ReadKvAsync(ExternalSecrets.VaultProvider vault, string token, EsoRemoteRef reference, CancellationToken cancellationToken)
    {
        var path = DataPath(vault.Path?.Trim('/'), reference.Key.Trim('/'));
        if (reference.Version is { } version)
        {
            path += "?version=" + Uri.EscapeDataString(version);
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(vault.Server.TrimEnd('/') + "/"), "v1/" + path));
        request.Headers.Add("X-Vault-Token", token);
        AddNamespace(request, vault);
        using var response = await http.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new InvalidOperationException($"Secret does not exist: {reference.Key} (version {reference.Version ?? "latest"})");
        }

        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"Vault answered {(int)response.StatusCode} for {path}: {text}");
        }

        return JsonNode.Parse(text)?["data"]?["data"] as JsonObject
            ?? throw new InvalidOperationException($"Secret does not exist: {reference.Key} (version {reference.Version ?? "latest"} has no data: deleted or destroyed)");
    }

    private static void AddNamespace(HttpRequestMessage request, ExternalSecrets.VaultProvider vault)
    {
        if (!string.IsNullOrEmpty(vault.Namespace))
        {
            request.Headers.Add("X-Vault-Namespace", vault.Namespace);
        }
    }

    private static byte[] ValueBytes(JsonNode? value) =>
        value is null ? "null"u8.ToArray() : value.GetValueKind() == JsonValueKind.String ? Encoding.UTF8.GetBytes(value.GetValue<string>()) : Encoding.UTF8.GetBytes(value.ToJsonString());

    private static byte[] Decode(byte[] raw, string? strategy, string where)
    {
        switch (strategy ?? "None")
        {
            case "None":
                return raw;
            case "Base64":
                return TryDecode(raw, urlSafe: false) ?? throw new InvalidOperationException($"{where}: decodingStrategy Base64: the value is not base64.");
            case "Base64URL":
                return TryDecode(raw, urlSafe: true) ?? throw new InvalidOperationException($"{where}: decodingStrategy Base64URL: the value is not base64url.");
            case "Auto":
                return TryDecode(raw, urlSafe: false) ?? TryDecode(raw, urlSafe: true) ?? raw;
            default:
                throw new NotSupportedException($"{where}: decodingStrategy '{strategy}' is not one of None, Base64, Base64URL, Auto.");
        }
    }

    private static byte[]? TryDecode(byte[] raw, bool urlSafe)
    {
        var text = Encoding.ASCII.GetString(raw);
        if (urlSafe)
        {
            if (text.Contains('+', StringComparison.Ordinal) || text.Contains('/', StringComparison.Ordinal))
            {
                return null;
            }

            text = text.Replace('-', '+').Replace('_', '/');
        }
        else if (text.Contains('-', StringComparison.Ordinal) || text.Contains('_', StringComparison.Ordinal))
        {
            return null;
        }

        var buffer = new byte[text.Length];
        return Convert.TryFromBase64String(text, buffer, out var written) ? buffer[..written] : null;
    }

    private static string DataHash(Dictionary<string, byte[]> data)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (key, value) in data.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes(key));
            hash.AppendData(value);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset())[..32];
    }

    private static string DeterministicUid(string @namespace, string name)
    {
        var bytes = SHA256.HashData(Encoding.UTF8.GetBytes(@namespace + "/" + name));
        return new Guid(bytes.AsSpan(0, 16)).ToString("D", CultureInfo.InvariantCulture);
    }
}
