using CloudVpn.KeyStores;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.Secrets.Vault;

/// <summary>Registers a <see cref="VaultKeyStore"/> on the CloudVpn builder.</summary>
public static class VaultKeyStoreBuilderExtensions
{
    /// <summary>The prefix of the named <c>HttpClient</c> each Vault store uses (<c>CloudVpn.Vault.{name}</c>), for adding handlers or certificates.</summary>
    public const string HttpClientNamePrefix = "CloudVpn.Vault.";

    /// <summary>
    /// Adds a Vault key store named <paramref name="name"/>. Its settings are the named options
    /// <c>VaultKeyStoreOptions</c> "<paramref name="name"/>", validated at host start with every problem listed.
    /// </summary>
    public static ICloudVpnBuilder AddVaultKeyStore(
        this ICloudVpnBuilder builder,
        Action<VaultKeyStoreOptions> configure,
        string name = "vault",
        bool isDefault = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.EnsureCloudVpn(nameof(AddVaultKeyStore));
        builder.Services.AddOptions<VaultKeyStoreOptions>(name).Configure(configure).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VaultKeyStoreOptions>, VaultKeyStoreOptionsValidator>());
        builder.Services.AddHttpClient(HttpClientNamePrefix + name, client => client.Timeout = Timeout.InfiniteTimeSpan);
        return builder.AddKeyStore(
            name,
            sp => new VaultKeyStore(
                sp.GetRequiredService<IHttpClientFactory>().CreateClient(HttpClientNamePrefix + name),
                sp.GetRequiredService<IOptionsMonitor<VaultKeyStoreOptions>>().Get(name),
                sp.GetService<TimeProvider>(),
                sp.GetService<ILogger<VaultKeyStore>>()),
            isDefault);
    }
}
