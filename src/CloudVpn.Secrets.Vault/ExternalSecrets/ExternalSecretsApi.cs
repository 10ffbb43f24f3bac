using System.Globalization;
using k8s.Models;

namespace CloudVpn.Secrets.Vault.ExternalSecrets;

/// <summary>How the External Secrets Operator authenticates to Vault (its own identity, not the gateway's).</summary>
public abstract record ExternalSecretsVaultAuth
{
    private ExternalSecretsVaultAuth()
    {
    }

    /// <summary>Kubernetes auth as the service account <paramref name="ServiceAccountName"/> with Vault role <paramref name="Role"/>.</summary>
    public sealed record Kubernetes(string Role, string ServiceAccountName, string MountPath = "kubernetes") : ExternalSecretsVaultAuth;

    /// <summary>AppRole auth; the secret id is read from key <paramref name="SecretIdKey"/> of Secret <paramref name="SecretIdSecretName"/>.</summary>
    public sealed record AppRole(string RoleId, string SecretIdSecretName, string SecretIdKey = "secret-id", string MountPath = "approle") : ExternalSecretsVaultAuth;

    /// <summary>A token read from key <paramref name="Key"/> of Secret <paramref name="SecretName"/>.</summary>
    public sealed record Token(string SecretName, string Key = "token") : ExternalSecretsVaultAuth;
}

/// <summary>
/// Emits External Secrets Operator objects that copy CloudVpn keys from Vault into Kubernetes Secrets, for teams that
/// want the gateway to read only Kubernetes Secrets: a <see cref="SecretStore"/> pointing at the same KV mount as a
/// <see cref="VaultKeyStore"/>, and one <see cref="ExternalSecret"/> per key.
/// </summary>
public static class ExternalSecretsApi
{
    /// <summary>The ESO API version emitted by default (ESO 0.16 and later serve <c>external-secrets.io/v1</c>).</summary>
    public const string DefaultApiVersion = "external-secrets.io/v1";

    /// <summary>The type of the Secrets of the Kubernetes Secret key store (CloudVpn.Kubernetes).</summary>
    public const string KeySecretType = "cloudvpn.io/key";

    /// <summary>The label naming the Kubernetes Secret key store a Secret belongs to.</summary>
    public const string StoreLabelName = "cloudvpn.io/key-store";

    /// <summary>The annotation holding the key id in the Kubernetes Secret key store.</summary>
    public const string KeyIdAnnotation = "cloudvpn.io/key-id";

