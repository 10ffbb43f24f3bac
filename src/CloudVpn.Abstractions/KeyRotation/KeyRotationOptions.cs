using Microsoft.Extensions.Options;

namespace CloudVpn.KeyRotation;

/// <summary>What a rotated key is used as; decides how new key material is made.</summary>
public enum RotatedKeyKind
{
    /// <summary>A WireGuard preshared key: 32 random bytes, shared by both ends of a tunnel.</summary>
    PresharedKey,

    /// <summary>A Curve25519 private key (a gateway's own key): 32 random bytes, clamped.</summary>
    PrivateKey,
}

/// <summary>One key the rotation loop looks after.</summary>
/// <param name="KeyId">The key's id in its store.</param>
/// <param name="Kind">What the key is.</param>
/// <param name="Store">The key store's name; null for the default store.</param>
public sealed record RotatedKey(string KeyId, RotatedKeyKind Kind, string? Store = null);

/// <summary>Settings of the key rotation loop (configuration section <c>CloudVpn:KeyRotation</c>).</summary>
public sealed class KeyRotationOptions
{
    /// <summary>The keys to rotate.</summary>
    public IList<RotatedKey> Keys { get; } = [];

    /// <summary>The schedule: a key is rotated once its newest version is this old.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How long the previous version stays in force next to the new one before it is retired.</summary>
    public TimeSpan Overlap { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How many versions of each key are kept in the store (when the store can prune); at least 2 (new and previous).</summary>
    public int HistoryLength { get; set; } = 3;

    /// <summary>How often the loop looks at the keys.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The first pause after a failed step; doubles per failure up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The longest pause between retries of a failed step.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(10);
}

/// <summary>Validates <see cref="KeyRotationOptions"/>, listing every problem at once.</summary>
internal sealed class KeyRotationOptionsValidator : IValidateOptions<KeyRotationOptions>
{
    public ValidateOptionsResult Validate(string? name, KeyRotationOptions options)
    {
        var errors = Collect(options);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    internal static List<string> Collect(KeyRotationOptions options)
    {
        const string prefix = "CloudVpn:KeyRotation";
        var errors = new List<string>();
        if (options.Keys.Count == 0)
        {
            errors.Add($"{prefix}:{nameof(options.Keys)}: is empty; name at least one key to rotate.");
        }

        foreach (var group in options.Keys.GroupBy(k => (k.Store, k.KeyId)).Where(g => g.Count() > 1))
        {
            errors.Add($"{prefix}:{nameof(options.Keys)}: key '{group.Key.KeyId}' is listed {group.Count()} times.");
        }

        foreach (var key in options.Keys.Where(k => string.IsNullOrWhiteSpace(k.KeyId)))
        {
            errors.Add($"{prefix}:{nameof(options.Keys)}: a key has an empty id.");
        }

        if (options.Interval <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.Interval)}: must be positive.");
        }

        if (options.Overlap < TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.Overlap)}: must not be negative.");
        }
        else if (options.Overlap >= options.Interval && options.Interval > TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.Overlap)}: {options.Overlap} must be shorter than {nameof(options.Interval)} ({options.Interval}), or two rotations would overlap.");
        }

        if (options.HistoryLength < 2)
        {
            errors.Add($"{prefix}:{nameof(options.HistoryLength)}: {options.HistoryLength} is below 2; the previous version must survive the overlap.");
        }

        if (options.CheckInterval <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.CheckInterval)}: must be positive.");
        }

        if (options.RetryDelay <= TimeSpan.Zero || options.MaxRetryDelay < options.RetryDelay)
        {
            errors.Add($"{prefix}:{nameof(options.RetryDelay)}: must be positive and not above {nameof(options.MaxRetryDelay)}.");
        }

        return errors;
    }
}
