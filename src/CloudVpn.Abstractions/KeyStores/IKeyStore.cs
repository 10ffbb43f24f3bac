namespace CloudVpn.KeyStores;

/// <summary>
/// Versioned secrets by id (a gateway's private key, a preshared key, a CA key). Versions start at 1 and
/// grow by one with every write; writes can be made conditional on the version they expect to replace.
/// </summary>
public interface IKeyStore
{
    /// <summary>Reads the latest version of <paramref name="id"/>, or the given <paramref name="version"/>; null when absent.</summary>
    ValueTask<StoredSecret?> GetAsync(string id, long? version = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes a new version of <paramref name="id"/>. With <paramref name="expectedVersion"/> set, the write
    /// succeeds only when the latest version is exactly that (0: the id must not exist yet), otherwise it throws
    /// <see cref="KeyStoreConflictException"/>. Returns the new version number.
    /// </summary>
    ValueTask<long> PutAsync(string id, ReadOnlyMemory<byte> value, long? expectedVersion = null, CancellationToken cancellationToken = default);

    /// <summary>Lists the versions that exist for <paramref name="id"/>, oldest first; empty when the id is absent.</summary>
    ValueTask<IReadOnlyList<SecretVersionInfo>> ListVersionsAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Deletes <paramref name="id"/> with all its versions; false when it did not exist.</summary>
    ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Yields a change every time a new version of a watched id appears (or it is deleted), including writes by
    /// other processes. <paramref name="id"/> null watches every id. Ends when <paramref name="cancellationToken"/> fires.
    /// </summary>
    IAsyncEnumerable<KeyStoreChange> WatchAsync(string? id = null, CancellationToken cancellationToken = default);
}

/// <summary>Metadata of one version of a secret.</summary>
/// <param name="Id">The secret id.</param>
/// <param name="Version">Version number, starting at 1.</param>
/// <param name="CreatedAt">When the version was written.</param>
public sealed record SecretVersionInfo(string Id, long Version, DateTimeOffset CreatedAt);

/// <summary>Kinds of key store changes.</summary>
public enum KeyStoreChangeKind
{
    /// <summary>A new version was written.</summary>
    Written,

    /// <summary>The id was deleted.</summary>
    Deleted,
}

/// <summary>A change seen by <see cref="IKeyStore.WatchAsync"/>; carries no secret material.</summary>
/// <param name="Id">The secret id.</param>
/// <param name="Kind">What happened.</param>
/// <param name="Version">The new latest version (0 after a delete).</param>
public sealed record KeyStoreChange(string Id, KeyStoreChangeKind Kind, long Version);

/// <summary>Thrown when a compare-and-swap write finds a version other than the one it expected.</summary>
public sealed class KeyStoreConflictException : Exception
{
    /// <summary>Creates the exception.</summary>
    public KeyStoreConflictException(string id, long expectedVersion, long actualVersion)
        : base($"Key '{id}': expected version {expectedVersion} but the store holds version {actualVersion}; re-read and retry.")
    {
        Id = id;
        ExpectedVersion = expectedVersion;
        ActualVersion = actualVersion;
    }

    /// <summary>The secret id.</summary>
    public string Id { get; }

    /// <summary>The version the writer expected.</summary>
    public long ExpectedVersion { get; }

    /// <summary>The version found.</summary>
    public long ActualVersion { get; }
}

/// <summary>Thrown for key store failures other than conflicts (unreadable store, corrupt entry, refused access); never carries secret material.</summary>
public sealed class KeyStoreException : Exception
{
    /// <summary>Creates the exception.</summary>
    public KeyStoreException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