    /// <summary>A SecretStore for the Vault mount that <paramref name="vault"/> uses.</summary>
    public static SecretStore SecretStoreFor(VaultKeyStoreOptions vault, string name, string @namespace, ExternalSecretsVaultAuth auth, string apiVersion = DefaultApiVersion)
    {
        ArgumentNullException.ThrowIfNull(vault);
        ArgumentNullException.ThrowIfNull(auth);
        var errors = new List<string>();
        if (vault.Address is null)
        {
            errors.Add($"{nameof(vault)}.{nameof(vault.Address)}: is missing.");
        }

        CheckName(errors, nameof(name), name);
        CheckName(errors, nameof(@namespace), @namespace);
        switch (auth)
        {
            case ExternalSecretsVaultAuth.Kubernetes k:
                Require(errors, "auth.Role", k.Role);
                CheckName(errors, "auth.ServiceAccountName", k.ServiceAccountName);
                break;
            case ExternalSecretsVaultAuth.AppRole a:
                Require(errors, "auth.RoleId", a.RoleId);
                CheckName(errors, "auth.SecretIdSecretName", a.SecretIdSecretName);
                Require(errors, "auth.SecretIdKey", a.SecretIdKey);
                break;
            case ExternalSecretsVaultAuth.Token t:
                CheckName(errors, "auth.SecretName", t.SecretName);
                Require(errors, "auth.Key", t.Key);
                break;
        }

        ThrowIfAny(errors);
        var providerAuth = auth switch
        {
            ExternalSecretsVaultAuth.Kubernetes k => new VaultProviderAuth
            {
                Kubernetes = new VaultKubernetesAuth { MountPath = k.MountPath, Role = k.Role, ServiceAccountRef = new ServiceAccountSelector { Name = k.ServiceAccountName } },
            },
            ExternalSecretsVaultAuth.AppRole a => new VaultProviderAuth
            {
                AppRole = new VaultAppRoleAuth { Path = a.MountPath, RoleId = a.RoleId, SecretRef = new SecretKeySelector { Name = a.SecretIdSecretName, Key = a.SecretIdKey } },
            },
            ExternalSecretsVaultAuth.Token t => new VaultProviderAuth { TokenSecretRef = new SecretKeySelector { Name = t.SecretName, Key = t.Key } },
            _ => throw new ArgumentException($"Unknown auth {auth.GetType().Name}.", nameof(auth)),
        };

        return new SecretStore
        {
            ApiVersion = apiVersion,
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = @namespace, Labels = Labels() },
            Spec = new SecretStoreSpec
            {
                Provider = new SecretStoreProvider
                {
                    Vault = new VaultProvider
                    {
                        Server = vault.Address!.ToString().TrimEnd('/'),
                        Path = vault.MountPath.Trim('/'),
                        Version = "v2",
                        Namespace = string.IsNullOrEmpty(vault.Namespace) ? null : vault.Namespace,
                        Auth = providerAuth,
                    },
                },
            },
        };
    }

    /// <summary>
    /// An ExternalSecret that keeps a Secret in the Kubernetes Secret key store's layout equal to CloudVpn key
    /// <paramref name="keyId"/> of the Vault store: ESO extracts every property of the key's newest KV version
    /// (<c>value</c>, <c>v{N}</c>, <c>v{N-1}</c>, ... as <see cref="VaultKeyStore"/> writes them), base64-decodes each
    /// to the key's bytes and writes them as data keys of Secret <see cref="KubernetesKeyStoreTarget.SecretName"/>
    /// (type <c>cloudvpn.io/key</c>, label <c>cloudvpn.io/key-store</c>, annotation <c>cloudvpn.io/key-id</c>), all
    /// in one Secret write. The gateway reads it with a Kubernetes Secret key store opened with the target's store
    /// label and name prefix, as key <see cref="KubernetesKeyStoreTarget.KeyId"/>.
    /// </summary>
    public static ExternalSecret ExternalSecretFor(
        VaultKeyStoreOptions vault,
        SecretStore store,
        string keyId,
        KubernetesKeyStoreTarget target,
        TimeSpan? refreshInterval = null)
    {
        ArgumentNullException.ThrowIfNull(vault);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(target);
        var errors = new List<string>();
        if (!VaultPaths.IsValidPath(keyId ?? string.Empty, out var why))
        {
            errors.Add($"{nameof(keyId)}: '{keyId}' {why}.");
        }

        if (vault.VersionProperties < 2)
        {
            errors.Add($"{nameof(vault)}.{nameof(vault.VersionProperties)}: {vault.VersionProperties} writes fewer than two versions as properties; the Secret would miss the previous key during a rotation (use 2 or more).");
        }

        CheckName(errors, "target.SecretName (NamePrefix + KeyId)", target.SecretName);
        if (!IsLabelValue(target.StoreLabel))
        {
            errors.Add($"target.{nameof(target.StoreLabel)}: '{target.StoreLabel}' is not a valid label value (1 to 63 of letters, digits, '-', '_', '.', alphanumeric at both ends).");
        }

        var refresh = refreshInterval ?? TimeSpan.FromMinutes(1);
        if (refresh < TimeSpan.FromSeconds(1))
        {
            errors.Add($"{nameof(refreshInterval)}: {refresh} is below one second.");
        }

        ThrowIfAny(errors);

        // mount/prefix/id: ESO's Vault provider drops a leading "{store path}/" from the key and inserts "data" for KV
        // v2, so this reads {mount}/data/{prefix}/{id} whether or not the store names the mount.
        var mount = (store.Spec.Provider.Vault?.Path ?? vault.MountPath).Trim('/');
        var prefix = vault.PathPrefix.Trim('/');
        var remoteKey = string.Join('/', new[] { mount, prefix, keyId! }.Where(p => p.Length > 0));
        return new ExternalSecret
        {
            ApiVersion = store.ApiVersion,
            Metadata = new V1ObjectMeta { Name = target.SecretName, NamespaceProperty = store.Metadata.NamespaceProperty, Labels = Labels() },
            Spec = new ExternalSecretSpec
            {
                RefreshInterval = GoDuration(refresh),
                SecretStoreRef = new SecretStoreRef { Name = store.Metadata.Name, Kind = store.Kind },
                Target = new ExternalSecretTarget
                {
                    Name = target.SecretName,
                    Template = new ExternalSecretTargetTemplate
                    {
                        Type = KeySecretType,
                        Metadata = new ExternalSecretTemplateMetadata
                        {
                            Labels = new Dictionary<string, string>(StringComparer.Ordinal) { [StoreLabelName] = target.StoreLabel },
                            Annotations = new Dictionary<string, string>(StringComparer.Ordinal) { [KeyIdAnnotation] = target.KeyId },
                        },
                    },
                },
                DataFrom =
                [
                    new ExternalSecretDataFromSource
                    {
                        Extract = new ExternalSecretRemoteRef { Key = remoteKey, DecodingStrategy = "Base64" },
                    },
                ],
            },
        };
    }

    /// <summary>Formats a duration the way Go's <c>time.ParseDuration</c> reads it (<c>1h30m</c>, <c>45s</c>).</summary>
    internal static string GoDuration(TimeSpan t)
    {
        var parts = new List<string>();
        var hours = (long)t.TotalHours;
        if (hours > 0)
        {
            parts.Add(hours.ToString(CultureInfo.InvariantCulture) + "h");
        }

        if (t.Minutes > 0)
        {
            parts.Add(t.Minutes.ToString(CultureInfo.InvariantCulture) + "m");
        }

        if (t.Seconds > 0 || parts.Count == 0)
        {
            parts.Add(t.Seconds.ToString(CultureInfo.InvariantCulture) + "s");
        }

        return string.Concat(parts);
    }

    private static Dictionary<string, string> Labels() => new(StringComparer.Ordinal)
    {
        ["app.kubernetes.io/managed-by"] = "cloudvpn",
        ["app.kubernetes.io/part-of"] = "cloudvpn",
    };

    private static void Require(List<string> errors, string field, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            errors.Add($"{field}: is empty.");
        }
    }

    private static void CheckName(List<string> errors, string field, string? value)
    {
        // RFC 1123 DNS label as Kubernetes requires for these names
        if (string.IsNullOrEmpty(value) || value.Length > 63
            || !value.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
            || value[0] == '-' || value[^1] == '-')
        {
            errors.Add($"{field}: '{value}' is not a valid Kubernetes name (lower-case letters, digits and '-', at most 63, starting and ending alphanumeric).");
        }
    }

    private static bool IsLabelValue(string? value) =>
        !string.IsNullOrEmpty(value) && value.Length <= 63
        && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
        && char.IsAsciiLetterOrDigit(value[0]) && char.IsAsciiLetterOrDigit(value[^1]);

    private static void ThrowIfAny(List<string> errors)
    {
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, errors));
        }
    }
}

/// <summary>
/// Where the gateway's Kubernetes Secret key store (CloudVpn.Kubernetes) looks for a key: the store's label
/// (<c>cloudvpn.io/key-store</c>), its Secret name prefix and the key id. The id must make <see cref="SecretName"/> a DNS
/// label, which is the Secret name that store uses for it (the Helm chart uses no prefix and the Secret's name as id).
/// </summary>
/// <param name="KeyId">The key id the gateway reads (annotation <c>cloudvpn.io/key-id</c>).</param>
/// <param name="StoreLabel">The store label (<c>KubernetesSecretKeyStoreOptions.StoreLabel</c>, or the store's name).</param>
/// <param name="NamePrefix">The store's <c>NamePrefix</c> (default there <c>cloudvpn-key-</c>; the chart uses none).</param>
public sealed record KubernetesKeyStoreTarget(string KeyId, string StoreLabel, string NamePrefix = "")
{
    /// <summary>The Secret's name: <see cref="NamePrefix"/> + <see cref="KeyId"/>.</summary>
    public string SecretName => NamePrefix + KeyId;
}
