// A WireGuard gateway host that prefers the Linux kernel module and falls back to CloudVpn's userspace WireGuard.
//
//   dotnet run -- --Tunnel:Name=wg0 --Tunnel:Address=10.8.0.1/32 --Tunnel:ListenPort=51820 \
//                 --Tunnel:Peers:0:PublicKey=<base64> --Tunnel:Peers:0:AllowedIps:0=10.8.0.2/32
//   --CloudVpn:Driver=wireguard-userspace   forces the userspace driver (wireguard-kernel forces the kernel one)
//   --Sample:SelectOnly=true                only probes the drivers, prints the choice and exits
//
// The gateway's private key lives in the file key store (--Sample:KeyDirectory, default /var/lib/cloudvpn/keys) under
// the id "gateway"; the first start creates it and every later start reuses it, so peers keep working across restarts.
using CloudVpn;
using CloudVpn.KeyStores;
using CloudVpn.Samples.KernelWireGuard;
using CloudVpn.WireGuard.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
var sample = builder.Configuration.GetSection("Sample").Get<SampleOptions>() ?? new SampleOptions();
builder.Services.AddOptions<GatewayTunnelOptions>().Bind(builder.Configuration.GetSection("Tunnel"));
builder.Services.AddSingleton(sample);
builder.Services
    .AddCloudVpn(o => builder.Configuration.GetSection(CloudVpnOptions.SectionName).Bind(o))
    .AddFileKeyStore(sample.KeyDirectory)
    .AddWireGuardKernel()   // priority 100: chosen when the module answers and CAP_NET_ADMIN is held
    .AddWireGuard();        // priority 10: the fallback
builder.Services.AddHostedService<GatewayService>();
await builder.Build().RunAsync();
