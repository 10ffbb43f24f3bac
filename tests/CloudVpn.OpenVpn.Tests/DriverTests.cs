using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.OpenVpn.Tests;

public sealed class DriverTests : IDisposable
{
    private const string Version26 = "OpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]\nlibrary versions: OpenSSL 3.0.19 27 Jan 2026, LZO 2.10\nDCO version: N/A\n";
    private readonly string _keys = Path.Combine(Path.GetTempPath(), "cloudvpn-ovpn-di-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_keys))
        {
            Directory.Delete(_keys, recursive: true);
        }
    }

    [Fact]
    public void Probe_accepts_2_6_and_reports_whether_dco_can_be_used()
    {
        var withoutModule = OpenVpnProbe.Evaluate("/usr/sbin/openvpn", Version26, dcoModuleLoaded: false, tunDeviceExists: true);
        Assert.True(withoutModule.IsAvailable);
        Assert.Equal("2.6.14", withoutModule.Details!["version"]);
        Assert.StartsWith("unavailable: kernel module ovpn-dco is not loaded", withoutModule.Details["dco"], StringComparison.Ordinal);

        var withModule = OpenVpnProbe.Evaluate("/usr/sbin/openvpn", Version26, dcoModuleLoaded: true, tunDeviceExists: true);
        Assert.StartsWith("available", withModule.Details!["dco"], StringComparison.Ordinal);

        var noDcoBuild = OpenVpnProbe.Evaluate("/usr/sbin/openvpn", "OpenVPN 2.5.9 x86_64-pc-linux-gnu [SSL (OpenSSL)] [AEAD]\n", dcoModuleLoaded: true, tunDeviceExists: true);
        Assert.True(noDcoBuild.IsAvailable);
        Assert.Equal("unavailable: openvpn was built without DCO", noDcoBuild.Details!["dco"]);
    }

    [Theory]
    [InlineData("OpenVPN 2.4.12 x86_64-pc-linux-gnu [SSL (OpenSSL)]\n", true, "older than 2.5")]
    [InlineData("bash: something else\n", true, "no 'OpenVPN x.y' version line")]
    [InlineData(Version26, false, "/dev/net/tun is missing")]
    public void Probe_refuses_with_a_reason_a_user_can_act_on(string output, bool tun, string reason)
    {
        var result = OpenVpnProbe.Evaluate("/usr/sbin/openvpn", output, dcoModuleLoaded: false, tunDeviceExists: tun);
        Assert.False(result.IsAvailable);
        Assert.Contains(reason, result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_of_a_missing_binary_names_the_setting()
    {
        var result = await OpenVpnProbe.ProbeAsync("/nonexistent/openvpn", TestContext.Current.CancellationToken);
        Assert.False(result.IsAvailable);
        Assert.Contains("BinaryPath", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddOpenVpn_registers_the_openvpn_driver_once_and_the_selector_finds_it()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn(o => o.Driver = "openvpn").AddFileKeyStore(_keys).AddOpenVpn(o => o.RuntimeDirectory = "/tmp/cv").AddOpenVpn();
        await using var provider = services.BuildServiceProvider();

        var driver = Assert.Single(provider.GetServices<ITunnelDriver>());
        Assert.Equal(("openvpn", "openvpn"), (driver.Name, driver.Family));
        Assert.IsType<OpenVpnDriver>(driver);
        Assert.Equal("/tmp/cv", provider.GetRequiredService<IOptions<OpenVpnOptions>>().Value.RuntimeDirectory);

        if ((await driver.ProbeAsync(TestContext.Current.CancellationToken)).IsAvailable)
        {
            var selection = await provider.GetRequiredService<ITunnelDriverSelector>().SelectAsync(cancellationToken: TestContext.Current.CancellationToken);
            Assert.Same(driver, selection.Driver);
        }
    }

    [Fact]
    public async Task Bad_options_stop_the_host_with_every_problem_named()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn(o => o.Driver = "openvpn").AddFileKeyStore(_keys).AddOpenVpn(o =>
        {
            o.RuntimeDirectory = "relative/dir";
            o.BinaryPath = "openvpn";
            o.StopTimeout = TimeSpan.Zero;
            o.MaxRestartDelay = TimeSpan.FromMilliseconds(1);
            o.Pki.CrlRefreshBefore = TimeSpan.FromDays(365);
        });
        await using var provider = services.BuildServiceProvider();
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<OpenVpnOptions>>().Value);
        Assert.Equal(5, e.Failures.Count());
        foreach (var field in new[] { "CloudVpn:OpenVpn:RuntimeDirectory", "CloudVpn:OpenVpn:BinaryPath", "CloudVpn:OpenVpn:StopTimeout", "CloudVpn:OpenVpn:MaxRestartDelay", "CloudVpn:OpenVpn:Pki:CrlRefreshBefore" })
        {
            Assert.Contains(e.Failures, f => f.StartsWith(field + ":", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Opening_a_bad_spec_fails_before_anything_is_started()
    {
        using var store = new TestStore();
        var runtime = Path.Combine(Path.GetTempPath(), "cloudvpn-ovpn-rt-" + Guid.NewGuid().ToString("N"));
        var driver = new OpenVpnDriver(new OpenVpnOptions { RuntimeDirectory = runtime }, store.Store);
        var spec = Specs.Server(settings: new Dictionary<string, string> { ["openvpn.proto"] = "icmp" }, peers: [("alice", "10.8.0.10")]);
        var e = await Assert.ThrowsAsync<Configuration.OpenVpnConfigurationException>(async () => await driver.OpenAsync(spec, TestContext.Current.CancellationToken));
        Assert.Contains("DriverSettings[openvpn.proto]: 'icmp'", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(runtime));
        Assert.Empty(await store.Store.ListVersionsAsync("openvpn/ovpn0/ca/key", TestContext.Current.CancellationToken));
    }
}
