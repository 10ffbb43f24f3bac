using Microsoft.Extensions.Options;

namespace CloudVpn.Secrets.Vault;

/// <summary>How the Vault key store proves who it is.</summary>
public enum VaultAuthMethod
{
    /// <summary>A Vault token given in <see cref="VaultKeyStoreOptions.Token"/> (or read from <see cref="VaultKeyStoreOptions.TokenPath"/>).</summary>
    Token,

    /// <summary>Kubernetes auth: the pod's service-account JWT exchanged for a token at <c>auth/{mount}/login</c>.</summary>
    Kubernetes,

    /// <summary>AppRole auth: a role id and secret id exchanged for a token at <c>auth/{mount}/login</c>.</summary>
    AppRole,
}

/// <summary>Settings of a <see cref="VaultKeyStore"/> (named options, one per registered store).</summary>
public sealed class VaultKeyStoreOptions
{
    /// <summary>Vault's address, for example <c>https://vault.vault.svc:8200</c>.</summary>
    public Uri? Address { get; set; }

    /// <summary>Where the KV version 2 secrets engine is mounted (default <c>secret</c>).</summary>
    public string MountPath { get; set; } = "secret";

    /// <summary>Folder inside the mount that holds CloudVpn's keys (default <c>cloudvpn</c>); empty for the mount root.</summary>
    public string PathPrefix { get; set; } = "cloudvpn";

    /// <summary>Vault Enterprise namespace sent as <c>X-Vault-Namespace</c>; null for none.</summary>
    public string? Namespace { get; set; }

    /// <summary>The authentication method.</summary>
    public VaultAuthMethod AuthMethod { get; set; } = VaultAuthMethod.Token;

    /// <summary>The token for <see cref="VaultAuthMethod.Token"/>. Never logged.</summary>
    public string? Token { get; set; }

    /// <summary>A file holding the token for <see cref="VaultAuthMethod.Token"/> (read at each login), instead of <see cref="Token"/>.</summary>
    public string? TokenPath { get; set; }

    /// <summary>Mount path of the auth method (default <c>kubernetes</c> or <c>approle</c> by method).</summary>
    public string? AuthMountPath { get; set; }

    /// <summary>The Vault role for <see cref="VaultAuthMethod.Kubernetes"/>.</summary>
    public string? KubernetesRole { get; set; }

    /// <summary>The service-account token file for <see cref="VaultAuthMethod.Kubernetes"/>.</summary>
    public string KubernetesJwtPath { get; set; } = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    /// <summary>The role id for <see cref="VaultAuthMethod.AppRole"/>.</summary>
    public string? AppRoleRoleId { get; set; }

    /// <summary>The secret id for <see cref="VaultAuthMethod.AppRole"/>. Never logged.</summary>
    public string? AppRoleSecretId { get; set; }

    /// <summary>A file holding the AppRole secret id, instead of <see cref="AppRoleSecretId"/>.</summary>
    public string? AppRoleSecretIdPath { get; set; }

    /// <summary>
    /// Fraction of a token's lease after which it is renewed (default 2/3): a token with a one-hour lease is renewed
    /// after 40 minutes, long before it expires.
    /// </summary>
    public double RenewAfterFraction { get; set; } = 2.0 / 3.0;

    /// <summary>How long one HTTP attempt may take before it counts as timed out and is retried.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How many times a timed-out or 5xx request is retried (never a 4xx).</summary>
    public int MaxRetries { get; set; } = 4;

    /// <summary>The first retry delay; later ones grow exponentially, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How often <see cref="VaultKeyStore.WatchAsync"/> polls the metadata of the watched keys.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Versions Vault keeps per key (sets the key's <c>max_versions</c> on first write); 0 keeps the mount's setting.</summary>
    public int MaxVersions { get; set; } = 10;

    /// <summary>
    /// How many of the newest key versions each KV version also carries as properties <c>v{N}</c> (base64, next to
    /// <c>value</c>), default 2 (the version written and the one before): External Secrets Operator's
    /// <c>dataFrom.extract</c> of the key then yields a Secret in the Kubernetes Secret key store's layout
    /// (<c>v1</c>, <c>v2</c>, ...). 0 writes <c>value</c> only. Details: docs/keys.md.
    /// </summary>
    public int VersionProperties { get; set; } = 2;
}

