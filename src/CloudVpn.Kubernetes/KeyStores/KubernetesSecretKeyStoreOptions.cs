using Microsoft.Extensions.Options;

namespace CloudVpn.Kubernetes.KeyStores;

/// <summary>Settings of a <see cref="KubernetesSecretKeyStore"/>.</summary>
public sealed class KubernetesSecretKeyStoreOptions
{
    /// <summary>The namespace holding the key Secrets (the gateway's own namespace, usually).</summary>
    public string Namespace { get; set; } = string.Empty;

    /// <summary>Prefix of the Secret names (<c>{prefix}{key id}</c>); a DNS label of at most 40 characters.</summary>
    public string NamePrefix { get; set; } = "cloudvpn-key-";

    /// <summary>
    /// The value of the <c>cloudvpn.io/key-store</c> label on the Secrets, so that two stores in one namespace
    /// never see each other's keys. Defaults to the store's registered name.
    /// </summary>
    public string? StoreLabel { get; set; }

    /// <summary>How many versions of each key a Secret keeps (the newest ones); at least 1.</summary>
    public int MaxVersions { get; set; } = 5;

    /// <summary>How long one watch request lasts before the API server ends it and the store starts a new one.</summary>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest pause between attempts after a failed watch (the pauses grow with jitter up to this).</summary>
    public TimeSpan WatchMaxBackoff { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>Validates <see cref="KubernetesSecretKeyStoreOptions"/>, listing every problem at once.</summary>
internal sealed class KubernetesSecretKeyStoreOptionsValidator : IValidateOptions<KubernetesSecretKeyStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, KubernetesSecretKeyStoreOptions options)
    {
        var errors = Collect($"KeyStores:{name}", options);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    internal static List<string> Collect(string prefix, KubernetesSecretKeyStoreOptions options)
    {
        var errors = new List<string>();
        if (!SecretNames.IsDnsLabel(options.Namespace))
        {
            errors.Add($"{prefix}:{nameof(options.Namespace)}: '{options.Namespace}' is not a namespace name (a DNS label: lower-case letters, digits, '-', at most 63).");
        }

        if (options.NamePrefix.Length > 40 || (options.NamePrefix.Length > 0 && !SecretNames.IsDnsLabel(options.NamePrefix.TrimEnd('-') + "x")))
        {
            errors.Add($"{prefix}:{nameof(options.NamePrefix)}: '{options.NamePrefix}' must be lower-case letters, digits and '-', start with a letter or digit, at most 40 characters.");
        }

        if (options.StoreLabel is { } label && !SecretNames.IsLabelValue(label))
        {
            errors.Add($"{prefix}:{nameof(options.StoreLabel)}: '{label}' is not a valid label value (letters, digits, '-', '_', '.', at most 63, alphanumeric at both ends).");
        }

        if (options.MaxVersions is < 1 or > 100)
        {
            errors.Add($"{prefix}:{nameof(options.MaxVersions)}: {options.MaxVersions} must be between 1 and 100 (a Secret holds at most 1 MiB).");
        }

        if (options.WatchTimeout < TimeSpan.FromSeconds(1))
        {
            errors.Add($"{prefix}:{nameof(options.WatchTimeout)}: {options.WatchTimeout} is below one second.");
        }

        if (options.WatchMaxBackoff <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.WatchMaxBackoff)}: must be positive.");
        }

        return errors;
    }
}
