using System.Security.Cryptography;

namespace CloudVpn.KeyStores;

/// <summary>
/// One version of a secret as read from a key store. The bytes are zeroed on <see cref="Dispose"/>;
/// <see cref="ToString"/> never shows them.
/// </summary>
public sealed class StoredSecret : IDisposable
{
    private readonly byte[] _value;
    private bool _disposed;

    /// <summary>Creates a secret that takes ownership of <paramref name="value"/>.</summary>
    public StoredSecret(string id, long version, DateTimeOffset createdAt, byte[] value)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(value);
        Id = id;
        Version = version;
        CreatedAt = createdAt;
        _value = value;
    }

    /// <summary>The secret id.</summary>
    public string Id { get; }

    /// <summary>The version number.</summary>
    public long Version { get; }

    /// <summary>When this version was written.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>The secret bytes; valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> Value
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _value;
        }
    }

    /// <summary>Copies the bytes into a new array the caller owns (and should zero).</summary>
    public byte[] CopyValue() => Value.ToArray();

    /// <summary>Zeroes the secret bytes.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            CryptographicOperations.ZeroMemory(_value);
            _disposed = true;
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"StoredSecret {{ Id = {Id}, Version = {Version}, Value = <redacted> }}";
}