/// <summary>Validates <see cref="VaultKeyStoreOptions"/>, listing every problem at once.</summary>
internal sealed class VaultKeyStoreOptionsValidator : IValidateOptions<VaultKeyStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, VaultKeyStoreOptions options)
    {
        var errors = Collect($"KeyStores:{name}", options);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    internal static List<string> Collect(string prefix, VaultKeyStoreOptions options)
    {
        var errors = new List<string>();
        if (options.Address is null)
        {
            errors.Add($"{prefix}:{nameof(options.Address)}: is missing; give Vault's address, for example https://vault:8200.");
        }
        else if (!options.Address.IsAbsoluteUri || (options.Address.Scheme != Uri.UriSchemeHttps && options.Address.Scheme != Uri.UriSchemeHttp))
        {
            errors.Add($"{prefix}:{nameof(options.Address)}: '{options.Address}' is not an absolute http(s) address.");
        }
        else if (!string.IsNullOrEmpty(options.Address.Query) || !string.IsNullOrEmpty(options.Address.Fragment))
        {
            errors.Add($"{prefix}:{nameof(options.Address)}: '{options.Address}' must not carry a query or fragment.");
        }

        CheckPath(errors, prefix, nameof(options.MountPath), options.MountPath, allowEmpty: false);
        CheckPath(errors, prefix, nameof(options.PathPrefix), options.PathPrefix, allowEmpty: true);
        if (options.AuthMountPath is not null)
        {
            CheckPath(errors, prefix, nameof(options.AuthMountPath), options.AuthMountPath, allowEmpty: false);
        }

        switch (options.AuthMethod)
        {
            case VaultAuthMethod.Token:
                if (string.IsNullOrWhiteSpace(options.Token) == string.IsNullOrWhiteSpace(options.TokenPath))
                {
                    errors.Add($"{prefix}:{nameof(options.Token)}: token auth needs exactly one of {nameof(options.Token)} or {nameof(options.TokenPath)}.");
                }

                break;
            case VaultAuthMethod.Kubernetes:
                if (string.IsNullOrWhiteSpace(options.KubernetesRole))
                {
                    errors.Add($"{prefix}:{nameof(options.KubernetesRole)}: Kubernetes auth needs the Vault role to log in as.");
                }

                if (string.IsNullOrWhiteSpace(options.KubernetesJwtPath))
                {
                    errors.Add($"{prefix}:{nameof(options.KubernetesJwtPath)}: Kubernetes auth needs the service-account token file.");
                }

                break;
            case VaultAuthMethod.AppRole:
                if (string.IsNullOrWhiteSpace(options.AppRoleRoleId))
                {
                    errors.Add($"{prefix}:{nameof(options.AppRoleRoleId)}: AppRole auth needs the role id.");
                }

                if (string.IsNullOrWhiteSpace(options.AppRoleSecretId) == string.IsNullOrWhiteSpace(options.AppRoleSecretIdPath))
                {
                    errors.Add($"{prefix}:{nameof(options.AppRoleSecretId)}: AppRole auth needs exactly one of {nameof(options.AppRoleSecretId)} or {nameof(options.AppRoleSecretIdPath)}.");
                }

                break;
            default:
                errors.Add($"{prefix}:{nameof(options.AuthMethod)}: '{options.AuthMethod}' is not one of Token, Kubernetes, AppRole.");
                break;
        }

        if (!(options.RenewAfterFraction > 0 && options.RenewAfterFraction < 1))
        {
            errors.Add($"{prefix}:{nameof(options.RenewAfterFraction)}: {options.RenewAfterFraction} must be between 0 and 1 (exclusive).");
        }

        if (options.AttemptTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.AttemptTimeout)}: must be positive.");
        }

        if (options.MaxRetries is < 0 or > 20)
        {
            errors.Add($"{prefix}:{nameof(options.MaxRetries)}: {options.MaxRetries} must be between 0 and 20.");
        }

        if (options.RetryBaseDelay <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.RetryBaseDelay)}: must be positive.");
        }

        if (options.PollInterval <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.PollInterval)}: must be positive.");
        }

        if (options.MaxVersions < 0)
        {
            errors.Add($"{prefix}:{nameof(options.MaxVersions)}: {options.MaxVersions} must be 0 (mount default) or more.");
        }

        if (options.VersionProperties is < 0 or > 10)
        {
            errors.Add($"{prefix}:{nameof(options.VersionProperties)}: {options.VersionProperties} must be between 0 and 10 (each version read before a write costs one request).");
        }

        return errors;
    }

    private static void CheckPath(List<string> errors, string prefix, string field, string? value, bool allowEmpty)
    {
        if (string.IsNullOrEmpty(value))
        {
            if (!allowEmpty)
            {
                errors.Add($"{prefix}:{field}: is empty.");
            }

            return;
        }

        if (!VaultPaths.IsValidPath(value.Trim('/'), out var why))
        {
            errors.Add($"{prefix}:{field}: '{value}' {why}.");
        }
    }
}
