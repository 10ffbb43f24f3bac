using System.Security.Cryptography;
using CloudVpn.KeyStores;
using CloudVpn.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace CloudVpn.Samples.Gateway;

/// <summary>The public facts of the gateway's current private key (the key itself stays in the store).</summary>
/// <param name="PublicKey">Base64 public key.</param>
/// <param name="Version">Key store version.</param>
/// <param name="CreatedAt">When that version was written.</param>
/// <param name="Created">True when this call created the first version.</param>
internal sealed record GatewayKeyInfo(string PublicKey, long Version, DateTimeOffset CreatedAt, bool Created);

/// <summary>
/// Loads the gateway's private key from the key store, creating it (raw 32 bytes, clamped) on first start, so the
/// public key survives restarts.
/// </summary>
internal sealed partial class GatewayKey(IKeyStore store, ILogger<GatewayKey> logger)
{
    /// <summary>The key id in the store.</summary>
    public const string KeyId = "gateway-private-key";

    public async ValueTask<GatewayKeyInfo> LoadOrCreateAsync(CancellationToken cancellationToken)
    {
        var existing = await ReadAsync(null, cancellationToken);
        if (existing is not null)
        {
            return existing;
        }

        using (var key = WireGuardSecretKey.GeneratePrivateKey())
        {
            var bytes = key.Bytes.ToArray();
            try
            {
                await store.PutAsync(KeyId, bytes, expectedVersion: 0, cancellationToken);
                var created = await ReadAsync(null, cancellationToken) ?? throw new KeyStoreException($"Key '{KeyId}' was written but cannot be read back.");
                LogCreated(logger, KeyId, created.PublicKey);
                return created with { Created = true };
            }
            catch (KeyStoreConflictException)
            {
                // another process (an --add-peer run, a second instance) created it first: use theirs
            }
            finally
            {
                CryptographicOperations.ZeroMemory(bytes);
            }
        }

        return await ReadAsync(null, cancellationToken) ?? throw new KeyStoreException($"Key '{KeyId}' vanished right after a concurrent create.");
    }

    /// <summary>Reads one version (null: latest) and derives its public key; null when the key does not exist.</summary>
    public async ValueTask<GatewayKeyInfo?> ReadAsync(long? version, CancellationToken cancellationToken)
    {
        using var secret = await store.GetAsync(KeyId, version, cancellationToken);
        if (secret is null)
        {
            return null;
        }

        if (secret.Value.Length != WireGuardSecretKey.Length)
        {
            throw new KeyStoreException($"Key '{KeyId}' version {secret.Version} holds {secret.Value.Length} bytes; a WireGuard private key is {WireGuardSecretKey.Length} raw bytes.");
        }

        using var key = new WireGuardSecretKey(secret.Value);
        return new GatewayKeyInfo(key.GetPublicKey().ToBase64(), secret.Version, secret.CreatedAt, false);
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Created the gateway key {KeyId} (public key {PublicKey})")]
    private static partial void LogCreated(ILogger logger, string keyId, string publicKey);
}
