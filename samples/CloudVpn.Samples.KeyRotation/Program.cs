// A host that keeps two keys rotated in the file key store: a gateway's private key and a site's preshared key.
//   dotnet run --project samples/CloudVpn.Samples.KeyRotation -- [--once [--force]] [--CloudVpn:KeyStore=/path] [--CloudVpn:KeyRotation:Interval=00:01:00]
// Without --once it runs the rotation loop as a hosted service until stopped (Ctrl+C); with --once it rotates the due
// keys through every phase, waits out the overlap and exits (what a Kubernetes CronJob runs).
using CloudVpn;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using CloudVpn.Samples.KeyRotation;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var once = args.Contains("--once");
var force = args.Contains("--force");
var builder = Host.CreateApplicationBuilder(args.Where(a => a is not ("--once" or "--force")).ToArray());
var keyFolder = builder.Configuration["CloudVpn:KeyStore"] ?? Path.Combine(Path.GetTempPath(), "cloudvpn-sample-keys");

builder.Services.AddSingleton<IKeyRotationParticipant, AnnouncingParticipant>();
builder.Services.AddCloudVpn()
    .AddFileKeyStore(keyFolder)
    .AddKeyRotation(o =>
    {
        o.Keys.Add(new RotatedKey("gateway/private", RotatedKeyKind.PrivateKey));
        o.Keys.Add(new RotatedKey("psk/site-a", RotatedKeyKind.PresharedKey));
        o.Interval = builder.Configuration.GetValue("CloudVpn:KeyRotation:Interval", TimeSpan.FromMinutes(1));
        o.Overlap = builder.Configuration.GetValue("CloudVpn:KeyRotation:Overlap", TimeSpan.FromSeconds(10));
        o.CheckInterval = builder.Configuration.GetValue("CloudVpn:KeyRotation:CheckInterval", TimeSpan.FromSeconds(5));
        o.HistoryLength = builder.Configuration.GetValue("CloudVpn:KeyRotation:HistoryLength", 3);
    });

using var host = builder.Build();
if (once)
{
    // One-shot: no hosted services, just the loop's entry point; the exit code tells the CronJob how it went.
    var loop = host.Services.GetRequiredService<KeyRotationLoop>();
    var rotated = await loop.RunOnceAsync(force);
    Console.WriteLine($"rotated {rotated} key(s)");
    return 0;
}

await host.RunAsync();
return 0;
