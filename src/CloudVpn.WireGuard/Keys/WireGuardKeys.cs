using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace CloudVpn.WireGuard.Keys;

/// <summary>A 32-byte Curve25519 public key, as WireGuard writes it (base64) and as the wg API writes it (hex).</summary>
public readonly struct WireGuardPublicKey : IEquatable<WireGuardPublicKey>
{
    /// <summary>Key length in bytes.</summary>
    public const int Length = 32;

    private readonly byte[]? _bytes;

    /// <summary>Creates a key from 32 bytes (copied).</summary>
    public WireGuardPublicKey(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length)
        {
            throw new ArgumentException($"A WireGuard public key is {Length} bytes, not {bytes.Length}.", nameof(bytes));
        }

        _bytes = bytes.ToArray();
    }

    /// <summary>The raw key bytes (all zero for <c>default</c>).</summary>
    public ReadOnlySpan<byte> Bytes => _bytes ?? new byte[Length];

    /// <summary>True for <c>default</c> (no key).</summary>
    public bool IsEmpty => _bytes is null;

    /// <summary>Parses base64 (44 characters) as <c>wg pubkey</c> prints it.</summary>
    /// <exception cref="FormatException">Not a base64 encoding of 32 bytes.</exception>
    public static WireGuardPublicKey FromBase64(string text)
    {
        Span<byte> buffer = stackalloc byte[Length];
        if (!KeyEncoding.TryDecodeBase64(text, buffer))
        {
            throw new FormatException("Not a WireGuard key: expected 44 characters of base64 encoding 32 bytes.");
        }

        return new WireGuardPublicKey(buffer);
    }

    /// <summary>Parses base64 without throwing.</summary>
    public static bool TryFromBase64(string? text, out WireGuardPublicKey key)
    {
        Span<byte> buffer = stackalloc byte[Length];
        if (text is not null && KeyEncoding.TryDecodeBase64(text, buffer))
        {
            key = new WireGuardPublicKey(buffer);
            return true;
        }

        key = default;
        return false;
    }

    /// <summary>Parses 64 hex characters as the userspace API writes keys.</summary>
    /// <exception cref="FormatException">Not 64 hex characters.</exception>
    public static WireGuardPublicKey FromHex(string text)
    {
        Span<byte> buffer = stackalloc byte[Length];
        if (!KeyEncoding.TryDecodeHex(text, buffer))
        {
            throw new FormatException("Not a WireGuard key: expected 64 hexadecimal characters.");
        }

        return new WireGuardPublicKey(buffer);
    }

    /// <summary>Base64, as <c>wg</c> prints it.</summary>
    public string ToBase64() => Convert.ToBase64String(Bytes);

    /// <summary>Lowercase hex, as the userspace API writes it.</summary>
    public string ToHex() => Convert.ToHexStringLower(Bytes);

    /// <inheritdoc />
    public override string ToString() => ToBase64();

    /// <inheritdoc />
    public bool Equals(WireGuardPublicKey other) => Bytes.SequenceEqual(other.Bytes);

    /// <inheritdoc />
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is WireGuardPublicKey other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => BitConverter.ToInt32(Bytes[..4]) ^ BitConverter.ToInt32(Bytes[28..]);

    /// <summary>Equality.</summary>
    public static bool operator ==(WireGuardPublicKey left, WireGuardPublicKey right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(WireGuardPublicKey left, WireGuardPublicKey right) => !left.Equals(right);
}

/// <summary>
/// A 32-byte secret (a Curve25519 private key or a preshared key). The bytes live in one array that is
/// zeroed on <see cref="Dispose"/>; <see cref="ToString"/> never shows them.
/// </summary>
public sealed class WireGuardSecretKey : IDisposable, IEquatable<WireGuardSecretKey>
{
    /// <summary>Key length in bytes.</summary>
    public const int Length = 32;

    private readonly byte[] _bytes;
    private bool _disposed;

    /// <summary>Creates a key from 32 bytes (copied; the caller still owns and should zero its copy).</summary>
    public WireGuardSecretKey(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length)
        {
            throw new ArgumentException($"A WireGuard key is {Length} bytes, not {bytes.Length}.", nameof(bytes));
        }

