using System.Security.Cryptography;

namespace CloudVpn.OpenVpn.Pki;

/// <summary>
/// The tls-crypt key: 256 random bytes in OpenVPN's "static key V1" text format (16 lines of 32 hex digits between
/// the BEGIN/END markers), the format <c>openvpn --genkey tls-crypt</c> writes. Held as bytes, never as a string.
/// </summary>
public static class TlsCryptKey
{
    /// <summary>Length of the key material in bytes (2048 bits).</summary>
    public const int KeyLength = 256;

    private const int BytesPerLine = 16;
    private static readonly byte[] Header = "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n"u8.ToArray();
    private static readonly byte[] Footer = "-----END OpenVPN Static key V1-----\n"u8.ToArray();
    private static readonly byte[] BeginMarker = "-----BEGIN OpenVPN Static key V1-----"u8.ToArray();
    private static readonly byte[] EndMarker = "-----END OpenVPN Static key V1-----"u8.ToArray();

    /// <summary>Creates a new random key in the static key file format. The caller zeroes the returned bytes.</summary>
    public static byte[] Generate()
    {
        var raw = GC.AllocateUninitializedArray<byte>(KeyLength, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(raw);
            return Format(raw);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(raw);
        }
    }

    /// <summary>Formats <paramref name="key"/> (exactly 256 bytes) as a static key file.</summary>
    public static byte[] Format(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException($"A tls-crypt key is {KeyLength} bytes, not {key.Length}.", nameof(key));
        }

        var lines = KeyLength / BytesPerLine;
        var output = GC.AllocateUninitializedArray<byte>(Header.Length + (lines * ((BytesPerLine * 2) + 1)) + Footer.Length, pinned: true);
        var span = output.AsSpan();
        Header.CopyTo(span);
        var at = Header.Length;
        for (var line = 0; line < lines; line++)
        {
            foreach (var b in key.Slice(line * BytesPerLine, BytesPerLine))
            {
                span[at++] = Hex(b >> 4);
                span[at++] = Hex(b & 0xF);
            }

            span[at++] = (byte)'\n';
        }

        Footer.CopyTo(span[at..]);
        return output;
    }

    /// <summary>
    /// Reads the 256 key bytes back from a static key file (comments and blank lines allowed). The caller zeroes the
    /// result. Throws <see cref="FormatException"/> naming the problem (never the key).
    /// </summary>
    public static byte[] Parse(ReadOnlySpan<byte> file)
    {
        var begin = file.IndexOf(BeginMarker);
        var end = file.IndexOf(EndMarker);
        if (begin < 0 || end < begin)
        {
            throw new FormatException("tls-crypt key: the '-----BEGIN/END OpenVPN Static key V1-----' markers are missing.");
        }

        var body = file[(begin + BeginMarker.Length)..end];
        var key = GC.AllocateUninitializedArray<byte>(KeyLength, pinned: true);
        var nibbles = 0;
        foreach (var c in body)
        {
            if (c is (byte)'\n' or (byte)'\r' or (byte)' ' or (byte)'\t')
            {
                continue;
            }

            var value = FromHex(c);
            if (value < 0 || nibbles >= KeyLength * 2)
            {
                CryptographicOperations.ZeroMemory(key);
                throw new FormatException(value < 0
                    ? "tls-crypt key: the body holds a character that is not a hex digit."
                    : $"tls-crypt key: the body is longer than {KeyLength} bytes.");
            }

            if ((nibbles & 1) == 0)
            {
                key[nibbles / 2] = (byte)(value << 4);
            }
            else
            {
                key[nibbles / 2] |= (byte)value;
            }

            nibbles++;
        }

        if (nibbles != KeyLength * 2)
        {
            CryptographicOperations.ZeroMemory(key);
            throw new FormatException($"tls-crypt key: the body holds {nibbles / 2} bytes, not {KeyLength}.");
        }

        return key;
    }

    private static byte Hex(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);

    private static int FromHex(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        _ => -1,
    };
}
