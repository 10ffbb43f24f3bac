using CloudVpn.Testing;
using CloudVpn.KeyStores;
using CloudVpn.Samples.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Tests;

/// <summary>The sample gateway hosted in the test process with a fake driver, on a free loopback port.</summary>
internal sealed class InProcessGateway : IAsyncDisposable
{
    private InProcessGateway(WebApplication app, FakeTunnelDriver driver, int port, StringWriter console)
    {
        App = app;
        Driver = driver;
        Port = port;
        Console = console;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
    }

    public WebApplication App { get; }

    public FakeTunnelDriver Driver { get; }

    public int Port { get; }

    public StringWriter Console { get; }

    public HttpClient Http { get; }

    public FakeLogCollector Logs => App.Services.GetRequiredService<FakeLogCollector>();

    public GatewayState State => App.Services.GetRequiredService<GatewayState>();

    public GatewayOptions Options => App.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;

    /// <summary>Builds and starts the gateway; <paramref name="gateKeyStore"/> holds key reads until the returned store's gate opens.</summary>
    public static async Task<(InProcessGateway Gateway, GatedKeyStore? Gate)> StartAsync(string dataDir, FakeTunnelDriver? driver = null, bool gateKeyStore = false, params string[] extraArgs)
    {
        driver ??= new FakeTunnelDriver();
        var port = TestPaths.FreeTcpPort();
        var console = new StringWriter();
        GatedKeyStore? gate = null;
        string[] args =
        [
            "--data-dir", dataDir,
            "--http", $"127.0.0.1:{port}",
            "--public-endpoint", "192.0.2.1:51820",
            "--Gateway:StatusInterval=00:00:00.100",
            "--Gateway:PeersFilePollInterval=00:00:00.200",
            .. extraArgs,
        ];
        var app = GatewayApp.Build(
            args,
            cloudVpn =>
            {
                cloudVpn.Services.AddSingleton(driver);
                cloudVpn.AddTunnelDriver<FakeTunnelDriver>(driver.Name, driver.Family);
            },
            services =>
            {
                services.AddLogging(b => b.ClearProviders().AddFakeLogging().SetMinimumLevel(LogLevel.Debug));
                services.AddSingleton(sp => new GatewayConsole(sp.GetRequiredService<IOptions<GatewayOptions>>(), console));
                if (gateKeyStore)
                {
                    services.AddSingleton<IKeyStore>(sp =>
                    {
                        gate = new GatedKeyStore(sp.GetRequiredService<IKeyStoreProvider>().GetStore());
                        return gate;
                    });
                }
            });
        await app.StartAsync();
        var gateway = new InProcessGateway(app, driver, port, console);
        if (gateKeyStore)
        {
            await Eventually.HoldsAsync(() => gate is not null, "the gateway to ask the key store");
        }

        return (gateway, gate);
    }

    public async Task<string> MetricsAsync() => await Http.GetStringAsync(new Uri("/metrics", UriKind.Relative));

    public async Task<double?> MetricAsync(string nameAndLabels)
    {
        foreach (var line in (await MetricsAsync()).Split('\n'))
        {
            if (line.StartsWith(nameAndLabels + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(nameAndLabels.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        await Console.DisposeAsync();
    }
}
