using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudVpn.KeyStores;

/// <summary>Resolves key stores registered as keyed services.</summary>
internal sealed class KeyStoreProvider(IServiceProvider services, CloudVpnRegistry registry, IOptions<CloudVpnOptions> options) : IKeyStoreProvider
{
    public IReadOnlyList<string> StoreNames => registry.KeyStoreNames;

    public string DefaultStoreName =>
        options.Value.DefaultKeyStore
        ?? registry.DefaultKeyStore
        ?? (registry.KeyStoreNames.Count > 0
            ? registry.KeyStoreNames[0]
            : throw new InvalidOperationException("No key store is registered: add one on the CloudVpn builder, for example AddFileKeyStore(\"/var/lib/cloudvpn/keys\")."));

    public IKeyStore GetStore(string? name = null)
    {
        var storeName = name ?? DefaultStoreName;
        if (!registry.KeyStoreNames.Contains(storeName, StringComparer.Ordinal))
        {
            throw new InvalidOperationException($"No key store is named '{storeName}'; registered: {(registry.KeyStoreNames.Count == 0 ? "none" : string.Join(", ", registry.KeyStoreNames))}.");
        }

        return services.GetRequiredKeyedService<IKeyStore>(storeName);
    }

    public async ValueTask<StoredSecret> ResolveAsync(KeyReference reference, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var store = GetStore(reference.Store);
        var secret = await store.GetAsync(reference.KeyId, reference.Version, cancellationToken);
        return secret ?? throw new KeyStoreException(
            reference.Version is { } v
                ? $"Key '{reference.KeyId}' version {v} does not exist in key store '{reference.Store ?? DefaultStoreName}'."
                : $"Key '{reference.KeyId}' does not exist in key store '{reference.Store ?? DefaultStoreName}'.");
    }
}
