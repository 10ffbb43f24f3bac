using System.Security.Cryptography;

namespace CloudVpn.OpenVpn.Pki;

/// <summary>PEM text kept as UTF-8 bytes, so private keys never become .NET strings.</summary>
internal static class SecretPem
{
    private static readonly byte[] PrivateKeyLabel = "PRIVATE KEY"u8.ToArray();
    private static readonly byte[] CertificateLabel = "CERTIFICATE"u8.ToArray();
    private static readonly byte[] CrlLabel = "X509 CRL"u8.ToArray();

    /// <summary>PKCS#8 DER to a PEM block ending with a newline; the caller zeroes the result.</summary>
    public static byte[] PrivateKey(ReadOnlySpan<byte> pkcs8) => Write(PrivateKeyLabel, pkcs8);

    public static byte[] Certificate(ReadOnlySpan<byte> der) => Write(CertificateLabel, der);

    public static byte[] Crl(ReadOnlySpan<byte> der) => Write(CrlLabel, der);

    private static byte[] Write(ReadOnlySpan<byte> label, ReadOnlySpan<byte> data)
    {
        var size = PemEncoding.GetEncodedSize(label.Length, data.Length);
        var buffer = GC.AllocateUninitializedArray<byte>(size + 1, pinned: true);
        if (!PemEncoding.TryWriteUtf8(label, data, buffer, out var written) || written != size)
        {
            CryptographicOperations.ZeroMemory(buffer);
            throw new CryptographicException("PEM encoding failed.");
        }

        buffer[size] = (byte)'\n';
        return buffer;
    }
}
