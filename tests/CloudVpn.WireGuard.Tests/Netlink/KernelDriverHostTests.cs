using CloudVpn.KeyStores;
using CloudVpn.Testing;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Hosting;
using CloudVpn.WireGuard.Netlink;
using Microsoft.Extensions.DependencyInjection;
using NSubstitute;

namespace CloudVpn.WireGuard.Tests.Netlink;

public sealed class KernelDriverHostTests
{
    private const ulong AllCaps = 0x1ffffffffff;
    private const ulong NoNetAdmin = AllCaps & ~(1UL << 12);

    [Fact]
    public async Task Probe_says_module_not_loaded_when_the_family_does_not_resolve()
    {
        var driver = new KernelWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, () => (false, new WireGuardModuleNotLoadedException().Message), () => AllCaps);
        var probe = await driver.ProbeAsync(TestContext.Current.CancellationToken);
        Assert.False(probe.IsAvailable);
        Assert.StartsWith("WireGuard kernel module not loaded", probe.Reason, StringComparison.Ordinal);
        Assert.Contains("modprobe wireguard", probe.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_needs_cap_net_admin()
    {
        var driver = new KernelWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, () => (true, "family resolves"), () => NoNetAdmin);
        var probe = await driver.ProbeAsync(TestContext.Current.CancellationToken);
        Assert.False(probe.IsAvailable);
        Assert.Contains("CAP_NET_ADMIN", probe.Reason, StringComparison.Ordinal);

        var ok = new KernelWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, () => (true, "family resolves"), () => AllCaps);
        var passed = await ok.ProbeAsync(TestContext.Current.CancellationToken);
        Assert.True(passed.IsAvailable, passed.Reason);
        Assert.Equal(100, ok.Priority);
        Assert.Equal("wireguard", ok.Family);
        Assert.Equal("wireguard-kernel", ok.Name);
    }

    [Fact]
    public async Task Real_probe_agrees_with_the_loaded_modules()
    {
        // /sys/module/wireguard exists exactly when the module is loaded (or built in): the probe must say the same.
        var loaded = Directory.Exists("/sys/module/wireguard");
        var driver = new KernelWireGuardDriver(Substitute.For<IKeyStoreProvider>());
        var probe = await driver.ProbeAsync(TestContext.Current.CancellationToken);
        if (loaded)
        {
            Assert.True(probe.IsAvailable || probe.Reason.Contains("CAP_NET_ADMIN", StringComparison.Ordinal), probe.Reason);
        }
        else
        {
            Assert.False(probe.IsAvailable);
            Assert.Equal("WireGuard kernel module not loaded: the generic netlink family 'wireguard' does not resolve (run 'modprobe wireguard' on the node, or use the userspace driver).", probe.Reason);
            Assert.Throws<WireGuardModuleNotLoadedException>(() => WireGuardNetlink.Open());
        }
    }

    [Fact]
    public void AddWireGuardKernel_registers_the_driver_once_beside_the_userspace_one()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn().AddWireGuardKernel().AddWireGuard().AddWireGuardKernel();
        Assert.Equal(2, services.Count(d => d.ServiceType == typeof(ITunnelDriver)));
        var registry = (CloudVpnRegistry)services.Single(d => d.ServiceType == typeof(CloudVpnRegistry)).ImplementationInstance!;
        Assert.Equal([("wireguard-kernel", "wireguard"), ("wireguard-userspace", "wireguard")], registry.DriverTypes);
        var withoutCore = Substitute.For<ICloudVpnBuilder>();
        withoutCore.Services.Returns(new ServiceCollection());
        var error = Assert.Throws<InvalidOperationException>(() => withoutCore.AddWireGuardKernel());
        Assert.Contains("AddWireGuardKernel() needs the CloudVpn core services", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, "wireguard", "wireguard-kernel")]
    [InlineData(false, "wireguard", "wireguard-userspace")]
    [InlineData(true, "wireguard-userspace", "wireguard-userspace")]
    [InlineData(true, "wireguard-kernel", "wireguard-kernel")]
    public async Task Selection_prefers_kernel_falls_back_to_userspace_and_can_be_forced(bool kernelAvailable, string request, string expected)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn(o => o.Driver = request);
        services.AddSingleton<ITunnelDriver>(new KernelWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null,
            () => kernelAvailable ? (true, "family resolves") : (false, new WireGuardModuleNotLoadedException().Message), () => AllCaps));
        var userspace = Substitute.For<ITunnelDriver>();
        userspace.Name.Returns("wireguard-userspace");
        userspace.Family.Returns("wireguard");
        userspace.Priority.Returns(10);
        userspace.ProbeAsync(Arg.Any<CancellationToken>()).Returns(DriverProbeResult.Available("tun opens"));
        services.AddSingleton(userspace);
        await using var provider = services.BuildServiceProvider();

        var selection = await provider.GetRequiredService<ITunnelDriverSelector>().SelectAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(expected, selection.Driver.Name);
        if (!kernelAvailable)
        {
            Assert.Contains("'wireguard-kernel' is unavailable (WireGuard kernel module not loaded", selection.Reason, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Forcing_the_kernel_driver_without_the_module_fails_with_the_reason()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn(o => o.Driver = "wireguard-kernel");
        services.AddSingleton<ITunnelDriver>(new KernelWireGuardDriver(Substitute.For<IKeyStoreProvider>(), null, () => (false, new WireGuardModuleNotLoadedException().Message), () => AllCaps));
        await using var provider = services.BuildServiceProvider();
        var error = await Assert.ThrowsAsync<TunnelDriverUnavailableException>(async () =>
            await provider.GetRequiredService<ITunnelDriverSelector>().SelectAsync(cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("'wireguard-kernel' was asked for by name", error.Message, StringComparison.Ordinal);
        Assert.Contains("modprobe wireguard", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_driver_setting_is_named()
    {
        var spec = new TunnelSpec(new DeviceSpec("wg0", new KeyReference("k"), 0, []), []) { DriverSettings = new Dictionary<string, string> { ["wireguard-kernel.rutes"] = "x", ["wireguard-kernel.routes"] = "maybe" } };
        var error = Assert.Throws<ArgumentException>(() => KernelTunnelSettings.From(spec));
        Assert.Contains("wireguard-kernel.rutes: unknown setting", error.Message, StringComparison.Ordinal);
        Assert.Contains("wireguard-kernel.routes: 'maybe' is not true or false", error.Message, StringComparison.Ordinal);

        var good = spec with { DriverSettings = new Dictionary<string, string> { ["wireguard-kernel.keep-interface"] = "true", ["wireguard-kernel.netns"] = "blue", ["other.x"] = "ignored" } };
        Assert.Equal(new KernelTunnelSettings(InstallRoutes: true, NetworkNamespace: "blue", KeepInterface: true), KernelTunnelSettings.From(good));
    }
}
