using Microsoft.Extensions.Options;

namespace CloudVpn;

/// <summary>Validates <see cref="CloudVpnOptions"/>, reporting every problem at once.</summary>
internal sealed class CloudVpnOptionsValidator(CloudVpnRegistry registry) : IValidateOptions<CloudVpnOptions>
{
    public ValidateOptionsResult Validate(string? name, CloudVpnOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Driver))
        {
            errors.Add($"{CloudVpnOptions.SectionName}:{nameof(options.Driver)}: is empty; use a family (for example 'wireguard') or a driver name.");
        }
        else if (registry.DriverTypes.Count > 0 && !registry.KnowsDriver(options.Driver))
        {
            errors.Add($"{CloudVpnOptions.SectionName}:{nameof(options.Driver)}: '{options.Driver}' is neither a registered driver nor a family of one; known: {string.Join(", ", registry.DriverNamesAndFamilies)}.");
        }

        if (options.DefaultKeyStore is { } store && !registry.KeyStoreNames.Contains(store, StringComparer.Ordinal))
        {
            errors.Add($"{CloudVpnOptions.SectionName}:{nameof(options.DefaultKeyStore)}: no key store is named '{store}'; registered: {(registry.KeyStoreNames.Count == 0 ? "none" : string.Join(", ", registry.KeyStoreNames))}.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
