using System.Runtime.InteropServices;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Direct calls into the libsodium that NSec ships, for the handshake's one-shot operations on raw keys: X25519 and
/// (X)ChaCha20-Poly1305 with a key that is used once. NSec's <c>Key</c> objects keep every key in guarded memory
/// (<c>sodium_malloc</c>: an mmap, mprotect and mlock per key), which costs more than the operation itself when a
/// key lives for one message; here the keys stay in the caller's pinned or stack memory and are zeroed by the
/// caller. The transport keys, used for millions of packets, keep NSec's guarded keys.
/// </summary>
internal static unsafe partial class Sodium
{
    private const string Library = "libsodium";

    static Sodium()
    {
        if (sodium_init() < 0)
        {
            throw new InvalidOperationException("libsodium failed to initialize.");
        }
    }

    /// <summary>X25519(scalar, point) into 32 bytes; false for an all-zero result (a low-order point).</summary>
    public static bool ScalarMult(Span<byte> output, ReadOnlySpan<byte> scalar, ReadOnlySpan<byte> point)
    {
        Check(output, 32);
        Check(scalar, 32);
        Check(point, 32);
        fixed (byte* q = output, n = scalar, p = point)
        {
            return crypto_scalarmult_curve25519(q, n, p) == 0;
        }
    }

    /// <summary>X25519(scalar, 9): the public key of a private key.</summary>
    public static void ScalarMultBase(Span<byte> output, ReadOnlySpan<byte> scalar)
    {
        Check(output, 32);
        Check(scalar, 32);
        fixed (byte* q = output, n = scalar)
        {
            if (crypto_scalarmult_curve25519_base(q, n) != 0)
            {
                throw new System.Security.Cryptography.CryptographicException("X25519 base point multiplication failed.");
            }
        }
    }

    /// <summary>ChaCha20-Poly1305 (IETF, 12-byte nonce) into <paramref name="ciphertext"/> (plaintext length + 16).</summary>
    public static void ChaChaSeal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertext)
    {
        Check(key, 32);
        Check(nonce, 12);
        Check(ciphertext, plaintext.Length + 16);
        fixed (byte* c = ciphertext, m = plaintext, ad = associatedData, npub = nonce, k = key)
        {
            crypto_aead_chacha20poly1305_ietf_encrypt(c, out _, m, (ulong)plaintext.Length, ad, (ulong)associatedData.Length, null, npub, k);
        }
    }

    /// <summary>ChaCha20-Poly1305 (IETF) decryption; false when the tag does not verify.</summary>
    public static bool ChaChaOpen(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        Check(key, 32);
        Check(nonce, 12);
        Check(plaintext, ciphertext.Length - 16);
        fixed (byte* m = plaintext, c = ciphertext, ad = associatedData, npub = nonce, k = key)
        {
            return crypto_aead_chacha20poly1305_ietf_decrypt(m, out _, null, c, (ulong)ciphertext.Length, ad, (ulong)associatedData.Length, npub, k) == 0;
        }
    }

    /// <summary>XChaCha20-Poly1305 (24-byte nonce) into <paramref name="ciphertext"/> (plaintext length + 16).</summary>
    public static void XChaChaSeal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertext)
    {
        Check(key, 32);
        Check(nonce, 24);
        Check(ciphertext, plaintext.Length + 16);
        fixed (byte* c = ciphertext, m = plaintext, ad = associatedData, npub = nonce, k = key)
        {
            crypto_aead_xchacha20poly1305_ietf_encrypt(c, out _, m, (ulong)plaintext.Length, ad, (ulong)associatedData.Length, null, npub, k);
        }
    }

    /// <summary>XChaCha20-Poly1305 decryption; false when the tag does not verify.</summary>
    public static bool XChaChaOpen(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        Check(key, 32);
        Check(nonce, 24);
        Check(plaintext, ciphertext.Length - 16);
        fixed (byte* m = plaintext, c = ciphertext, ad = associatedData, npub = nonce, k = key)
        {
            return crypto_aead_xchacha20poly1305_ietf_decrypt(m, out _, null, c, (ulong)ciphertext.Length, ad, (ulong)associatedData.Length, npub, k) == 0;
        }
    }

    private static void Check(ReadOnlySpan<byte> span, int length)
    {
        if (span.Length != length)
        {
            throw new ArgumentException($"expected {length} bytes, got {span.Length}", nameof(span));
        }
    }

    [LibraryImport(Library)]
    private static partial int sodium_init();

    [LibraryImport(Library)]
    private static partial int crypto_scalarmult_curve25519(byte* q, byte* n, byte* p);

    [LibraryImport(Library)]
    private static partial int crypto_scalarmult_curve25519_base(byte* q, byte* n);

    [LibraryImport(Library)]
    private static partial int crypto_aead_chacha20poly1305_ietf_encrypt(byte* c, out ulong clen, byte* m, ulong mlen, byte* ad, ulong adlen, byte* nsec, byte* npub, byte* k);

    [LibraryImport(Library)]
    private static partial int crypto_aead_chacha20poly1305_ietf_decrypt(byte* m, out ulong mlen, byte* nsec, byte* c, ulong clen, byte* ad, ulong adlen, byte* npub, byte* k);

    [LibraryImport(Library)]
    private static partial int crypto_aead_xchacha20poly1305_ietf_encrypt(byte* c, out ulong clen, byte* m, ulong mlen, byte* ad, ulong adlen, byte* nsec, byte* npub, byte* k);

    [LibraryImport(Library)]
    private static partial int crypto_aead_xchacha20poly1305_ietf_decrypt(byte* m, out ulong mlen, byte* nsec, byte* c, ulong clen, byte* ad, ulong adlen, byte* npub, byte* k);
}
