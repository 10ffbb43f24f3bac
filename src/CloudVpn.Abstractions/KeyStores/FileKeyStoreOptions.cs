using Microsoft.Extensions.Options;

namespace CloudVpn.KeyStores;

/// <summary>Settings of a <see cref="FileKeyStore"/>.</summary>
public sealed class FileKeyStoreOptions
{
    /// <summary>The folder holding the keys (created 0700 if missing). Must be an absolute path.</summary>
    public string Directory { get; set; } = string.Empty;

    /// <summary>How many versions of each key to keep (the newest ones); at least 1.</summary>
    public int MaxVersions { get; set; } = 10;

    /// <summary>How long a write waits for another process's lock before giving up.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often <see cref="IKeyStore.WatchAsync"/> looks for writes by other processes.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>Validates <see cref="FileKeyStoreOptions"/>, listing every problem at once.</summary>
internal sealed class FileKeyStoreOptionsValidator : IValidateOptions<FileKeyStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, FileKeyStoreOptions options)
    {
        var prefix = $"KeyStores:{name}";
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Directory))
        {
            errors.Add($"{prefix}:{nameof(options.Directory)}: is empty; give the folder that holds the keys.");
        }
        else if (!Path.IsPathFullyQualified(options.Directory))
        {
            errors.Add($"{prefix}:{nameof(options.Directory)}: '{options.Directory}' is not an absolute path.");
        }
        else if (File.Exists(options.Directory))
        {
            errors.Add($"{prefix}:{nameof(options.Directory)}: '{options.Directory}' is a file, not a folder.");
        }

        if (options.MaxVersions < 1)
        {
            errors.Add($"{prefix}:{nameof(options.MaxVersions)}: {options.MaxVersions} is below 1; at least the latest version must be kept.");
        }

        if (options.LockTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.LockTimeout)}: must be positive.");
        }

        if (options.PollInterval <= TimeSpan.Zero)
        {
            errors.Add($"{prefix}:{nameof(options.PollInterval)}: must be positive.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
