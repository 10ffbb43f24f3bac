using System.Net;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using CloudVpn.WireGuard.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Gateway;

/// <summary>The composition root of the sample gateway, shared by Program and the tests.</summary>
internal static class GatewayApp
{
    /// <summary>Environment variables with this prefix are settings: <c>CLOUDVPN_Gateway__ListenPort=51821</c>.</summary>
    public const string EnvironmentPrefix = "CLOUDVPN_";

    /// <summary>Short command-line switches and the settings they set.</summary>
    public static IReadOnlyDictionary<string, string> SwitchMappings { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["--data-dir"] = "Gateway:DataDir",
        ["--listen-port"] = "Gateway:ListenPort",
        ["--interface"] = "Gateway:Interface",
        ["--address"] = "Gateway:Address",
        ["--public-endpoint"] = "Gateway:PublicEndpoint",
        ["--http"] = "Gateway:Http",
        ["--driver"] = "CloudVpn:Driver",
    };

    /// <summary>
    /// Builds the gateway. <paramref name="configureDrivers"/> replaces the default drivers (tests pass a fake one);
    /// <paramref name="configureServices"/> runs last (tests swap the clock or the console).
    /// </summary>
    public static WebApplication Build(string[] args, Action<ICloudVpnBuilder>? configureDrivers = null, Action<IServiceCollection>? configureServices = null, GatewayMode mode = GatewayMode.Serve)
    {
        var configFile = TakeConfigFile(ref args);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true, reloadOnChange: false);
        if (configFile is not null)
        {
            // JSON is also valid YAML, so a chart can render this file as JSON under any name
            builder.Configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false, reloadOnChange: false);
        }

        builder.Configuration
            .AddEnvironmentVariables(EnvironmentPrefix)
            .AddCommandLine(args, SwitchMappings.ToDictionary());

        builder.Logging.ClearProviders();
        // Program reports start failures itself (settings errors one per line); the host's own copy would repeat them with a stack trace
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Logging.AddJsonConsole(o =>
        {
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
            o.IncludeScopes = false;
            // relaxed escaping keeps base64 keys and endpoints readable ('+' stays '+'); output is still valid JSON
            o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        });

        var services = builder.Services;
        services.AddOptions<GatewayOptions>().Bind(builder.Configuration.GetSection(GatewayOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddOptions<CloudVpnOptions>().Bind(builder.Configuration.GetSection(CloudVpnOptions.SectionName));

        var dataDir = builder.Configuration[$"{GatewayOptions.SectionName}:{nameof(GatewayOptions.DataDir)}"] ?? new GatewayOptions().DataDir;
        var cloudVpn = services.AddCloudVpn()
            .AddFileKeyStore(Path.IsPathFullyQualified(dataDir) ? Path.Combine(dataDir, "keys") : "/nonexistent-data-dir/keys", "file", isDefault: true);
        (configureDrivers ?? AddDefaultDrivers)(cloudVpn);
        AddKeyRotation(cloudVpn, builder.Configuration.GetSection("CloudVpn:KeyRotation"), mode);

        services.AddSingleton<GatewayKey>();
        services.AddSingleton<ConnectionEvents>();
        services.AddSingleton<GatewayState>();
        services.AddSingleton(sp => new GatewayConsole(sp.GetRequiredService<IOptions<GatewayOptions>>()));
        if (mode == GatewayMode.Serve)
        {
            services.AddHostedService<GatewayService>();
        }

        builder.WebHost.ConfigureKestrel(k =>
        {
            // an invalid value is reported by options validation, which runs before Kestrel binds
            if (IPEndPoint.TryParse(builder.Configuration[$"{GatewayOptions.SectionName}:{nameof(GatewayOptions.Http)}"] ?? new GatewayOptions().Http, out var http))
            {
                k.Listen(http);
            }
        });

        configureServices?.Invoke(services);
        var app = builder.Build();
        MapEndpoints(app);
        return app;
    }

    /// <summary>The WireGuard drivers: the kernel module when it is there, else userspace WireGuard on a TUN device.</summary>
    public static void AddDefaultDrivers(ICloudVpnBuilder cloudVpn)
    {
        ArgumentNullException.ThrowIfNull(cloudVpn);
        // both register under the family "wireguard"; the selector tries the kernel driver first (higher priority) and
        // logs why it fell back when the module or CAP_NET_ADMIN is missing
        cloudVpn.AddWireGuardKernel().AddWireGuard();
    }

    /// <summary>
    /// The key rotation loop, when <c>CloudVpn:KeyRotation:Interval</c> is set (off by default: a new gateway key needs
    /// every client to learn the new public key). The loop writes new versions of <see cref="GatewayKey.KeyId"/>; the
    /// gateway switches to each at the loop's switch phase, counts it in <c>cloudvpn_key_rotations_total</c> and logs
    /// <c>key_rotated</c>. Without the loop, a version written by someone else (a one-shot rotation job) is taken when it appears.
    /// </summary>
    public static void AddKeyRotation(ICloudVpnBuilder cloudVpn, IConfigurationSection section, GatewayMode mode = GatewayMode.Serve)
    {
        ArgumentNullException.ThrowIfNull(cloudVpn);
        ArgumentNullException.ThrowIfNull(section);
        var enabled = mode == GatewayMode.Serve && !string.IsNullOrWhiteSpace(section["Interval"]);
        cloudVpn.Services.AddSingleton(new GatewayKeySwitch { DrivenByRotationLoop = enabled });
        if (mode == GatewayMode.RotateKeys)
        {
            // one shot (a CronJob): no participant in this process; the running gateway takes the new version when it
            // appears in the store. The loop's hosted service is registered but never started in this mode.
            cloudVpn.AddKeyRotation(o =>
            {
                section.Bind(o);
                o.Keys.Add(new RotatedKey(GatewayKey.KeyId, RotatedKeyKind.PrivateKey));
            });
            return;
        }

        if (!enabled)
        {
            return;
        }

        cloudVpn.Services.AddSingleton<IKeyRotationParticipant, GatewayKeyRotationParticipant>();
        cloudVpn.AddKeyRotation(o =>
        {
            section.Bind(o);
            o.Keys.Add(new RotatedKey(GatewayKey.KeyId, RotatedKeyKind.PrivateKey));
        });
    }

    private static void MapEndpoints(WebApplication app)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", (GatewayState state) =>
        {
            var readiness = state.GetReadiness();
            return Results.Json(
                new ReadinessBody(readiness.IsReady, readiness.Checks),
                ReadinessJsonContext.Default.ReadinessBody,
                statusCode: readiness.IsReady ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        });
        app.MapGet("/metrics", (GatewayState state) =>
            Results.Text(MetricsExposition.Write(state.Snapshot(), state.GetReadiness().IsReady), MetricsExposition.ContentType));
    }

    /// <summary>Takes <c>--config FILE</c> (or <c>--config=FILE</c>) out of the arguments: an extra JSON settings file.</summary>
    internal static string? TakeConfigFile(ref string[] args)
    {
        string? file = null;
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--config" && i + 1 < args.Length)
            {
                file = args[++i];
            }
            else if (args[i].StartsWith("--config=", StringComparison.Ordinal))
            {
                file = args[i]["--config=".Length..];
            }
            else
            {
                rest.Add(args[i]);
            }
        }

        args = [.. rest];
        return file;
    }

    /// <summary>Settings errors, one per line, from a failed start (or null when <paramref name="e"/> is something else).</summary>
    public static IReadOnlyList<string>? SettingsErrors(Exception e) => e switch
    {
        OptionsValidationException v => [.. v.Failures],
        AggregateException a when a.InnerExceptions.All(i => i is OptionsValidationException) =>
            [.. a.InnerExceptions.Cast<OptionsValidationException>().SelectMany(v => v.Failures)],
        _ => null,
    };
}

/// <summary>What the process is started for.</summary>
internal enum GatewayMode
{
    /// <summary>Run the gateway.</summary>
    Serve,

    /// <summary>Rotate the gateway key once (<c>rotate-keys</c>, for a CronJob) and exit.</summary>
    RotateKeys,
}

/// <summary>The body of <c>/readyz</c>.</summary>
/// <param name="Ready">Whether the gateway is ready.</param>
/// <param name="Checks">Each check with "ok: ..." or "failing: ...".</param>
internal sealed record ReadinessBody(bool Ready, IReadOnlyDictionary<string, string> Checks);

[System.Text.Json.Serialization.JsonSerializable(typeof(ReadinessBody))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class ReadinessJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
