using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Device;
using CloudVpn.WireGuard.Hosting;
using CloudVpn.KeyStores;

namespace CloudVpn.WireGuard.Tests.Hosting;

/// <summary>The data-path switches: from the environment (drop-in, benchmarks) and from driver settings.</summary>
public sealed class DataPathOptionsTests
{
    [Fact]
    public void Unset_variables_keep_every_technique_on()
    {
        var options = WireGuardDataPathOptions.FromEnvironment(_ => null);
        Assert.Equal(new WireGuardDataPathOptions(), options);
        Assert.True(options.Batching);
        Assert.True(options.Tun.Offloads && options.Tun.Coalesce);
        Assert.True(options.Udp.UseMmsg && options.Udp.UseGso && options.Udp.UseGro);
        Assert.Null(options.CryptoWorkers);
    }

    [Fact]
    public void Each_variable_turns_its_technique_off()
    {
        var values = new Dictionary<string, string>
        {
            ["CLOUDVPN_WG_BATCHING"] = "0", ["CLOUDVPN_WG_TUN_OFFLOADS"] = "false", ["CLOUDVPN_WG_TUN_COALESCE"] = "off",
            ["CLOUDVPN_WG_UDP_MMSG"] = "0", ["CLOUDVPN_WG_UDP_GSO"] = "0", ["CLOUDVPN_WG_UDP_GRO"] = "0",
            ["CLOUDVPN_WG_CRYPTO_WORKERS"] = "3", ["CLOUDVPN_WG_UDP_BUFFER"] = "7340032",
        };
        var options = WireGuardDataPathOptions.FromEnvironment(values.GetValueOrDefault);
        Assert.False(options.Batching);
        Assert.False(options.Tun.Offloads);
        Assert.False(options.Tun.Coalesce);
        Assert.False(options.Udp.UseMmsg);
        Assert.False(options.Udp.UseGso);
        Assert.False(options.Udp.UseGro);
        Assert.Equal(3, options.CryptoWorkers);
        Assert.Equal(7 << 20, options.Udp.SocketBufferSize);
        Assert.NotEqual(new WireGuardDataPathOptions(), options);
    }

    [Theory]
    [InlineData("CLOUDVPN_WG_UDP_GSO", "maybe", "CLOUDVPN_WG_UDP_GSO: 'maybe' is not 0 or 1")]
    [InlineData("CLOUDVPN_WG_CRYPTO_WORKERS", "-1", "CLOUDVPN_WG_CRYPTO_WORKERS: '-1' is not a number of threads from 0 to 256")]
    [InlineData("CLOUDVPN_WG_CRYPTO_WORKERS", "1000", "CLOUDVPN_WG_CRYPTO_WORKERS: '1000'")]
    [InlineData("CLOUDVPN_WG_UDP_BUFFER", "1024", "CLOUDVPN_WG_UDP_BUFFER: '1024' is not a byte count from 65536")]
    public void A_bad_value_is_refused_with_the_variable_named(string name, string value, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => WireGuardDataPathOptions.FromEnvironment(n => n == name ? value : null));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Driver_settings_with_a_bad_switch_are_refused_by_name()
    {
        var driver = new UserspaceWireGuardDriver(NSubstitute.Substitute.For<IKeyStoreProvider>(), null, null, () => null, () => ulong.MaxValue);
        var spec = new TunnelSpec(new DeviceSpec("wg0", new KeyReference("gw"), 0, []), [])
        {
            DriverSettings = new Dictionary<string, string>
            {
                ["wireguard-userspace.udp-gso"] = "nope",
                ["wireguard-userspace.crypto-workers"] = "many",
            },
        };
        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await driver.OpenAsync(spec));
        Assert.Contains("wireguard-userspace.udp-gso: 'nope' is not true or false", error.Message, StringComparison.Ordinal);
        Assert.Contains("wireguard-userspace.crypto-workers: 'many' is not a number of threads", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Driver_settings_switch_the_techniques_and_the_same_settings_compare_equal()
    {
        TunnelSpec Spec() => new(new DeviceSpec("wg0", new KeyReference("gw"), 0, []), [])
        {
            DriverSettings = new Dictionary<string, string>
            {
                ["wireguard-userspace.batching"] = "false", ["wireguard-userspace.tun-offloads"] = "false",
                ["wireguard-userspace.tun-coalesce"] = "false", ["wireguard-userspace.udp-mmsg"] = "false",
                ["wireguard-userspace.udp-gso"] = "false", ["wireguard-userspace.udp-gro"] = "false",
                ["wireguard-userspace.crypto-workers"] = "2", ["wireguard-userspace.udp-socket-buffer"] = "1048576",
            },
        };
        var settings = UserspaceTunnelSettings.From(Spec());
        var dataPath = settings.DataPath!;
        Assert.False(dataPath.Batching);
        Assert.False(dataPath.Tun.Offloads);
        Assert.False(dataPath.Tun.Coalesce);
        Assert.False(dataPath.Udp.UseMmsg || dataPath.Udp.UseGso || dataPath.Udp.UseGro);
        Assert.Equal(2, dataPath.CryptoWorkers);
        Assert.Equal(1 << 20, dataPath.Udp.SocketBufferSize);

        // an open tunnel refuses changed settings: the same settings parsed again must not look changed
        Assert.Equal(settings, UserspaceTunnelSettings.From(Spec()));
        Assert.NotEqual(settings, UserspaceTunnelSettings.From(new TunnelSpec(new DeviceSpec("wg0", new KeyReference("gw"), 0, []), [])));
    }

    [Fact]
    public void A_socket_buffer_out_of_range_is_refused_with_the_field_named()
    {
        var error = Assert.Throws<ArgumentException>(() => new CloudVpn.WireGuard.Udp.UdpBatchOptions { SocketBufferSize = 1000 }.Validate());
        Assert.Contains("UdpBatchOptions.SocketBufferSize: 1000 is outside", error.Message, StringComparison.Ordinal);
        new CloudVpn.WireGuard.Udp.UdpBatchOptions { SocketBufferSize = 7 << 20 }.Validate();
    }
}
