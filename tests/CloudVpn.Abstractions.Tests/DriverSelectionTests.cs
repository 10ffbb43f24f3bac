using CloudVpn.Tunnels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace CloudVpn.Abstractions.Tests;

public sealed class DriverSelectionTests : IDisposable
{
    private readonly FakeLogCollector _logs = new();
    private readonly ServiceProvider _sp;

    public DriverSelectionTests()
    {
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(_logs)).SetMinimumLevel(LogLevel.Debug));
        services.AddCloudVpn()
            .AddTunnelDriver<FakeDrivers.UserspaceDriver>("wireguard-userspace", "wireguard")
            .AddTunnelDriver<FakeDrivers.KernelDriver>("wireguard-kernel", "wireguard")
            .AddTunnelDriver<FakeDrivers.OpenVpnDriver>("openvpn", "openvpn");
        _sp = services.BuildServiceProvider();
    }

    public void Dispose() => _sp.Dispose();

    private ITunnelDriverSelector Selector => _sp.GetRequiredService<ITunnelDriverSelector>();

    [Fact]
    public async Task Family_gives_the_kernel_driver_when_its_probe_passes()
    {
        var selection = await Selector.SelectAsync("wireguard");

        Assert.Equal("wireguard-kernel", selection.Driver.Name);
        Assert.Equal(0, _sp.GetRequiredService<FakeDrivers.UserspaceDriver>().ProbeCount);
        Assert.Contains(_logs.GetSnapshot(), r => r.Message.Contains("wireguard-kernel selected for wireguard", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Family_falls_back_to_userspace_and_logs_why()
    {
        _sp.GetRequiredService<FakeDrivers.KernelDriver>().Probe = DriverProbeResult.Unavailable("module not loaded: the 'wireguard' generic netlink family does not resolve");

        var selection = await Selector.SelectAsync();

        Assert.Equal("wireguard-userspace", selection.Driver.Name);
        Assert.Contains("'wireguard-kernel' is unavailable (module not loaded", selection.Reason, StringComparison.Ordinal);
        Assert.Equal(2, selection.Probes.Count);
        var log = Assert.Single(_logs.GetSnapshot(), r => r.Message.Contains("selected", StringComparison.Ordinal));
        Assert.Equal(LogLevel.Information, log.Level);
        Assert.Contains("module not loaded", log.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Driver_name_forces_that_driver_even_when_a_better_one_exists()
    {
        var selection = await Selector.SelectAsync("wireguard-userspace");

        Assert.Equal("wireguard-userspace", selection.Driver.Name);
        Assert.Contains("forced", selection.Reason, StringComparison.Ordinal);
        Assert.Equal(0, _sp.GetRequiredService<FakeDrivers.KernelDriver>().ProbeCount);
    }

    [Fact]
    public async Task Forced_driver_that_cannot_run_fails_with_its_reason()
    {
        _sp.GetRequiredService<FakeDrivers.KernelDriver>().Probe = DriverProbeResult.Unavailable("CAP_NET_ADMIN is not held");

        var ex = await Assert.ThrowsAsync<TunnelDriverUnavailableException>(async () => await Selector.SelectAsync("wireguard-kernel"));

        Assert.Contains("CAP_NET_ADMIN is not held", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_available_driver_lists_every_refusal()
    {
        _sp.GetRequiredService<FakeDrivers.KernelDriver>().Probe = DriverProbeResult.Unavailable("module not loaded");
        _sp.GetRequiredService<FakeDrivers.UserspaceDriver>().Probe = DriverProbeResult.Unavailable("/dev/net/tun is missing");

        var ex = await Assert.ThrowsAsync<TunnelDriverUnavailableException>(async () => await Selector.SelectAsync("wireguard"));

        Assert.Contains("module not loaded", ex.Message, StringComparison.Ordinal);
        Assert.Contains("/dev/net/tun is missing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_family_names_the_registered_drivers()
    {
        var ex = await Assert.ThrowsAsync<TunnelDriverUnavailableException>(async () => await Selector.SelectAsync("ipsec"));

        Assert.Contains("wireguard-kernel (wireguard)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("openvpn (openvpn)", ex.Message, StringComparison.Ordinal);
    }
}
