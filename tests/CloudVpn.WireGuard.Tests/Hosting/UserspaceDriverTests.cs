using System.Net;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Hosting;
using CloudVpn.WireGuard.Interop;
using CloudVpn.WireGuard.Keys;
using Microsoft.Extensions.DependencyInjection;
using NSubstitute;

namespace CloudVpn.WireGuard.Tests.Hosting;

public sealed class UserspaceDriverTests
{
    private const ulong AllCaps = 0x000001fffeffffff;
    private const ulong NoNetAdmin = AllCaps & ~(1UL << 12);

    [Fact]
    public void CapEff_is_parsed_from_proc_status_text()
    {
        const string Status = "Name:\tdotnet\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000001000\nCapBnd:\t000001ffffffffff\n";
        var mask = LinuxCapabilities.ParseEffective(Status);
        Assert.Equal(0x1000UL, mask);
        Assert.True(LinuxCapabilities.Has(mask!.Value, LinuxCapabilities.NetAdmin));
        Assert.False(LinuxCapabilities.Has(0x2000, LinuxCapabilities.NetAdmin));
        Assert.Null(LinuxCapabilities.ParseEffective("Name:\tx\n"));
        Assert.Null(LinuxCapabilities.ParseEffective("CapEff:\tnot-hex\n"));
    }

