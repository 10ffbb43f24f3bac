using System.Buffers.Binary;
using NSec.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce (4 zero bytes, then the 64-bit counter little-endian) and
/// XChaCha20-Poly1305 for cookie replies, through NSec's span overloads.
/// </summary>
internal static class Aead
{
    public const int TagLength = 16;
    public const int KeyLength = 32;
    public const int XNonceLength = 24;

    public static readonly AeadAlgorithm ChaCha = AeadAlgorithm.ChaCha20Poly1305;
    public static readonly AeadAlgorithm XChaCha = AeadAlgorithm.XChaCha20Poly1305;

    /// <summary>Imports a 32-byte key for repeated use (transport keys); dispose it to erase.</summary>
    public static Key ImportKey(AeadAlgorithm algorithm, ReadOnlySpan<byte> key)
    {
        var parameters = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None };
        return Key.Import(algorithm, key, KeyBlobFormat.RawSymmetricKey, in parameters);
    }

    /// <summary>Encrypts with a counter nonce; <paramref name="ciphertext"/> is plaintext length + 16 and may start at the plaintext (in place).</summary>
    public static void Seal(Key key, ulong counter, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertext)
    {
        Span<byte> nonce = stackalloc byte[12];
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
        ChaCha.Encrypt(key, nonce, associatedData, plaintext, ciphertext[..(plaintext.Length + TagLength)]);
    }

    /// <summary>Decrypts and authenticates; false when the tag does not verify.</summary>
    public static bool Open(Key key, ulong counter, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        if (ciphertext.Length < TagLength)
        {
            return false;
        }

        Span<byte> nonce = stackalloc byte[12];
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
        return ChaCha.Decrypt(key, nonce, associatedData, ciphertext, plaintext[..(ciphertext.Length - TagLength)]);
    }

    /// <summary>One-shot encryption with a raw key (handshake messages): no guarded key object for a key used once.</summary>
    public static void Seal(ReadOnlySpan<byte> key, ulong counter, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertext)
    {
        Span<byte> nonce = stackalloc byte[12];
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
        Sodium.ChaChaSeal(key, nonce, plaintext, associatedData, ciphertext[..(plaintext.Length + TagLength)]);
    }

    /// <summary>One-shot decryption with a raw key (handshake messages); false when the tag does not verify.</summary>
    public static bool Open(ReadOnlySpan<byte> key, ulong counter, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        if (ciphertext.Length < TagLength)
        {
            return false;
        }

        Span<byte> nonce = stackalloc byte[12];
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
        return Sodium.ChaChaOpen(key, nonce, ciphertext, associatedData, plaintext[..(ciphertext.Length - TagLength)]);
    }

    /// <summary>XChaCha20-Poly1305 encryption (cookie replies).</summary>
    public static void XSeal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertext) =>
        Sodium.XChaChaSeal(key, nonce, plaintext, associatedData, ciphertext[..(plaintext.Length + TagLength)]);

    /// <summary>XChaCha20-Poly1305 decryption (cookie replies); false when the tag does not verify.</summary>
    public static bool XOpen(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        if (ciphertext.Length < TagLength)
        {
            return false;
        }

        return Sodium.XChaChaOpen(key, nonce, ciphertext, associatedData, plaintext[..(ciphertext.Length - TagLength)]);
    }
}
