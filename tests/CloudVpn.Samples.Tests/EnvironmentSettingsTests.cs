using CloudVpn.Samples.Gateway;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Tests;

/// <summary>Tests that set process environment variables run alone, so no other test builds a gateway meanwhile.</summary>
[CollectionDefinition(nameof(EnvironmentSettingsTests), DisableParallelization = true)]
public sealed class EnvironmentSettingsCollection;

[Collection(nameof(EnvironmentSettingsTests))]
public sealed class EnvironmentSettingsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Switches_environment_and_files_all_set_options_with_the_command_line_winning()
    {
        Environment.SetEnvironmentVariable("CLOUDVPN_Gateway__ListenPort", "51999");
        Environment.SetEnvironmentVariable("CLOUDVPN_Gateway__Mtu", "1380");
        try
        {
            var dataDir = Path.Combine(_dir.Path, "data");
            using var app = GatewayApp.Build(["--data-dir", dataDir, "--listen-port", "51821", "--interface", "cv9", "--address", "10.77.0.1/16", "--public-endpoint", "vpn.example.com:443", "--http", "127.0.0.1:19999", "--driver", "wireguard-userspace"]);
            var o = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;
            Assert.Equal(dataDir, o.DataDir);
            Assert.Equal(51821, o.ListenPort);
            Assert.Equal(1380, o.Mtu);
            Assert.Equal("cv9", o.Interface);
            Assert.Equal("10.77.0.1/16", o.Address);
            Assert.Equal("vpn.example.com:443", o.PublicEndpoint);
            Assert.Equal("127.0.0.1:19999", o.Http);
            Assert.Equal("wireguard-userspace", app.Services.GetRequiredService<IOptions<CloudVpnOptions>>().Value.Driver);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLOUDVPN_Gateway__ListenPort", null);
            Environment.SetEnvironmentVariable("CLOUDVPN_Gateway__Mtu", null);
        }
    }
}
