using System.Security.Cryptography;
using Org.BouncyCastle.Crypto.Digests;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// BLAKE2s (RFC 7693) and what WireGuard builds on it: HASH (BLAKE2s-256), MAC (keyed BLAKE2s-128), HMAC-BLAKE2s
/// (RFC 2104, 64-byte block) and the HKDF-style KDF1..KDF3. Only the handshake path uses these.
/// </summary>
internal static class Blake2s
{
    public const int HashLength = 32;
    public const int MacLength = 16;
    private const int BlockLength = 64;

    [ThreadStatic]
    private static Blake2sDigest? t_digest;

    private static Blake2sDigest Digest
    {
        get
        {
            var digest = t_digest ??= new Blake2sDigest(256);
            digest.Reset();
            return digest;
        }
    }

    /// <summary>HASH(a || b || c) into 32 bytes.</summary>
    public static void Hash(Span<byte> output, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default, ReadOnlySpan<byte> c = default)
    {
        var digest = Digest;
        digest.BlockUpdate(a);
        digest.BlockUpdate(b);
        digest.BlockUpdate(c);
        digest.DoFinal(output[..HashLength]);
    }

    /// <summary>Keyed BLAKE2s with an output of <paramref name="output"/>.Length bytes (MAC uses 16).</summary>
    public static void KeyedHash(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> data)
    {
        var keyCopy = key.IsEmpty ? null : key.ToArray();
        try
        {
            var digest = new Blake2sDigest(keyCopy, output.Length, null, null);
            digest.BlockUpdate(data);
            digest.DoFinal(output);
            digest.ClearKey();
        }
        finally
        {
            if (keyCopy is not null)
            {
                CryptographicOperations.ZeroMemory(keyCopy);
            }
        }
    }

    /// <summary>MAC(key, data): keyed BLAKE2s with a 16-byte output.</summary>
    public static void Mac(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> data) => KeyedHash(output[..MacLength], key, data);

    /// <summary>HMAC-BLAKE2s-256(key, a || b) into 32 bytes.</summary>
    public static void Hmac(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        Span<byte> block = stackalloc byte[BlockLength];
        Span<byte> inner = stackalloc byte[HashLength];
        try
        {
            block.Clear();
            if (key.Length > BlockLength)
            {
                Hash(block, key);
            }
            else
            {
                key.CopyTo(block);
            }

            for (var i = 0; i < BlockLength; i++)
            {
                block[i] ^= 0x36;
            }

            var digest = Digest;
            digest.BlockUpdate(block);
            digest.BlockUpdate(a);
            digest.BlockUpdate(b);
            digest.DoFinal(inner);

            for (var i = 0; i < BlockLength; i++)
            {
                block[i] ^= 0x36 ^ 0x5c;
            }

            digest = Digest;
            digest.BlockUpdate(block);
            digest.BlockUpdate(inner);
            digest.DoFinal(output[..HashLength]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(block);
            CryptographicOperations.ZeroMemory(inner);
        }
    }

    /// <summary>
    /// KDFn(key, input): prk = HMAC(key, input); t1 = HMAC(prk, 0x01); t2 = HMAC(prk, t1 || 0x02); t3 = HMAC(prk, t2 || 0x03).
    /// Writes t1 to <paramref name="t1"/> and, when given (non-empty), t2 and t3. Outputs may alias <paramref name="key"/>.
    /// </summary>
    public static void Kdf(ReadOnlySpan<byte> key, ReadOnlySpan<byte> input, Span<byte> t1, Span<byte> t2 = default, Span<byte> t3 = default)
    {
        Span<byte> prk = stackalloc byte[HashLength];
        Span<byte> t = stackalloc byte[HashLength + 1];
        try
        {
            Hmac(prk, key, input);
            t[0] = 1;
            Hmac(t, prk, t[..1]);
            t[..HashLength].CopyTo(t1);
            if (t2.IsEmpty)
            {
                return;
            }

            t[HashLength] = 2;
            Hmac(t, prk, t);
            t[..HashLength].CopyTo(t2);
            if (t3.IsEmpty)
            {
                return;
            }

            t[HashLength] = 3;
            Hmac(t, prk, t);
            t[..HashLength].CopyTo(t3);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(t);
        }
    }
}
