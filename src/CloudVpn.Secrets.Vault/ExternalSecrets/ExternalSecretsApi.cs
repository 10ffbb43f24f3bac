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

    /// <summary>The Secret key that holds the key's bytes in the synced Secret.</summary>
    public const string DefaultSecretKey = "key";

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
    /// An ExternalSecret that keeps Secret <paramref name="targetSecretName"/> (key <paramref name="secretKey"/>) equal
    /// to the latest version of CloudVpn key <paramref name="keyId"/>, decoded to its raw bytes.
    /// </summary>
    public static ExternalSecret ExternalSecretFor(
        VaultKeyStoreOptions vault,
        SecretStore store,
        string keyId,
        string targetSecretName,
        string secretKey = DefaultSecretKey,
        TimeSpan? refreshInterval = null)
    {
        ArgumentNullException.ThrowIfNull(vault);
        ArgumentNullException.ThrowIfNull(store);
        var errors = new List<string>();
        if (!VaultPaths.IsValidPath(keyId ?? string.Empty, out var why))
        {
            errors.Add($"{nameof(keyId)}: '{keyId}' {why}.");
        }

        CheckName(errors, nameof(targetSecretName), targetSecretName);
        if (string.IsNullOrEmpty(secretKey) || !secretKey.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            errors.Add($"{nameof(secretKey)}: '{secretKey}' is not a valid Secret key (letters, digits, '-', '_', '.').");
        }

        var refresh = refreshInterval ?? TimeSpan.FromMinutes(1);
        if (refresh < TimeSpan.FromSeconds(1))
        {
            errors.Add($"{nameof(refreshInterval)}: {refresh} is below one second.");
        }

        ThrowIfAny(errors);
        var prefix = vault.PathPrefix.Trim('/');
        return new ExternalSecret
        {
            ApiVersion = store.ApiVersion,
            Metadata = new V1ObjectMeta { Name = targetSecretName, NamespaceProperty = store.Metadata.NamespaceProperty, Labels = Labels() },
            Spec = new ExternalSecretSpec
            {
                RefreshInterval = GoDuration(refresh),
                SecretStoreRef = new SecretStoreRef { Name = store.Metadata.Name, Kind = store.Kind },
                Target = new ExternalSecretTarget { Name = targetSecretName },
                Data =
                [
                    new ExternalSecretData
                    {
                        SecretKey = secretKey,
                        RemoteRef = new ExternalSecretRemoteRef
                        {
                            Key = prefix.Length == 0 ? keyId! : $"{prefix}/{keyId}",
                            Property = VaultKeyStore.ValueField,
                            DecodingStrategy = "Base64",
                        },
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

    private static void ThrowIfAny(List<string> errors)
    {
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, errors));
        }
    }
}
