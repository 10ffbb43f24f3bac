using CloudVpn.KeyStores;
using CloudVpn.Samples.Gateway;
using CloudVpn.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Tests;

/// <summary><c>--config FILE</c> and the <c>rotate-keys</c> one-shot command (the chart's CronJob runs it).</summary>
public sealed class CommandsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_json_settings_file_is_read_and_the_command_line_still_wins()
    {
        var file = Path.Combine(_dir.Path, "gateway.yaml");
        File.WriteAllText(file, """{"Gateway": {"ListenPort": 51900, "Mtu": 1380, "Interface": "fromfile0"}, "CloudVpn": {"Driver": "wireguard-userspace"}}""");
        using var app = GatewayApp.Build(["--config", file, "--data-dir", Path.Combine(_dir.Path, "data"), "--interface=fromargs0"]);
        var o = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;
        Assert.Equal(51900, o.ListenPort);
        Assert.Equal(1380, o.Mtu);
        Assert.Equal("fromargs0", o.Interface);
        Assert.Equal("wireguard-userspace", app.Services.GetRequiredService<IOptions<CloudVpnOptions>>().Value.Driver);
    }

    [Fact]
    public void A_settings_file_that_is_not_json_exits_2_naming_it()
    {
        var file = Path.Combine(_dir.Path, "gateway.yaml");
        File.WriteAllText(file, "gateway:\n  listenPort: [1\n");
        var (code, _, stderr) = Cmd.Run("dotnet", $"{TestPaths.GatewayDll} --config {file} --data-dir {_dir.Path}", check: false);
        Assert.Equal(2, code);
        Assert.Contains($"--config: Failed to load configuration from file '{file}'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_add_peer_runs_get_distinct_addresses()
    {
        var dataDir = Path.Combine(_dir.Path, "data");
        var runs = Enumerable.Range(1, 3)
            .Select(i => Task.Run(() => Cmd.Run("dotnet", $"{TestPaths.GatewayDll} --data-dir {dataDir} --public-endpoint 192.0.2.1:51820 --add-peer peer{i}", check: false)))
            .ToArray();
        var results = await Task.WhenAll(runs);

        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.Stderr));
        var peers = PeersFile.Load(Path.Combine(dataDir, "peers.json"));
        Assert.Equal(["peer1", "peer2", "peer3"], peers.Select(p => p.Name).Order());
        Assert.Equal(3, peers.Select(p => p.AllowedIps[0]).Distinct().Count());
        var printed = results.Select(r => PeersTests.ParseWgQuick(r.Stdout)["Interface.Address"]).Order();
        Assert.Equal(peers.Select(p => p.AllowedIps[0].ToString()).Order(), printed);
    }

    [Fact]
    public async Task Rotate_keys_rotates_only_when_due_or_forced_and_exits()
    {
        var dataDir = Path.Combine(_dir.Path, "data");
        var store = new FileKeyStore(new FileKeyStoreOptions { Directory = Path.Combine(dataDir, "keys") });

        var first = Cmd.Run("dotnet", $"{TestPaths.GatewayDll} rotate-keys --data-dir {dataDir}", check: false);
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Contains("No key was due for rotation.", first.Stderr, StringComparison.Ordinal);
        Assert.Equal([1L], (await store.ListVersionsAsync(GatewayKey.KeyId)).Select(v => v.Version));

        var forced = Cmd.Run("dotnet", $"{TestPaths.GatewayDll} rotate-keys --force --data-dir {dataDir} --CloudVpn:KeyRotation:Overlap=00:00:00", check: false);
        Assert.True(forced.ExitCode == 0, forced.Stderr);
        Assert.Contains("Rotated 1 key(s).", forced.Stderr, StringComparison.Ordinal);
        Assert.Equal([1L, 2L], (await store.ListVersionsAsync(GatewayKey.KeyId)).Select(v => v.Version));
        using var v1 = await store.GetAsync(GatewayKey.KeyId, 1);
        using var v2 = await store.GetAsync(GatewayKey.KeyId, 2);
        Assert.False(v1!.Value.SequenceEqual(v2!.Value));
        Assert.Equal(32, v2.Value.Length);

        var bad = Cmd.Run("dotnet", $"{TestPaths.GatewayDll} rotate-keys --data-dir {dataDir} --CloudVpn:KeyRotation:Interval=00:01:00 --CloudVpn:KeyRotation:Overlap=00:05:00", check: false);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("CloudVpn:KeyRotation:Overlap:", bad.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, (await store.ListVersionsAsync(GatewayKey.KeyId)).Count);
    }
}
