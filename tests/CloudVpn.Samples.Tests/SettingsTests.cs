using CloudVpn.Samples.Gateway;
using CloudVpn.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Tests;

public sealed class SettingsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Valid_settings_pass_and_create_the_data_folder_private()
    {
        var dataDir = Path.Combine(_dir.Path, "data");
        var result = new GatewayOptionsValidator().Validate(null, TestOptions.Valid(dataDir));

        Assert.True(result.Succeeded, result.FailureMessage);
        Assert.True(Directory.Exists(dataDir));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dataDir));
        Assert.Empty(Directory.GetFiles(dataDir, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void Every_bad_setting_is_named_at_once()
    {
        var options = TestOptions.Valid("/proc/cloudvpn-gateway-test");
        options.ListenPort = 70000;
        options.Address = "10.8.0.300/24";
        options.Http = "localhost";
        options.Interface = "a-name-far-too-long-for-linux";
        options.PublicEndpoint = "vpn.example.com";
        options.ClientAllowedIps = "10.8.0.0/24, 10.9.0.1/33";

        var result = new GatewayOptionsValidator().Validate(null, options);

        Assert.False(result.Succeeded);
        var failures = result.Failures!.ToList();
        Assert.Equal(7, failures.Count);
        Assert.Contains(failures, f => f.StartsWith("Gateway:DataDir (--data-dir): '/proc/cloudvpn-gateway-test'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Gateway:ListenPort (--listen-port): 70000 is out of range", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Gateway:Address (--address): '10.8.0.300' is not an IPv4 address", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Gateway:Http (--http): 'localhost'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Gateway:Interface (--interface):", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Gateway:PublicEndpoint (--public-endpoint): 'vpn.example.com' is not host:port", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Gateway:ClientAllowedIps: '10.9.0.1/33'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("10.8.0.1", "has no prefix length")]
    [InlineData("10.8.0.0/24", "is the network or broadcast address")]
    [InlineData("10.8.0.255/24", "is the network or broadcast address")]
    [InlineData("10.8.0.1/31", "is not a number from 8 to 30")]
    [InlineData("fd00::1/64", "is not an IPv4 address")]
    public void Tunnel_addresses_are_checked(string address, string problem)
    {
        Assert.False(TunnelAddress.TryParse(address, out _, out _, out var error));
        Assert.Contains(problem, error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_data_folder_that_is_a_file_is_refused()
    {
        var file = Path.Combine(_dir.Path, "file");
        File.WriteAllText(file, "x");
        var result = new GatewayOptionsValidator().Validate(null, TestOptions.Valid(file));
        Assert.Contains($"Gateway:DataDir (--data-dir): '{file}' is a file, not a folder", result.Failures!);
    }

    [Fact]
    public void A_read_only_data_folder_is_refused()
    {
        // root ignores permission bits, so the read-only case is a folder on a read-only file system: sysfs
        var result = new GatewayOptionsValidator().Validate(null, TestOptions.Valid("/sys/kernel"));
        Assert.Contains(result.Failures!, f => f.StartsWith("Gateway:DataDir (--data-dir): '/sys/kernel' is not writable", StringComparison.Ordinal));
    }

    [Fact]
    public void The_default_drivers_are_kernel_then_userspace_wireguard()
    {
        using var app = GatewayApp.Build(["--data-dir", Path.Combine(_dir.Path, "data")]);
        var drivers = app.Services.GetServices<CloudVpn.Tunnels.ITunnelDriver>().OrderByDescending(d => d.Priority).ToList();
        Assert.Equal(["wireguard-kernel", "wireguard-userspace"], drivers.Select(d => d.Name));
        Assert.All(drivers, d => Assert.Equal("wireguard", d.Family));
        Assert.Equal("wireguard", app.Services.GetRequiredService<IOptions<CloudVpnOptions>>().Value.Driver);
    }

    [Theory]
    [InlineData(new[] { "--add-peer", "laptop", "--data-dir", "/x" }, "laptop", new[] { "--data-dir", "/x" })]
    [InlineData(new[] { "--data-dir", "/x", "--add-peer=phone" }, "phone", new[] { "--data-dir", "/x" })]
    [InlineData(new[] { "--http", "127.0.0.1:1" }, null, new[] { "--http", "127.0.0.1:1" })]
    public void Add_peer_is_taken_out_of_the_arguments(string[] args, string? name, string[] rest)
    {
        Assert.True(GatewayProgram.TryExtractAddPeer(args, out var remaining, out var peer, out _));
        Assert.Equal(name, peer);
        Assert.Equal(rest, remaining);
    }

    [Fact]
    public void Add_peer_without_a_name_is_an_error()
    {
        Assert.False(GatewayProgram.TryExtractAddPeer(["--add-peer", "--data-dir", "/x"], out _, out _, out var error));
        Assert.Contains("give the new peer's name", error, StringComparison.Ordinal);
    }

    [Fact]
    public void The_process_exits_2_naming_every_bad_setting()
    {
        Assert.True(File.Exists(TestPaths.GatewayDll), $"build the sample first: {TestPaths.GatewayDll}");
        var (code, stdout, stderr) = Cmd.Run("dotnet", $"{TestPaths.GatewayDll} --listen-port 0 --address 10.8.0.1/33 --data-dir /proc/cloudvpn-test --http 127.0.0.1:{TestPaths.FreeTcpPort()}", check: false, timeoutMs: 60_000);

        Assert.Equal(2, code);
        Assert.Contains("3 setting(s) are invalid", stderr, StringComparison.Ordinal);
        Assert.Contains("Gateway:ListenPort (--listen-port): 0 is out of range", stderr, StringComparison.Ordinal);
        Assert.Contains("Gateway:Address (--address): prefix '33'", stderr, StringComparison.Ordinal);
        Assert.Contains("Gateway:DataDir (--data-dir): '/proc/cloudvpn-test' does not exist and cannot be created", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", stderr + stdout, StringComparison.Ordinal);
    }
}
