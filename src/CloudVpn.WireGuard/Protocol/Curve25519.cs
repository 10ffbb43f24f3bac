using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// X25519 (RFC 7748) on raw 32-byte keys, through libsodium directly (<see cref="Sodium"/>): the private keys stay
/// in the caller's pinned or stack memory, which the caller zeroes.
/// </summary>
internal static class Curve25519
{
    public const int KeyLength = 32;

    /// <summary>DH(private, public) into 32 bytes; false when the result is all zero (a low-order public key).</summary>
    public static bool SharedSecret(Span<byte> output, ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey)
    {
        if (!Sodium.ScalarMult(output[..KeyLength], privateKey, publicKey))
        {
            CryptographicOperations.ZeroMemory(output[..KeyLength]);
            return false;
        }

        // libsodium already refuses an all-zero result; check anyway, the protocol depends on it.
        return output[..KeyLength].ContainsAnyExcept((byte)0);
    }

    /// <summary>A new ephemeral key pair: a random clamped private key and its public key.</summary>
    public static void GenerateEphemeral(Span<byte> privateKey, Span<byte> publicKey)
    {
        NewPrivateKey(privateKey);
        Sodium.ScalarMultBase(publicKey[..KeyLength], privateKey[..KeyLength]);
    }

    /// <summary>A random clamped private key (its public key is computed elsewhere, e.g. in a <see cref="DhBatch"/>).</summary>
    public static void NewPrivateKey(Span<byte> privateKey)
    {
        RandomNumberGenerator.Fill(privateKey[..KeyLength]);
        privateKey[0] &= 248;
        privateKey[31] = (byte)((privateKey[31] & 127) | 64);
    }

    /// <summary>The public key of a private key.</summary>
    public static void DerivePublic(Span<byte> publicKey, ReadOnlySpan<byte> privateKey) => Sodium.ScalarMultBase(publicKey[..KeyLength], privateKey[..KeyLength]);
}
