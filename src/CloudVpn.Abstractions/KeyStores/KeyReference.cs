namespace CloudVpn.KeyStores;

/// <summary>Points at a secret in a key store without holding it.</summary>
/// <param name="KeyId">The secret id in the store.</param>
/// <param name="Store">The key store's name; null means the default store.</param>
/// <param name="Version">A fixed version; null means the latest.</param>
public sealed record KeyReference(string KeyId, string? Store = null, long? Version = null)
{
    /// <inheritdoc />
    public override string ToString() => $"{Store ?? "default"}:{KeyId}{(Version is { } v ? $"@{v}" : string.Empty)}";
}

/// <summary>Finds key stores by name: the keyed services registered through the builder.</summary>
public interface IKeyStoreProvider
{
    /// <summary>Names of the registered stores.</summary>
    IReadOnlyList<string> StoreNames { get; }

    /// <summary>Name of the default store.</summary>
    string DefaultStoreName { get; }

    /// <summary>The store called <paramref name="name"/>, or the default store when null.</summary>
    /// <exception cref="InvalidOperationException">No store has that name.</exception>
    IKeyStore GetStore(string? name = null);

    /// <summary>Reads the secret a reference points at.</summary>
    /// <exception cref="KeyStoreException">The secret (or the version asked for) does not exist.</exception>
    ValueTask<StoredSecret> ResolveAsync(KeyReference reference, CancellationToken cancellationToken = default);
}
