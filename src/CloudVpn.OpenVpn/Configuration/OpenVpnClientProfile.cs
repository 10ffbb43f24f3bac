using System.Security.Cryptography;
using CloudVpn.OpenVpn.Pki;

namespace CloudVpn.OpenVpn.Configuration;

/// <summary>Exports a client's single-file <c>.ovpn</c> profile from the PKI.</summary>
public static class OpenVpnClientProfile
{
    /// <summary>
    /// The profile of <paramref name="commonName"/> with CA, certificate, key and tls-crypt key inline; issues the
    /// client certificate when it does not exist yet. The bytes hold a private key: the caller zeroes them after use.
    /// </summary>
    public static async ValueTask<byte[]> ExportAsync(
        OpenVpnPki pki,
        OpenVpnServerPlan plan,
        string commonName,
        string? remoteHost = null,
        int? remotePort = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pki);
        ArgumentNullException.ThrowIfNull(plan);
        var host = remoteHost ?? plan.Remote
            ?? throw new ArgumentException("remoteHost: not given and DriverSettings[openvpn.remote] is not set; say which host clients connect to.", nameof(remoteHost));
        using var ca = await pki.GetCaCertificateAsync(cancellationToken);
        using var certificate = await pki.GetClientCertificateAsync(commonName, cancellationToken);
        var caPem = SecretPem.Certificate(ca.RawData);
        var certificatePem = SecretPem.Certificate(certificate.RawData);
        var key = await pki.GetClientPrivateKeyPemAsync(commonName, cancellationToken);
        var tlsCrypt = await pki.GetTlsCryptKeyAsync(cancellationToken);
        try
        {
            return OpenVpnConfigRenderer.RenderClientProfile(plan, host, remotePort, caPem, certificatePem, key, tlsCrypt);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(tlsCrypt);
        }
    }
}
