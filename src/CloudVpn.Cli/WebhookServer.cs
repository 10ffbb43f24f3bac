using System.Security.Cryptography.X509Certificates;
using CloudVpn.Kubernetes.Injection;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CloudVpn.Cli;

/// <summary>
/// <c>cloudvpn webhook</c>: the mutating admission webhook over HTTPS (<c>POST /mutate</c>, <c>GET /healthz</c>).
/// </summary>
public static class WebhookServer
{
    /// <summary>Largest AdmissionReview body accepted (the API server's own limit is 3 MiB per object).</summary>
    public const long MaxBodyBytes = 4 * 1024 * 1024;

    /// <summary>Runs until cancelled (or SIGTERM).</summary>
    public static async Task<int> RunAsync(CommandOptions options, TextWriter stderr, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(stderr);
        if (options.TlsCert is null || options.TlsKey is null)
        {
            await stderr.WriteLineAsync("cloudvpn webhook: --tls-cert and --tls-key are required (the API server only calls webhooks over HTTPS)").ConfigureAwait(false);
            return CliApp.UsageError;
        }

        X509Certificate2 certificate;
        try
        {
            certificate = LoadCertificate(options.TlsCert, options.TlsKey);
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            await stderr.WriteLineAsync($"cloudvpn webhook: cannot load the TLS certificate/key: {e.Message}").ConfigureAwait(false);
            return CliApp.UsageError;
        }

        var version = options.KubeVersion ?? await TryReadServerVersionAsync(options.Kubeconfig, stderr, cancellationToken).ConfigureAwait(false);
        await using var app = Build(options, certificate, version);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        await stderr.WriteLineAsync($"cloudvpn webhook: listening on https://{options.Listen}/mutate (sidecar form for Kubernetes {version?.ToString() ?? "current"})").ConfigureAwait(false);
        try
        {
            await app.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        return 0;
    }

    /// <summary>Builds the web application (used by the command and by tests).</summary>
    public static WebApplication Build(CommandOptions options, X509Certificate2 certificate, Version? serverVersion)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = MaxBodyBytes;
            k.Listen(options.Listen, l => l.UseHttps(certificate));
        });
        var app = builder.Build();
        var handler = new AdmissionReviewHandler(new SidecarInjector(options.Injection), () => serverVersion);
        var log = app.Logger;
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapPost("/mutate", async (HttpContext context) =>
        {
            string body;
            using (var reader = new StreamReader(context.Request.Body))
            {
                body = await reader.ReadToEndAsync(context.RequestAborted).ConfigureAwait(false);
            }

            var answer = handler.Handle(body);
            if (answer.Result is { } r)
            {
                log.LogInformation("admission review: {Decision} {Form}", r.Decision, r.Form);
            }
            else if (answer.StatusCode != 200)
            {
                log.LogWarning("admission review refused: {Reason}", answer.Body);
            }

            context.Response.StatusCode = answer.StatusCode;
            context.Response.ContentType = answer.StatusCode == 200 ? "application/json" : "text/plain; charset=utf-8";
            await context.Response.WriteAsync(answer.Body, context.RequestAborted).ConfigureAwait(false);
        });
        return app;
    }

    /// <summary>Loads a PEM certificate and key into a certificate Kestrel can serve.</summary>
    public static X509Certificate2 LoadCertificate(string certPath, string keyPath)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certPath, keyPath);
        // Kestrel on Linux wants an exportable key in a PKCS#12-backed certificate.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Reads the API server version through a kubeconfig (or in-cluster); null, with a note on <paramref name="stderr"/>, when it cannot.</summary>
    public static async Task<Version?> TryReadServerVersionAsync(string? kubeconfig, TextWriter stderr, CancellationToken cancellationToken)
    {
        try
        {
            var config = kubeconfig is not null
                ? KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig)
                : KubernetesClientConfiguration.IsInCluster() ? KubernetesClientConfiguration.InClusterConfig() : null;
            if (config is null)
            {
                await stderr.WriteLineAsync("cloudvpn webhook: no kubeconfig and not in a cluster: assuming a current Kubernetes (native sidecars); use --kube-version to choose").ConfigureAwait(false);
                return null;
            }

            using var client = new k8s.Kubernetes(config);
            var info = await client.Version.GetCodeAsync(cancellationToken).ConfigureAwait(false);
            return SidecarInjector.ParseServerVersion(info.Major, info.Minor);
        }
        catch (Exception e) when (e is HttpRequestException or k8s.Exceptions.KubeConfigException or k8s.Autorest.HttpOperationException or FormatException or IOException)
        {
            await stderr.WriteLineAsync($"cloudvpn webhook: cannot read the API server version ({e.Message}); assuming a current Kubernetes; use --kube-version to choose").ConfigureAwait(false);
            return null;
        }
    }
}