    [Fact]
    public async Task Probe_names_missing_CAP_NET_ADMIN()
    {
        var driver = new UserspaceWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, null, () => null, () => NoNetAdmin);
        var probe = await driver.ProbeAsync();
        Assert.False(probe.IsAvailable);
        Assert.Contains("CAP_NET_ADMIN", probe.Reason, StringComparison.Ordinal);
        Assert.Equal(NoNetAdmin.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), probe.Details!["capEff"]);
    }

    [Fact]
    public async Task Probe_names_a_missing_tun_device()
    {
        var driver = new UserspaceWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, null, () => "/dev/net/tun does not exist", () => AllCaps);
        var probe = await driver.ProbeAsync();
        Assert.False(probe.IsAvailable);
        Assert.Contains("/dev/net/tun", probe.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_passes_with_tun_and_capability()
    {
        var driver = new UserspaceWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, null, () => null, () => AllCaps);
        var probe = await driver.ProbeAsync();
        Assert.True(probe.IsAvailable, probe.Reason);
        Assert.Equal("wireguard-userspace", driver.Name);
        Assert.Equal("wireguard", driver.Family);
        Assert.Equal(10, driver.Priority);
    }

    [Fact]
    public async Task AddWireGuard_registers_the_driver_and_the_selector_finds_it_for_the_family()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn().AddWireGuard().AddWireGuard();
        await using var provider = services.BuildServiceProvider();
        var drivers = provider.GetServices<ITunnelDriver>().ToArray();
        Assert.Single(drivers);
        Assert.IsType<UserspaceWireGuardDriver>(drivers[0]);
        Assert.Contains(("wireguard-userspace", "wireguard"), provider.GetRequiredService<CloudVpnRegistry>().DriverTypes);
    }

    [Fact]
    public void AddWireGuard_without_AddCloudVpn_says_what_to_do()
    {
        var builder = Substitute.For<ICloudVpnBuilder>();
        builder.Services.Returns(new ServiceCollection());
        var error = Assert.Throws<InvalidOperationException>(() => builder.AddWireGuard());
        Assert.Contains("AddCloudVpn", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_invalid_spec_lists_every_problem_by_field()
    {
        var keys = Substitute.For<IKeyStoreProvider>();
        var driver = new UserspaceWireGuardDriver(keys, null, null, () => null, () => AllCaps);
        var good = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey().ToBase64();
        var spec = new TunnelSpec(
            new DeviceSpec("a-name-much-too-long", new KeyReference("gw"), 70000, [IPNetwork.Parse("10.8.0.1/24")], Mtu: 100),
            [
                new PeerSpec("not-a-key", []),
                new PeerSpec(good, [IPNetwork.Parse("10.0.0.0/24")]) { Endpoint = "nowhere", PersistentKeepalive = TimeSpan.FromMilliseconds(1500) },
                new PeerSpec(good, []),
            ]);

        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await driver.OpenAsync(spec));

        Assert.Contains("Device.Name", error.Message, StringComparison.Ordinal);
        Assert.Contains("Device.ListenPort: 70000", error.Message, StringComparison.Ordinal);
        Assert.Contains("Device.Mtu: 100", error.Message, StringComparison.Ordinal);
        Assert.Contains("Device.Addresses[0]: 10.8.0.0/24 is a network", error.Message, StringComparison.Ordinal);
        Assert.Contains("Peers[0].PublicKey", error.Message, StringComparison.Ordinal);
        Assert.Contains("Peers[1].Endpoint: 'nowhere'", error.Message, StringComparison.Ordinal);
        Assert.Contains("Peers[1].PersistentKeepalive", error.Message, StringComparison.Ordinal);
        Assert.Contains("Peers[2].PublicKey", error.Message, StringComparison.Ordinal);
        await keys.DidNotReceiveWithAnyArgs().ResolveAsync(default!, default);
    }

    [Fact]
    public async Task Unknown_driver_settings_are_refused_by_name()
    {
        var driver = new UserspaceWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, null, () => null, () => AllCaps);
        var spec = new TunnelSpec(new DeviceSpec("wg0", new KeyReference("gw"), 0, []), [])
        {
            DriverSettings = new Dictionary<string, string> { ["wireguard-userspace.rutes"] = "false", ["openvpn.proto"] = "tcp" },
        };
        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await driver.OpenAsync(spec));
        Assert.Contains("wireguard-userspace.rutes: unknown setting", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("192.0.2.1:51820", true, "192.0.2.1", 51820)]
    [InlineData("[2001:db8::1]:443", true, "2001:db8::1", 443)]
    [InlineData("gw.example.com:51820", true, "gw.example.com", 51820)]
    [InlineData("2001:db8::1:443", false, "", 0)]
    [InlineData("192.0.2.1", false, "", 0)]
    [InlineData("192.0.2.1:0", false, "", 0)]
    [InlineData("192.0.2.1:99999", false, "", 0)]
    [InlineData("[192.0.2.1]:5", false, "", 0)]
    public void Endpoints_are_split_as_wg_writes_them(string text, bool ok, string host, int port)
    {
        Assert.Equal(ok, DesiredState.TrySplitEndpoint(text, out var h, out var p));
        if (ok)
        {
            Assert.Equal(host, h);
            Assert.Equal(port, p);
        }
    }

    [Theory]
    [InlineData("10.8.0.1/24", "10.8.0.1", 24)]
    [InlineData("fd00::1/64", "fd00::1", 64)]
    [InlineData("192.0.2.7", "192.0.2.7", 32)]
    public void Interface_addresses_keep_their_host_part(string text, string address, int prefix)
    {
        var parsed = InterfaceAddress.Parse(text);
        Assert.Equal(IPAddress.Parse(address), parsed.Address);
        Assert.Equal(prefix, parsed.PrefixLength);
        Assert.Equal($"{address}/{prefix}", parsed.ToString());
    }

    [Theory]
    [InlineData("10.8.0.1/33")]
    [InlineData("10.8.0.1/-1")]
    [InlineData("fd00::1/129")]
    [InlineData("nonsense/24")]
    [InlineData("")]
    public void Bad_interface_addresses_are_refused(string text) => Assert.False(InterfaceAddress.TryParse(text, out _));

    [Theory]
    [InlineData("10.1.2.3/24", "10.1.2.0/24")]
    [InlineData("10.1.2.3/32", "10.1.2.3/32")]
    [InlineData("0.0.0.0/0", "0.0.0.0/0")]
    [InlineData("fd00::1:2/64", "fd00::/64")]
    [InlineData("fd00::ff/121", "fd00::80/121")]
    public void Allowed_ips_lose_their_host_bits(string input, string expected)
    {
        Assert.Equal(IPNetwork.Parse(expected), DesiredState.Normalize(new IPNetwork(IPAddress.Parse(input.Split('/')[0]), int.Parse(input.Split('/')[1], System.Globalization.CultureInfo.InvariantCulture))));
    }
}
