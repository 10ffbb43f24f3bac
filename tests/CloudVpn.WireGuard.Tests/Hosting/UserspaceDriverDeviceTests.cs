using System.Net;
using System.Text;
using CloudVpn.KeyStores;
using CloudVpn.Testing;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Hosting;
using CloudVpn.WireGuard.Keys;
using Microsoft.Extensions.DependencyInjection;

namespace CloudVpn.WireGuard.Tests.Hosting;

/// <summary>The driver opening a real device (inside a test namespace) with its key from a file key store.</summary>
[Trait("Category", "Integration")]
public sealed class UserspaceDriverDeviceTests : IAsyncDisposable
{
    private readonly string _keyDir = Directory.CreateTempSubdirectory("cloudvpn-driver-keys").FullName;
    private readonly ServiceProvider _services;

    public UserspaceDriverDeviceTests()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn().AddFileKeyStore(_keyDir).AddWireGuard();
        _services = services.BuildServiceProvider();
    }

    [Fact]
    public async Task Open_configures_the_interface_and_apply_changes_only_what_differs()
    {
        Prerequisite.RequireRoot();
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        using var net = new NetnsPair("wv");
        var store = _services.GetRequiredService<IKeyStore>();
        using var privateKey = WireGuardSecretKey.GeneratePrivateKey();
        await store.PutAsync("gw", Encoding.ASCII.GetBytes(privateKey.ToBase64() + "\n"));
        await store.PutAsync("psk1", WireGuardSecretKey.GeneratePresharedKey().Bytes.ToArray());
        var peer1 = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey().ToBase64();
        var peer2 = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey().ToBase64();
        var name = $"cvdrv{Environment.ProcessId % 10000}";
        var settings = new Dictionary<string, string> { ["wireguard-userspace.netns"] = net.Left, ["wireguard-userspace.uapi-socket-directory"] = "none" };
        var spec = new TunnelSpec(
            new DeviceSpec(name, new KeyReference("gw"), 51820, [IPNetwork.Parse("10.80.1.1/32")], Mtu: 1400)
            {
                InterfaceAddresses = [InterfaceAddress.Parse("10.80.0.1/24"), InterfaceAddress.Parse("fd80::1/64")],
            },
            [
                new PeerSpec(peer1, [IPNetwork.Parse("10.81.0.0/16")]) { Endpoint = $"{net.RightIp}:51820", PresharedKey = new KeyReference("psk1"), Name = "site-a" },
                new PeerSpec(peer2, [IPNetwork.Parse("10.82.0.7/32"), IPNetwork.Parse("fd82::/64")]) { PersistentKeepalive = TimeSpan.FromSeconds(25) },
            ])
        { DriverSettings = settings };

        var selection = await _services.GetRequiredService<ITunnelDriverSelector>().SelectAsync("wireguard");
        Assert.Equal("wireguard-userspace", selection.Driver.Name);
        await using var tunnel = await selection.Driver.OpenAsync(spec);

        var link = NetnsPair.Exec(net.Left, $"ip -o link show {name}").Stdout;
        Assert.Contains("mtu 1400", link, StringComparison.Ordinal);
        Assert.Contains(",UP", link, StringComparison.Ordinal);
        var addresses = NetnsPair.Exec(net.Left, $"ip -o addr show dev {name}").Stdout;
        Assert.Contains("10.80.0.1/24", addresses, StringComparison.Ordinal);
        Assert.Contains("fd80::1/64", addresses, StringComparison.Ordinal);
        Assert.Contains("10.80.1.1/32", addresses, StringComparison.Ordinal);
        var routes = NetnsPair.Exec(net.Left, $"ip route show dev {name}").Stdout + NetnsPair.Exec(net.Left, $"ip -6 route show dev {name}").Stdout;
        Assert.Contains("10.81.0.0/16", routes, StringComparison.Ordinal);
        Assert.Contains("10.82.0.7", routes, StringComparison.Ordinal);
        Assert.Contains("fd82::/64", routes, StringComparison.Ordinal);

        var status = await tunnel.GetStatusAsync();
        Assert.True(status.IsUp);
        Assert.Equal(51820, status.ListenPort);
        Assert.Equal(1400, status.Mtu);
        Assert.Equal(privateKey.GetPublicKey().ToBase64(), status.PublicKey);
        var site = Assert.Single(status.Peers, p => p.PublicKey == peer1);
        Assert.Equal("site-a", site.Name);
        Assert.Equal($"{net.RightIp}:51820", site.Endpoint);
        Assert.Equal([IPNetwork.Parse("10.81.0.0/16")], site.AllowedIps);

        // the same spec again: nothing to do
        Assert.True((await tunnel.ApplyAsync(spec)).IsNoOp);

        // someone changes the MTU behind our back: status reports the MTU in use, and the next apply restores the spec's
        NetnsPair.Exec(net.Left, $"ip link set dev {name} mtu 1300");
        await Eventually.HoldsAsync(async () => (await tunnel.GetStatusAsync()).Mtu == 1300, "the status to report the MTU set with ip link", timeoutMs: 10_000);
        Assert.Equal(1300, (await tunnel.GetStatusAsync()).Mtu);
        Assert.True((await tunnel.ApplyAsync(spec)).DeviceChanged);
        Assert.Contains("mtu 1400", NetnsPair.Exec(net.Left, $"ip -o link show {name}").Stdout, StringComparison.Ordinal);
        Assert.True((await tunnel.ApplyAsync(spec)).IsNoOp);

        // a changed spec: peer 2 removed, peer 1's allowed IPs changed, a new peer 3, another address
        var peer3 = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey().ToBase64();
        var changed = spec with
        {
            Device = spec.Device with { Addresses = [], InterfaceAddresses = [InterfaceAddress.Parse("10.80.0.1/24"), InterfaceAddress.Parse("10.90.0.1/24")] },
            Peers =
            [
                spec.Peers[0] with { AllowedIps = [IPNetwork.Parse("10.81.0.0/16"), IPNetwork.Parse("10.83.0.0/24")] },
                new PeerSpec(peer3, [IPNetwork.Parse("10.84.0.0/24")]),
            ],
        };
        var result = await tunnel.ApplyAsync(changed);
        Assert.True(result.DeviceChanged);
        Assert.Equal([peer3], result.PeersAdded);
        Assert.Equal([peer1], result.PeersUpdated);
        Assert.Equal([peer2], result.PeersRemoved);
        routes = NetnsPair.Exec(net.Left, $"ip route show dev {name}").Stdout;
        Assert.Contains("10.83.0.0/24", routes, StringComparison.Ordinal);
        Assert.Contains("10.84.0.0/24", routes, StringComparison.Ordinal);
        Assert.DoesNotContain("10.82.0.7", routes, StringComparison.Ordinal);
        addresses = NetnsPair.Exec(net.Left, $"ip -o addr show dev {name}").Stdout;
        Assert.Contains("10.90.0.1/24", addresses, StringComparison.Ordinal);
        Assert.DoesNotContain("fd80::1/64", addresses, StringComparison.Ordinal);
        Assert.DoesNotContain("10.80.1.1/32", addresses, StringComparison.Ordinal);
        Assert.True((await tunnel.ApplyAsync(changed)).IsNoOp);

        // a new listen port: the socket is made inside the device's namespace, not the caller's
        var moved = changed with { Device = changed.Device with { ListenPort = 51833 } };
        Assert.True((await tunnel.ApplyAsync(moved)).DeviceChanged);
        Assert.Contains(":51833", NetnsPair.Exec(net.Left, "ss -uln").Stdout, StringComparison.Ordinal);
        Assert.Equal(51833, (await tunnel.GetStatusAsync()).ListenPort);
        changed = moved;

        // key rotation: a new version of the key in the store is picked up by the next apply
        using var rotated = WireGuardSecretKey.GeneratePrivateKey();
        await store.PutAsync("gw", rotated.Bytes.ToArray());
        result = await tunnel.ApplyAsync(changed);
        Assert.True(result.DeviceChanged);
        Assert.Empty(result.PeersUpdated);
        Assert.Equal(rotated.GetPublicKey().ToBase64(), (await tunnel.GetStatusAsync()).PublicKey);

        await tunnel.CloseAsync();
        await tunnel.CloseAsync();
        Assert.NotEqual(0, NetnsPair.Exec(net.Left, $"ip link show {name}", check: false).ExitCode);
    }

    [Fact]
    public async Task The_driver_tunnel_talks_to_wireguard_go_and_reports_the_handshake()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wireguard-go");
        Prerequisite.RequireCommand("wg");
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        using var net = new NetnsPair("wy");
        using var wgGo = Interop.WireGuardProcess.Start(Interop.Implementation.WireGuardGo, net.Right);
        var store = _services.GetRequiredService<IKeyStore>();
        using var ourKey = WireGuardSecretKey.GeneratePrivateKey();
        using var theirKey = WireGuardSecretKey.GeneratePrivateKey();
        using var psk = WireGuardSecretKey.GeneratePresharedKey();
        await store.PutAsync("gw", ourKey.Bytes.ToArray());
        await store.PutAsync("psk", Encoding.ASCII.GetBytes(psk.ToBase64()));
        var theirKeyFile = Path.Combine(_keyDir, "their.key");
        var pskFile = Path.Combine(_keyDir, "psk.txt");
        await File.WriteAllTextAsync(theirKeyFile, theirKey.ToBase64());
        await File.WriteAllTextAsync(pskFile, psk.ToBase64());
        wgGo.Wg($"set {wgGo.Name} private-key {theirKeyFile} listen-port 51820 peer {ourKey.GetPublicKey()} preshared-key {pskFile} allowed-ips 10.61.0.1/32");
        wgGo.Ip($"addr add 10.61.0.2/24 dev {wgGo.Name}");
        wgGo.Ip($"link set {wgGo.Name} up");

        var name = $"cvdrw{Environment.ProcessId % 10000}";
        var spec = new TunnelSpec(
            new DeviceSpec(name, new KeyReference("gw"), 0, []) { InterfaceAddresses = [InterfaceAddress.Parse("10.61.0.1/24")] },
            [new PeerSpec(theirKey.GetPublicKey().ToBase64(), [IPNetwork.Parse("10.61.0.2/32")]) { Endpoint = $"{net.RightIp}:51820", PresharedKey = new KeyReference("psk") }])
        {
            DriverSettings = new Dictionary<string, string> { ["wireguard-userspace.netns"] = net.Left, ["wireguard-userspace.uapi-socket-directory"] = "none" },
        };
        await using var tunnel = await _services.GetRequiredService<UserspaceWireGuardDriver>().OpenAsync(spec);

        var (exit, stdout, stderr) = NetnsPair.Exec(net.Left, "ping -c 3 -i 0.2 -W 3 10.61.0.2", check: false);
        Assert.True(exit == 0, stdout + stderr);
        var status = await tunnel.GetStatusAsync();
        var peer = Assert.Single(status.Peers);
        Assert.NotNull(peer.LastHandshake);
        Assert.True(peer.ReceivedBytes > 0 && peer.TransmittedBytes > 0);
        Assert.True(status.ListenPort > 0);
        Assert.Contains(ourKey.GetPublicKey().ToBase64(), wgGo.Wg($"show {wgGo.Name} latest-handshakes"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_explicit_socket_directory_must_work_and_the_interface_is_not_left_behind()
    {
        Prerequisite.RequireRoot();
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        using var net = new NetnsPair("wz");
        await _services.GetRequiredService<IKeyStore>().PutAsync("gw", WireGuardSecretKey.GeneratePrivateKey().Bytes.ToArray());
        var name = $"cvdrx{Environment.ProcessId % 10000}";
        var spec = new TunnelSpec(new DeviceSpec(name, new KeyReference("gw"), 0, []), [])
        {
            // a directory below a regular file can never be created
            DriverSettings = new Dictionary<string, string> { ["wireguard-userspace.netns"] = net.Left, ["wireguard-userspace.uapi-socket-directory"] = "/etc/hostname/wg" },
        };
        await Assert.ThrowsAnyAsync<IOException>(async () => await _services.GetRequiredService<UserspaceWireGuardDriver>().OpenAsync(spec));
        Assert.NotEqual(0, NetnsPair.Exec(net.Left, $"ip link show {name}", check: false).ExitCode);
    }

    [Fact]
    public async Task An_optional_socket_that_cannot_be_served_leaves_a_working_device()
    {
        Prerequisite.RequireRoot();
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        using var net = new NetnsPair("wz");
        var options = new CloudVpn.WireGuard.Device.WireGuardDeviceOptions { Name = $"cvdry{Environment.ProcessId % 10000}", UapiSocketDirectory = "/etc/hostname/wg", UapiSocketRequired = false };
        await using var device = CloudVpn.WireGuard.Netlink.NetworkNamespace.Run(net.Left, () => CloudVpn.WireGuard.Device.WireGuardDevice.Create(options));
        Assert.True(device.ListenPort > 0);
        Assert.False(device.Closed.IsCompleted);
        Assert.Equal(0, NetnsPair.Exec(net.Left, $"ip link show {options.Name}", check: false).ExitCode);
    }

    [Fact]
    public async Task A_missing_key_is_reported_with_its_reference()
    {
        Prerequisite.RequireRoot();
        var driver = _services.GetRequiredService<UserspaceWireGuardDriver>();
        var spec = new TunnelSpec(new DeviceSpec("cvnokey0", new KeyReference("absent"), 0, []), []);
        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await driver.OpenAsync(spec));
        Assert.Contains("Device.PrivateKey", error.Message, StringComparison.Ordinal);
        Assert.Contains("absent", error.Message, StringComparison.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        Directory.Delete(_keyDir, recursive: true);
    }
}
