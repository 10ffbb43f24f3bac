using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CloudVpn.Cli;
using Microsoft.AspNetCore.Builder;

namespace CloudVpn.Cli.Tests;

/// <summary>A webhook server on loopback with a fresh self-signed certificate for 127.0.0.1.</summary>
internal sealed class RunningWebhook : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _dir;

    private RunningWebhook(WebApplication app, string dir, X509Certificate2 certificate, int port)
    {
        _app = app;
        _dir = dir;
        Certificate = certificate;
        Port = port;
    }

    public X509Certificate2 Certificate { get; }

    public int Port { get; }

    public Uri MutateUri => new($"https://127.0.0.1:{Port}/mutate");

    /// <summary>The CA bundle the API server needs (our self-signed certificate, PEM).</summary>
    public string CaBundlePem => Certificate.ExportCertificatePem();

    public static async Task<RunningWebhook> StartAsync(Version? serverVersion, int? port = null)
    {
        var dir = Directory.CreateTempSubdirectory("cloudvpn-webhook-").FullName;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=cloudvpn-injector", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        // the certificate is checked against the real clock by the TLS stack
        var now = TimeProvider.System.GetUtcNow();
        using var cert = request.CreateSelfSigned(now.AddMinutes(-5), now.AddHours(1));
        var certPath = Path.Combine(dir, "tls.crt");
        var keyPath = Path.Combine(dir, "tls.key");
        await File.WriteAllTextAsync(certPath, cert.ExportCertificatePem());
        await File.WriteAllTextAsync(keyPath, key.ExportPkcs8PrivateKeyPem());

        var p = port ?? FreePort();
        var options = CommandOptions.Parse(["--listen", $"127.0.0.1:{p}", "--tls-cert", certPath, "--tls-key", keyPath, "--image", "registry.example/cloudvpn-sidecar:1.0", "--route", "10.60.0.0/16"]);
        var served = WebhookServer.LoadCertificate(certPath, keyPath);
        var app = WebhookServer.Build(options, served, serverVersion);
        await app.StartAsync();
        return new RunningWebhook(app, dir, X509CertificateLoader.LoadCertificate(cert.RawData), p);
    }

    /// <summary>An HTTP client that trusts exactly this webhook's certificate.</summary>
    public HttpClient TrustingClient()
    {
        var expected = Certificate.RawData;
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, c, _, _) => c is not null && c.RawData.AsSpan().SequenceEqual(expected),
        };
        return new HttpClient(handler);
    }

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _app.StopAsync();
        await _app.DisposeAsync();
        Certificate.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