        _bytes = GC.AllocateArray<byte>(Length, pinned: true);
        bytes.CopyTo(_bytes);
    }

    /// <summary>The raw bytes; valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _bytes;
        }
    }

    /// <summary>True when every byte is zero (the "no preshared key" value).</summary>
    public bool IsZero => !Bytes.ContainsAnyExcept((byte)0);

    /// <summary>A new private key from the system's CSPRNG, clamped as <c>wg genkey</c> does.</summary>
    public static WireGuardSecretKey GeneratePrivateKey()
    {
        Span<byte> buffer = stackalloc byte[Length];
        RandomNumberGenerator.Fill(buffer);
        Clamp(buffer);
        try
        {
            return new WireGuardSecretKey(buffer);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>A new random preshared key, as <c>wg genpsk</c> makes it (not clamped).</summary>
    public static WireGuardSecretKey GeneratePresharedKey()
    {
        Span<byte> buffer = stackalloc byte[Length];
        RandomNumberGenerator.Fill(buffer);
        try
        {
            return new WireGuardSecretKey(buffer);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>Curve25519 clamping: <c>k[0] &amp;= 248; k[31] = (k[31] &amp; 127) | 64</c>.</summary>
    public static void Clamp(Span<byte> key)
    {
        if (key.Length != Length)
        {
            throw new ArgumentException($"A WireGuard key is {Length} bytes.", nameof(key));
        }

        key[0] &= 248;
        key[31] = (byte)((key[31] & 127) | 64);
    }

    /// <summary>Parses base64 as <c>wg genkey</c> writes it.</summary>
    /// <exception cref="FormatException">Not a base64 encoding of 32 bytes (the message never contains the text).</exception>
    public static WireGuardSecretKey FromBase64(ReadOnlySpan<char> text)
    {
        Span<byte> buffer = stackalloc byte[Length];
        try
        {
            if (!KeyEncoding.TryDecodeBase64(text, buffer))
            {
                throw new FormatException("Not a WireGuard key: expected 44 characters of base64 encoding 32 bytes.");
            }

            return new WireGuardSecretKey(buffer);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>Parses 64 hex characters as the userspace API writes keys.</summary>
    /// <exception cref="FormatException">Not 64 hex characters (the message never contains the text).</exception>
    public static WireGuardSecretKey FromHex(ReadOnlySpan<char> text)
    {
        Span<byte> buffer = stackalloc byte[Length];
        try
        {
            if (!KeyEncoding.TryDecodeHex(text, buffer))
            {
                throw new FormatException("Not a WireGuard key: expected 64 hexadecimal characters.");
            }

            return new WireGuardSecretKey(buffer);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>The Curve25519 public key of this private key (as <c>wg pubkey</c> derives it).</summary>
    public WireGuardPublicKey GetPublicKey()
    {
        var parameters = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None };
        using var key = Key.Import(KeyAgreementAlgorithm.X25519, Bytes, KeyBlobFormat.RawPrivateKey, in parameters);
        return new WireGuardPublicKey(key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>Base64 of the secret, for writing a configuration file or a key store entry; handle the string with care.</summary>
    public string ToBase64() => Convert.ToBase64String(Bytes);

    /// <summary>Hex of the secret, for the userspace API.</summary>
    public string ToHex() => Convert.ToHexStringLower(Bytes);

    /// <summary>Fixed-time comparison.</summary>
    public bool Equals(WireGuardSecretKey? other) => other is not null && CryptographicOperations.FixedTimeEquals(Bytes, other.Bytes);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is WireGuardSecretKey other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => 0x5ec7e7;

    /// <summary>Zeroes the key.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            CryptographicOperations.ZeroMemory(_bytes);
            _disposed = true;
        }
    }

    /// <inheritdoc />
    public override string ToString() => "WireGuardSecretKey(<redacted>)";
}

internal static class KeyEncoding
{
    public static bool TryDecodeBase64(ReadOnlySpan<char> text, Span<byte> destination)
    {
        text = text.Trim();
        if (text.Length != 44 || text[43] != '=' || text[42] == '=')
        {
            return false;
        }

        Span<byte> scratch = stackalloc byte[33];
        try
        {
            return Convert.TryFromBase64Chars(text, scratch, out var written) && written == 32 && scratch[..32].TryCopyTo(destination);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scratch);
        }
    }

    public static bool TryDecodeHex(ReadOnlySpan<char> text, Span<byte> destination)
    {
        text = text.Trim();
        if (text.Length != 64)
        {
            return false;
        }

        return Convert.FromHexString(text, destination, out var consumed, out var written) == System.Buffers.OperationStatus.Done
            && consumed == 64 && written == 32;
    }
}
