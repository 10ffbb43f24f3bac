using System.Net;
using CloudVpn.Samples.Sidecar;

namespace CloudVpn.Samples.Sidecar.Tests;

public sealed class SidecarOptionsTests
{
    [Fact]
    public void Parses_what_the_injector_passes()
    {
        var o = SidecarOptions.Parse(["--config-dir", "/etc/cloudvpn", "--gateway", "vpn-gateway", "--http", "0.0.0.0:9102"]);
        Assert.Equal("/etc/cloudvpn", o.ConfigDirectory);
        Assert.Equal("vpn-gateway", o.Gateway);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 9102), o.Http);
        Assert.False(o.WaitReady);
    }

    [Fact]
    public void Bad_options_are_all_named()
    {
        var e = Assert.Throws<ArgumentException>(() => SidecarOptions.Parse(["--http", "nowhere", "--interface", "a-name-longer-than-15", "--probe", "x.y", "--failover-after", "0", "--color", "red"]));
        Assert.Contains("--http: 'nowhere'", e.Message, StringComparison.Ordinal);
        Assert.Contains("--interface", e.Message, StringComparison.Ordinal);
        Assert.Contains("--probe: 'x.y'", e.Message, StringComparison.Ordinal);
        Assert.Contains("--failover-after: '0'", e.Message, StringComparison.Ordinal);
        Assert.Contains("unknown option '--color'", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("10.8.0.0/24", "10.8.0.1")]
    [InlineData("10.99.0.7/32", "10.99.0.7")]
    [InlineData("fd00:8::/64", "fd00:8::1")]
    public void Default_probe_is_the_first_host_of_the_gateways_first_network(string network, string expected)
    {
        Assert.Equal(IPAddress.Parse(expected), SidecarService.DefaultProbeAddress([IPNetwork.Parse(network)]));
    }
}
