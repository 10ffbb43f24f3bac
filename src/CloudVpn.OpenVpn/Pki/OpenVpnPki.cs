using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CloudVpn.KeyStores;

namespace CloudVpn.OpenVpn.Pki;

/// <summary>
/// The OpenVPN PKI, kept entirely in a key store under one root id: an ECDSA P-256 CA, the server certificate
/// (serverAuth), one client certificate per peer (clientAuth), the CRL and the tls-crypt key. Every item is created
/// once with a compare-and-swap write, so two replicas starting together end up with the same PKI, and it survives
/// restarts. Private keys are kept as PKCS#8 bytes in the store and handed out as PEM bytes, never as strings.
/// </summary>
public sealed class OpenVpnPki
{
    /// <summary>OID of the TLS server authentication extended key usage.</summary>
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>OID of the TLS client authentication extended key usage.</summary>
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);
    private readonly IKeyStore _store;
    private readonly TimeProvider _time;
    private readonly OpenVpnPkiOptions _options;

    /// <summary>Creates the PKI view over <paramref name="store"/>; nothing is generated until first use.</summary>
    /// <param name="store">Where every item is kept.</param>
    /// <param name="root">The id prefix, for example <c>openvpn/gw1</c>.</param>
    /// <param name="options">Names and lifetimes; defaults when null.</param>
    /// <param name="timeProvider">Clock for validity periods and CRL dates.</param>
    public OpenVpnPki(IKeyStore store, string root, OpenVpnPkiOptions? options = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        _store = store;
        Root = root.TrimEnd('/');
        _options = options ?? new OpenVpnPkiOptions();
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The id prefix every item lives under.</summary>
    public string Root { get; }

    private string CaKeyId => $"{Root}/ca/key";

    private string CaCertId => $"{Root}/ca/cert";

    private string CrlId => $"{Root}/crl";

    private string TlsCryptId => $"{Root}/tls-crypt";

    /// <summary>The CA certificate (public part), created with its key on first use.</summary>
    public async ValueTask<X509Certificate2> GetCaCertificateAsync(CancellationToken cancellationToken = default)
    {
        var existing = await ReadCertificateAsync(CaCertId, cancellationToken);
        if (existing is not null)
        {
            return existing;
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={_options.CaCommonName}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = _time.GetUtcNow();
        using var selfSigned = request.CreateSelfSigned(now - ClockSkew, now + _options.CaLifetime);

        // The key goes in first: a certificate without its key would be useless, a key without a certificate is replaced.
        var pkcs8 = key.ExportPkcs8PrivateKey();
        try
        {
            if (!await TryCreateAsync(CaKeyId, pkcs8, cancellationToken))
            {
                // Another replica won the race; use its CA.
                return await WaitForCertificateAsync(CaCertId, cancellationToken);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
        }

        var der = selfSigned.Export(X509ContentType.Cert);
        await _store.PutAsync(CaCertId, der, cancellationToken: cancellationToken);
        return X509CertificateLoader.LoadCertificate(der);
    }

    /// <summary>The server certificate for <paramref name="commonName"/>, issued on first use.</summary>
    public ValueTask<X509Certificate2> GetServerCertificateAsync(string commonName, CancellationToken cancellationToken = default) =>
        GetOrIssueAsync("server", ValidateCommonName(commonName, nameof(commonName)), ServerAuthOid, cancellationToken);

    /// <summary>The client certificate of peer <paramref name="commonName"/>, issued on first use.</summary>
    public ValueTask<X509Certificate2> GetClientCertificateAsync(string commonName, CancellationToken cancellationToken = default) =>
        GetOrIssueAsync("clients", ValidateCommonName(commonName, nameof(commonName)), ClientAuthOid, cancellationToken);

    /// <summary>The server's private key as PEM bytes (caller zeroes them).</summary>
    public ValueTask<byte[]> GetServerPrivateKeyPemAsync(string commonName, CancellationToken cancellationToken = default) =>
        ReadPrivateKeyPemAsync(KeyId("server", ValidateCommonName(commonName, nameof(commonName))), cancellationToken);

    /// <summary>A client's private key as PEM bytes (caller zeroes them).</summary>
    public ValueTask<byte[]> GetClientPrivateKeyPemAsync(string commonName, CancellationToken cancellationToken = default) =>
        ReadPrivateKeyPemAsync(KeyId("clients", ValidateCommonName(commonName, nameof(commonName))), cancellationToken);

    /// <summary>True when a client certificate exists for <paramref name="commonName"/>.</summary>
    public async ValueTask<bool> HasClientAsync(string commonName, CancellationToken cancellationToken = default) =>
        (await _store.ListVersionsAsync(CertId("clients", ValidateCommonName(commonName, nameof(commonName))), cancellationToken)).Count > 0;

    /// <summary>The tls-crypt key file (static key V1 format), created on first use. Caller zeroes the bytes.</summary>
    public async ValueTask<byte[]> GetTlsCryptKeyAsync(CancellationToken cancellationToken = default)
    {
        using (var existing = await _store.GetAsync(TlsCryptId, cancellationToken: cancellationToken))
        {
            if (existing is not null)
            {
                return existing.CopyValue();
            }
        }

        var generated = TlsCryptKey.Generate();
        try
        {
            if (await TryCreateAsync(TlsCryptId, generated, cancellationToken))
            {
                return generated.ToArray();
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(generated);
        }

        using var winner = await _store.GetAsync(TlsCryptId, cancellationToken: cancellationToken)
            ?? throw new KeyStoreException($"Key '{TlsCryptId}' vanished right after another writer created it.");
        return winner.CopyValue();
    }

    /// <summary>
    /// The current CRL as PEM, created empty on first use and re-signed (next CRL number) when less than
    /// <see cref="OpenVpnPkiOptions.CrlRefreshBefore"/> remains before its next-update date, because OpenVPN refuses
    /// every client once the CRL has expired.
    /// </summary>
    public async ValueTask<byte[]> GetCrlPemAsync(CancellationToken cancellationToken = default) =>
        SecretPem.Crl(await GetCrlDerAsync(cancellationToken));

    /// <summary>The current CRL in DER (see <see cref="GetCrlPemAsync"/>); read it with <see cref="CrlReader"/>.</summary>
    public async ValueTask<byte[]> GetCrlDerAsync(CancellationToken cancellationToken = default)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var current = await _store.GetAsync(CrlId, cancellationToken: cancellationToken);
            if (current is not null && ReadNextUpdate(current.Value) - _time.GetUtcNow() > _options.CrlRefreshBefore)
            {
                return current.CopyValue();
            }

            try
            {
                return await UpdateCrlAsync(current, null, cancellationToken);
            }
            catch (KeyStoreConflictException) when (attempt < 5)
            {
                // Another replica updated the CRL first; read again.
            }
        }
    }

    /// <summary>
    /// Revokes the client certificate of <paramref name="commonName"/>: its serial number goes into a new CRL
    /// (next CRL number). Returns the serial number revoked (hex). Revoking twice keeps one entry.
    /// </summary>
    public async ValueTask<string> RevokeClientAsync(string commonName, X509RevocationReason reason = X509RevocationReason.CessationOfOperation, CancellationToken cancellationToken = default)
    {
        ValidateCommonName(commonName, nameof(commonName));
        var certificate = await ReadCertificateAsync(CertId("clients", commonName), cancellationToken)
            ?? throw new InvalidOperationException($"Peer '{commonName}' has no client certificate to revoke.");
        using (certificate)
        {
            var serial = certificate.SerialNumberBytes.ToArray();
            for (var attempt = 0; ; attempt++)
            {
                using var current = await _store.GetAsync(CrlId, cancellationToken: cancellationToken);
                try
                {
                    await UpdateCrlAsync(current, (serial, reason), cancellationToken);
                    return certificate.SerialNumber;
                }
                catch (KeyStoreConflictException) when (attempt < 5)
                {
                }
            }
        }
    }

    /// <summary>
    /// Issues a fresh key and certificate for <paramref name="commonName"/>, replacing the current ones (for a peer
    /// whose old certificate was revoked or is about to expire).
    /// </summary>
    public async ValueTask<X509Certificate2> ReissueClientCertificateAsync(string commonName, CancellationToken cancellationToken = default)
    {
        ValidateCommonName(commonName, nameof(commonName));
        return await IssueAsync("clients", commonName, ClientAuthOid, replace: true, cancellationToken);
    }

    /// <summary>Checks a common name: 1-64 characters of letters, digits, '.', '_' and '-' (it is also a file name in the client-config folder).</summary>
    public static string ValidateCommonName(string commonName, string field)
    {
        if (string.IsNullOrEmpty(commonName) || commonName.Length > 64)
        {
            throw new ArgumentException($"{field}: a common name is 1 to 64 characters, got {(commonName is null ? "null" : commonName.Length.ToString(CultureInfo.InvariantCulture))}.", field);
        }

        foreach (var c in commonName)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') || commonName[0] == '.')
            {
                throw new ArgumentException($"{field}: '{commonName}' may hold only ASCII letters, digits, '.', '_' and '-' (not first '.').", field);
            }
        }

        return commonName;
    }

    private string CertId(string kind, string cn) => $"{Root}/{kind}/{cn}/cert";

    private string KeyId(string kind, string cn) => $"{Root}/{kind}/{cn}/key";

    private async ValueTask<X509Certificate2> GetOrIssueAsync(string kind, string cn, string ekuOid, CancellationToken cancellationToken)
    {
        var existing = await ReadCertificateAsync(CertId(kind, cn), cancellationToken);
        if (existing is not null)
        {
            return existing;
        }

        return await IssueAsync(kind, cn, ekuOid, replace: false, cancellationToken);
    }

    private async ValueTask<X509Certificate2> IssueAsync(string kind, string cn, string ekuOid, bool replace, CancellationToken cancellationToken)
    {
        using var ca = await GetCaCertificateAsync(cancellationToken);
        using var caKey = await ReadCaKeyAsync(cancellationToken);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={cn}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ekuOid)], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var now = _time.GetUtcNow();
        var notAfter = now + _options.CertificateLifetime;
        if (notAfter > ca.NotAfter)
        {
            notAfter = ca.NotAfter;
        }

        var serial = NewSerialNumber();
        using var issued = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), now - ClockSkew, notAfter, serial);
        var pkcs8 = key.ExportPkcs8PrivateKey();
        try
        {
            if (replace)
            {
                await _store.PutAsync(KeyId(kind, cn), pkcs8, cancellationToken: cancellationToken);
            }
            else if (!await TryCreateAsync(KeyId(kind, cn), pkcs8, cancellationToken))
            {
                return await WaitForCertificateAsync(CertId(kind, cn), cancellationToken);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
        }

        var der = issued.Export(X509ContentType.Cert);
        await _store.PutAsync(CertId(kind, cn), der, cancellationToken: cancellationToken);
        return X509CertificateLoader.LoadCertificate(der);
    }

    private async ValueTask<byte[]> UpdateCrlAsync(StoredSecret? current, (byte[] Serial, X509RevocationReason Reason)? revoke, CancellationToken cancellationToken)
    {
        using var ca = await GetCaCertificateAsync(cancellationToken);
        using var caKey = await ReadCaKeyAsync(cancellationToken);
        CertificateRevocationListBuilder builder;
        BigInteger number;
        if (current is null)
        {
            builder = new CertificateRevocationListBuilder();
            number = BigInteger.Zero;
        }
        else
        {
            builder = CertificateRevocationListBuilder.Load(current.Value.ToArray(), out number);
        }

        var now = _time.GetUtcNow();
        if (revoke is { } r)
        {
            builder.RemoveEntry(r.Serial);
            builder.AddEntry(r.Serial, now, r.Reason);
        }

        var der = builder.Build(
            ca.SubjectName,
            X509SignatureGenerator.CreateForECDsa(caKey),
            number + 1,
            now + _options.CrlLifetime,
            HashAlgorithmName.SHA256,
            X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false),
            now - ClockSkew);
        await _store.PutAsync(CrlId, der, current?.Version ?? 0, cancellationToken);
        return der;
    }

    private async ValueTask<ECDsa> ReadCaKeyAsync(CancellationToken cancellationToken)
    {
        using var secret = await _store.GetAsync(CaKeyId, cancellationToken: cancellationToken)
            ?? throw new KeyStoreException($"The CA key '{CaKeyId}' is missing from the key store while its certificate exists; restore it or delete '{CaCertId}' to start a new CA.");
        var key = ECDsa.Create();
        key.ImportPkcs8PrivateKey(secret.Value, out _);
        return key;
    }

    private async ValueTask<byte[]> ReadPrivateKeyPemAsync(string id, CancellationToken cancellationToken)
    {
        using var secret = await _store.GetAsync(id, cancellationToken: cancellationToken)
            ?? throw new KeyStoreException($"Key '{id}' does not exist in the key store; issue the certificate first.");
        return SecretPem.PrivateKey(secret.Value);
    }

    private async ValueTask<X509Certificate2?> ReadCertificateAsync(string id, CancellationToken cancellationToken)
    {
        using var secret = await _store.GetAsync(id, cancellationToken: cancellationToken);
        return secret is null ? null : X509CertificateLoader.LoadCertificate(secret.Value);
    }

    private async ValueTask<X509Certificate2> WaitForCertificateAsync(string id, CancellationToken cancellationToken)
    {
        // The winner of a creation race writes the key first and the certificate right after.
        for (var i = 0; i < 100; i++)
        {
            var certificate = await ReadCertificateAsync(id, cancellationToken);
            if (certificate is not null)
            {
                return certificate;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), _time, cancellationToken);
        }

        throw new KeyStoreException($"Key '{id}' was not written by the replica that created its private key; delete the half-made entry and retry.");
    }

    private async ValueTask<bool> TryCreateAsync(string id, byte[] value, CancellationToken cancellationToken)
    {
        try
        {
            await _store.PutAsync(id, value, expectedVersion: 0, cancellationToken);
            return true;
        }
        catch (KeyStoreConflictException)
        {
            return false;
        }
    }

    private static byte[] NewSerialNumber()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] = (byte)((serial[0] & 0x7F) | 0x10); // positive and full length
        return serial;
    }

    private static DateTimeOffset ReadNextUpdate(ReadOnlySpan<byte> crlDer) => CrlReader.Read(crlDer).NextUpdate ?? DateTimeOffset.MinValue;
}

/// <summary>Names and lifetimes of the PKI.</summary>
public sealed class OpenVpnPkiOptions
{
    /// <summary>Common name of the CA.</summary>
    public string CaCommonName { get; set; } = "CloudVpn OpenVPN CA";

    /// <summary>Validity of the CA certificate.</summary>
    public TimeSpan CaLifetime { get; set; } = TimeSpan.FromDays(3650);

    /// <summary>Validity of server and client certificates (capped at the CA's end).</summary>
    public TimeSpan CertificateLifetime { get; set; } = TimeSpan.FromDays(825);

    /// <summary>How far ahead a CRL's next-update date is set.</summary>
    public TimeSpan CrlLifetime { get; set; } = TimeSpan.FromDays(180);

    /// <summary>The CRL is re-signed when less than this remains before its next update.</summary>
    public TimeSpan CrlRefreshBefore { get; set; } = TimeSpan.FromDays(30);
}
