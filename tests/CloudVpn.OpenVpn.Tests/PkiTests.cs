using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CloudVpn.OpenVpn.Pki;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.OpenVpn.Tests;

public sealed class PkiTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly TestStore _store;

    public PkiTests() => _store = new TestStore(_time);

    public void Dispose() => _store.Dispose();

    private OpenVpnPki NewPki() => new(_store.Store, "openvpn/gw1", timeProvider: _time);

    [Fact]
    public async Task Ca_is_a_self_signed_P256_certificate_authority_that_may_sign_certificates_and_crls()
    {
        using var ca = await NewPki().GetCaCertificateAsync();

        Assert.Equal("CN=CloudVpn OpenVPN CA", ca.Subject);
        Assert.Equal(ca.Subject, ca.Issuer);
        using var key = ca.GetECDsaPublicKey();
        Assert.NotNull(key);
        Assert.Equal(256, key.KeySize);
        Assert.Equal(ECCurve.NamedCurves.nistP256.Oid.Value, key.ExportParameters(false).Curve.Oid.Value);
        var constraints = ca.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.True(constraints.CertificateAuthority);
        Assert.True(constraints.Critical);
        var usage = ca.Extensions.OfType<X509KeyUsageExtension>().Single();
        Assert.Equal(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, usage.KeyUsages);
        Assert.Equal(_time.GetUtcNow().AddDays(3650).UtcDateTime, ca.NotAfter.ToUniversalTime(), TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Server_and_client_certificates_chain_to_the_ca_with_the_right_key_usages()
    {
        var pki = NewPki();
        using var ca = await pki.GetCaCertificateAsync();
        using var server = await pki.GetServerCertificateAsync("gw1");
        using var client = await pki.GetClientCertificateAsync("alice");

        Assert.Equal("CN=gw1", server.Subject);
        Assert.Equal("CN=alice", client.Subject);
        Assert.Equal([OpenVpnPki.ServerAuthOid], Ekus(server));
        Assert.Equal([OpenVpnPki.ClientAuthOid], Ekus(client));
        foreach (var leaf in new[] { server, client })
        {
            Assert.Equal(ca.Subject, leaf.Issuer);
            Assert.False(leaf.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
            Assert.Equal(X509KeyUsageFlags.DigitalSignature, leaf.Extensions.OfType<X509KeyUsageExtension>().Single().KeyUsages);
            Assert.Equal(
                ca.Extensions.OfType<X509SubjectKeyIdentifierExtension>().Single().SubjectKeyIdentifier,
                Convert.ToHexString(leaf.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().Single().KeyIdentifier!.Value.Span));
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
            Assert.True(chain.Build(leaf), string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));
        }

        // A server certificate must not pass as a client one and the other way round.
        Assert.DoesNotContain(OpenVpnPki.ClientAuthOid, Ekus(server));
        Assert.NotEqual(server.SerialNumber, client.SerialNumber);
    }

    [Fact]
    public async Task Private_keys_live_in_the_key_store_match_their_certificates_and_survive_a_restart()
    {
        string thumbprint;
        using (var client = await NewPki().GetClientCertificateAsync("alice"))
        {
            thumbprint = client.Thumbprint;
        }

        // A new PKI object over the same store (a restarted process) sees the same CA and certificate.
        var again = NewPki();
        using var same = await again.GetClientCertificateAsync("alice");
        Assert.Equal(thumbprint, same.Thumbprint);
        Assert.True(await again.HasClientAsync("alice"));
        Assert.False(await again.HasClientAsync("bob"));

        var keyPem = await again.GetClientPrivateKeyPemAsync("alice");
        using var withKey = X509Certificate2.CreateFromPem(same.ExportCertificatePem(), Encoding.ASCII.GetString(keyPem));
        Assert.True(withKey.HasPrivateKey);
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", Encoding.ASCII.GetString(keyPem), StringComparison.Ordinal);

        // The key store holds the PKCS#8 key under the PKI root.
        using var stored = await _store.Store.GetAsync("openvpn/gw1/clients/alice/key");
        Assert.NotNull(stored);
        using var key = ECDsa.Create();
        key.ImportPkcs8PrivateKey(stored.Value, out _);
        using var publicKey = same.GetECDsaPublicKey()!;
        Assert.Equal(publicKey.ExportSubjectPublicKeyInfo(), key.ExportSubjectPublicKeyInfo());
        Assert.DoesNotContain("PRIVATE", stored.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_replicas_creating_the_pki_at_once_end_up_with_one_ca()
    {
        // Real clock: the losers of the race poll for the winner's certificate.
        using var store = new TestStore();
        var a = new OpenVpnPki(store.Store, "openvpn/gw1");
        var b = new OpenVpnPki(store.Store, "openvpn/gw1");
        var results = await Task.WhenAll(
            Enumerable.Range(0, 6).Select(i => Task.Run(async () => (await (i % 2 == 0 ? a : b).GetCaCertificateAsync()).Thumbprint)));
        Assert.Single(results.Distinct());
        Assert.Single(await store.Store.ListVersionsAsync("openvpn/gw1/ca/key"));
    }

    [Fact]
    public async Task Crl_starts_empty_lists_revoked_serials_with_growing_numbers_and_is_signed_by_the_ca()
    {
        var pki = NewPki();
        using var ca = await pki.GetCaCertificateAsync();
        using var alice = await pki.GetClientCertificateAsync("alice");
        using var bob = await pki.GetClientCertificateAsync("bob");

        var empty = ReadCrl(await pki.GetCrlPemAsync());
        Assert.Empty(empty.RevokedSerialNumbers);
        Assert.Equal(1, (int)empty.CrlNumber!.Value);
        Assert.Equal(ca.Subject, empty.Issuer);
        Assert.Equal(_time.GetUtcNow().AddDays(180), empty.NextUpdate!.Value, TimeSpan.FromSeconds(1));

        _time.Advance(TimeSpan.FromMinutes(3));
        Assert.Equal(alice.SerialNumber, await pki.RevokeClientAsync("alice"));
        await pki.RevokeClientAsync("alice");
        var revoked = ReadCrl(await pki.GetCrlPemAsync());
        Assert.Equal([alice.SerialNumber], revoked.RevokedSerialNumbers);
        Assert.DoesNotContain(bob.SerialNumber, revoked.RevokedSerialNumbers);
        Assert.Equal(3, (int)revoked.CrlNumber!.Value);

        using var caKey = ca.GetECDsaPublicKey()!;
        Assert.True(caKey.VerifyData(revoked.TbsCertList.Span, revoked.Signature.Span, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
        var tampered = revoked.TbsCertList.ToArray();
        tampered[^1] ^= 1;
        Assert.False(caKey.VerifyData(tampered, revoked.Signature.Span, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));

        // The revoked certificate stays (the profile in the field is dead); reissuing gives a new serial.
        using var reissued = await pki.ReissueClientCertificateAsync("alice");
        Assert.NotEqual(alice.SerialNumber, reissued.SerialNumber);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await pki.RevokeClientAsync("carol"));
    }

    [Fact]
    public async Task Crl_is_resigned_before_it_expires_keeping_its_entries()
    {
        var pki = NewPki();
        using var alice = await pki.GetClientCertificateAsync("alice");
        await pki.RevokeClientAsync("alice");
        var first = ReadCrl(await pki.GetCrlPemAsync());

        _time.Advance(TimeSpan.FromDays(100));
        Assert.Equal(first.CrlNumber, ReadCrl(await pki.GetCrlPemAsync()).CrlNumber);

        _time.Advance(TimeSpan.FromDays(60)); // 20 days left: below the 30-day refresh margin
        var refreshed = ReadCrl(await pki.GetCrlPemAsync());
        Assert.Equal(first.CrlNumber + 1, refreshed.CrlNumber);
        Assert.Equal([alice.SerialNumber], refreshed.RevokedSerialNumbers);
        Assert.Equal(_time.GetUtcNow().AddDays(180), refreshed.NextUpdate!.Value, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Tls_crypt_key_is_a_2048_bit_static_key_file_created_once()
    {
        var pki = NewPki();
        var file = await pki.GetTlsCryptKeyAsync();
        var text = Encoding.ASCII.GetString(file);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var begin = Array.IndexOf(lines, "-----BEGIN OpenVPN Static key V1-----");
        var end = Array.IndexOf(lines, "-----END OpenVPN Static key V1-----");
        Assert.Equal(16, end - begin - 1);
        Assert.All(lines[(begin + 1)..end], l => Assert.Matches("^[0-9a-f]{32}$", l));

        var raw = TlsCryptKey.Parse(file);
        Assert.Equal(256, raw.Length);
        Assert.Equal(file, TlsCryptKey.Format(raw));
        Assert.Equal(file, await NewPki().GetTlsCryptKeyAsync());
        Assert.NotEqual(file, TlsCryptKey.Generate());
    }

    [Theory]
    [InlineData("no markers at all", "markers")]
    [InlineData("-----BEGIN OpenVPN Static key V1-----\nzz\n-----END OpenVPN Static key V1-----", "hex digit")]
    [InlineData("-----BEGIN OpenVPN Static key V1-----\nabcd\n-----END OpenVPN Static key V1-----", "2 bytes, not 256")]
    public void Tls_crypt_parse_names_the_problem(string input, string expected)
    {
        var e = Assert.Throws<FormatException>(() => TlsCryptKey.Parse(Encoding.ASCII.GetBytes(input)));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("../escape")]
    [InlineData(".hidden")]
    public async Task Bad_common_names_are_refused_naming_the_field(string name)
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(async () => await NewPki().GetClientCertificateAsync(name));
        Assert.Contains("commonName", e.Message, StringComparison.Ordinal);
    }

    internal static CrlContents ReadCrl(byte[] pem)
    {
        var fields = PemEncoding.Find(Encoding.ASCII.GetString(pem));
        Assert.Equal("X509 CRL", Encoding.ASCII.GetString(pem)[fields.Label]);
        return CrlReader.Read(Convert.FromBase64String(Encoding.ASCII.GetString(pem)[fields.Base64Data]));
    }

    private static string[] Ekus(X509Certificate2 certificate) =>
        [.. certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value!)];
}
