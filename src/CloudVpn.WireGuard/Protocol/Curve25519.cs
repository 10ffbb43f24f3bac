using System.Security.Cryptography;
using NSec.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>X25519 (RFC 7748) through NSec: key generation and Diffie-Hellman on raw 32-byte keys.</summary>
internal static class Curve25519
{
    public const int KeyLength = 32;

    private static readonly KeyAgreementAlgorithm Algorithm = KeyAgreementAlgorithm.X25519;

    /// <summary>DH(private, public) into 32 bytes; false when the public key is invalid or the result is all zero.</summary>
    public static bool SharedSecret(Span<byte> output, ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey)
    {
        using var key = ImportPrivate(privateKey);
        return SharedSecret(output, key, publicKey);
    }

    /// <summary>DH with an already imported private key (static and ephemeral keys are imported once).</summary>
    public static bool SharedSecret(Span<byte> output, Key privateKey, ReadOnlySpan<byte> publicKey)
    {
        if (!PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            return false;
        }

        var secretParameters = new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        SharedSecret? secret;
        try
        {
            secret = Algorithm.Agree(privateKey, peer, in secretParameters);
        }
        catch (CryptographicException)
        {
            return false;
        }

        if (secret is null)
        {
            return false;
        }

        using (secret)
        {
            if (!secret.TryExport(SharedSecretBlobFormat.RawSharedSecret, output, out var written) || written != KeyLength)
            {
                return false;
            }
        }

        // libsodium already refuses an all-zero result; check anyway, the protocol depends on it.
        return output[..KeyLength].ContainsAnyExcept((byte)0);
    }

    /// <summary>Imports a raw private key (not exportable); dispose it to erase.</summary>
    public static Key ImportPrivate(ReadOnlySpan<byte> privateKey)
    {
        var keyParameters = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None };
        return Key.Import(Algorithm, privateKey, KeyBlobFormat.RawPrivateKey, in keyParameters);
    }

    /// <summary>A new ephemeral key pair: the private key stays inside the returned <see cref="Key"/>.</summary>
    public static Key GenerateEphemeral(Span<byte> publicKey)
    {
        var keyParameters = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None };
        var key = Key.Create(Algorithm, in keyParameters);
        if (!key.PublicKey.TryExport(KeyBlobFormat.RawPublicKey, publicKey, out var written) || written != KeyLength)
        {
            key.Dispose();
            throw new CryptographicException("X25519 public key export failed.");
        }

        return key;
    }

    /// <summary>The public key of a private key.</summary>
    public static void DerivePublic(Span<byte> publicKey, ReadOnlySpan<byte> privateKey)
    {
        var keyParameters = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None };
        using var key = Key.Import(Algorithm, privateKey, KeyBlobFormat.RawPrivateKey, in keyParameters);
        if (!key.PublicKey.TryExport(KeyBlobFormat.RawPublicKey, publicKey, out var written) || written != KeyLength)
        {
            throw new CryptographicException("X25519 public key export failed.");
        }
    }
}
