// The CloudVpn client sidecar (what `cloudvpn inject` and the admission webhook add beside an application):
//   cloudvpn-sidecar --config-dir /etc/cloudvpn --gateway NAME --http 0.0.0.0:9102 [--interface cvpn0] [--state-dir /run/cloudvpn]
//                    [--probe ADDRESS] [--failover-after 3]
//   cloudvpn-sidecar --wait-ready --http 127.0.0.1:9102     (post-start hook: returns once the tunnel is up)
using CloudVpn;
using CloudVpn.KeyStores;
using CloudVpn.Samples.Sidecar;
using CloudVpn.WireGuard.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;

SidecarOptions options;
try
{
    options = SidecarOptions.Parse(args);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync($"cloudvpn-sidecar: {e.Message}").ConfigureAwait(false);
    return 2;
}

if (options.WaitReady)
{
    return await ReadinessWaiter.WaitAsync(options.Http, TimeSpan.FromMinutes(2), Console.Error).ConfigureAwait(false);
}

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.Logging.AddJsonConsole(o => o.UseUtcTimestamp = true);
builder.WebHost.ConfigureKestrel(k => k.Listen(options.Http));
builder.Services.AddSingleton(options);
builder.Services.AddSingleton<SidecarState>();
builder.Services.TryAddSingleton(TimeProvider.System);
builder.Services.AddCloudVpn(o => o.Driver = "wireguard")
    .AddFileKeyStore(Path.Combine(options.StateDirectory, "keys"), "sidecar", isDefault: true)
    .AddWireGuard();
builder.Services.AddHostedService<SidecarService>();

var app = builder.Build();
app.MapGet("/healthz", () => Results.Text("ok\n"));
app.MapGet("/readyz", (SidecarState s) => s.Ready ? Results.Text($"ready: {s.Reason}\n") : Results.Text($"not ready: {s.Reason}\n", statusCode: 503));
app.MapGet("/status", (SidecarState s) => Results.Json(new SidecarStatus(s.Ready, s.Reason, s.Endpoint, s.Failovers, s.Reloads), SidecarJson.Default.SidecarStatus));
await app.RunAsync().ConfigureAwait(false);
return 0;
