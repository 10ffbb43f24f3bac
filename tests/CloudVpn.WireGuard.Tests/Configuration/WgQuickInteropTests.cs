using CloudVpn.Testing;
using CloudVpn.WireGuard.Configuration;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Tests.Uapi;
using CloudVpn.WireGuard.Uapi;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Tests.Configuration;

/// <summary>Our wg-quick files against the real wg-quick and wg: strip gives the same text, and wg reads what we write.</summary>
[Trait("Category", "Integration")]
public sealed class WgQuickInteropTests : IDisposable
{
    private readonly string _files = Directory.CreateTempSubdirectory("cvwq").FullName;

    public void Dispose() => Directory.Delete(_files, recursive: true);

    private string WriteFile(string name, string content)
    {
        var path = Path.Combine(_files, name);
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private static WgQuickConfig SampleConfig()
    {
        using var psk = WireGuardSecretKey.GeneratePresharedKey();
        return WgQuickConfig.Parse($"""
            [Interface]
            PrivateKey = {WireGuardSecretKey.GeneratePrivateKey().ToBase64()}
            Address = 10.192.122.1/24, fd00:122::1/64
            ListenPort = 51820
            FwMark = 0x1234
            MTU = 1380
            DNS = 10.192.122.53, corp.example
            Table = off
            PostUp = echo up %i
            PreDown = echo down %i

            [Peer]
            PublicKey = {WireGuardSecretKey.GeneratePrivateKey().GetPublicKey()}
            PresharedKey = {psk.ToBase64()}
            AllowedIPs = 10.192.122.3/32, 10.192.124.0/24, fd00:124::/64
            Endpoint = 192.0.2.3:51820
            PersistentKeepalive = 25

            [Peer]
            PublicKey = {WireGuardSecretKey.GeneratePrivateKey().GetPublicKey()}
            AllowedIPs = 10.10.10.0/24
            Endpoint = [2001:db8::10]:4500
            """);
    }

    [Fact]
    public void Wg_quick_strip_of_our_file_equals_our_plain_wg_config()
    {
        Prerequisite.RequireRoot(); // wg-quick re-executes itself through sudo otherwise
        Prerequisite.RequireCommand("wg-quick");
        using var config = SampleConfig();
        var path = WriteFile("cvwq0.conf", config.Write());

        var stripped = Cmd.Run("wg-quick", $"strip {path}").Stdout;

        Assert.Equal(config.WriteWgConfig().TrimEnd('\n'), stripped.TrimEnd('\n'));
    }

    [Fact]
    public async Task Wg_setconf_reads_what_we_write_and_we_read_what_wg_showconf_writes()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wg");
        using var device = new InMemoryUapiDevice();
        var name = TestInterfaceNames.Next("cvq");
        await using var server = UapiServer.Start(name, device, NullLogger.Instance);
        using var config = SampleConfig();
        var path = WriteFile("plain.conf", config.WriteWgConfig());

        Cmd.Run("wg", $"setconf {name} {path}");
        var shown = Cmd.Run("wg", $"showconf {name}").Stdout;
        using var parsed = WgQuickConfig.Parse(shown);

        Assert.True(config.Interface.PrivateKey!.Equals(parsed.Interface.PrivateKey));
        Assert.Equal(config.Interface.ListenPort, parsed.Interface.ListenPort);
        Assert.Equal(config.Interface.FirewallMark, parsed.Interface.FirewallMark);
        Assert.Equal(config.Peers.Count, parsed.Peers.Count);
        foreach (var expected in config.Peers)
        {
            var actual = parsed.Peers.Single(p => p.PublicKey == expected.PublicKey);
            Assert.Equal(expected.AllowedIps, actual.AllowedIps);
            Assert.Equal(expected.Endpoint, actual.Endpoint);
            Assert.Equal(expected.PersistentKeepalive, actual.PersistentKeepalive);
            Assert.Equal(expected.PresharedKey is null, actual.PresharedKey is null);
            Assert.True(expected.PresharedKey is null || expected.PresharedKey.Equals(actual.PresharedKey));
        }

        // And what wg shows is, once parsed and written by us, the same plain configuration wg started from.
        Assert.Equal(config.WriteWgConfig(), parsed.WriteWgConfig());
    }

    [Fact]
    public async Task ToSetRequest_does_what_wg_setconf_does()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wg");
        using var viaWg = new InMemoryUapiDevice();
        using var viaUs = new InMemoryUapiDevice();
        var wgName = TestInterfaceNames.Next("cvq");
        var usName = TestInterfaceNames.Next("cvq");
        await using var wgServer = UapiServer.Start(wgName, viaWg, NullLogger.Instance);
        await using var usServer = UapiServer.Start(usName, viaUs, NullLogger.Instance);
        using var config = SampleConfig();
        var peerWithoutPsk = config.Peers[1].PublicKey;

        // A previous state that setconf must reset: key, fwmark, a stale peer, a PSK and keepalive the file does not have.
        var before = WriteFile("before.conf", $"""
            [Interface]
            PrivateKey = {WireGuardSecretKey.GeneratePrivateKey().ToBase64()}
            ListenPort = 1000
            FwMark = 7

            [Peer]
            PublicKey = {WireGuardSecretKey.GeneratePrivateKey().GetPublicKey()}
            AllowedIPs = 10.99.0.0/16

            [Peer]
            PublicKey = {peerWithoutPsk}
            PresharedKey = {WireGuardSecretKey.GeneratePresharedKey().ToBase64()}
            AllowedIPs = 10.98.0.0/16
            PersistentKeepalive = 5
            """);
        Cmd.Run("wg", $"setconf {wgName} {before}");
        Cmd.Run("wg", $"setconf {usName} {before}");

        using var withoutFirewallMark = config with { Interface = config.Interface with { FirewallMark = null } };
        var path = WriteFile("plain.conf", withoutFirewallMark.WriteWgConfig());
        Cmd.Run("wg", $"setconf {wgName} {path}");
        await using (var client = await UapiClient.ConnectAsync(usName, cancellationToken: TestContext.Current.CancellationToken))
        {
            using var request = withoutFirewallMark.ToSetRequest();
            await client.SetAsync(request, TestContext.Current.CancellationToken);
        }

        var expected = Cmd.Run("wg", $"showconf {wgName}").Stdout;
        Assert.Equal(expected, Cmd.Run("wg", $"showconf {usName}").Stdout);
        Assert.Equal(0u, viaUs.FirewallMark);
        Assert.Null(viaUs.Peer(peerWithoutPsk)!.PresharedKey);
        Assert.Equal(2, viaUs.Peers.Count);
    }

    [Fact]
    public async Task FromDeviceState_writes_what_wg_showconf_prints()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wg");
        using var device = new InMemoryUapiDevice();
        var name = TestInterfaceNames.Next("cvq");
        using var config = SampleConfig();
        var path = WriteFile("plain.conf", config.WriteWgConfig());
        await using var server = UapiServer.Start(name, device, NullLogger.Instance);
        Cmd.Run("wg", $"setconf {name} {path}");
        var shown = Cmd.Run("wg", $"showconf {name}").Stdout;
        using var state = device.Get();
        using var fromState = WgQuickConfig.FromDeviceState(state);

        // wg puts ListenPort and FwMark before PrivateKey and AllowedIPs before Endpoint; compare as line sets per section.
        Assert.Equal(Sections(shown), Sections(fromState.Write()));
        Assert.Equal(config.WriteWgConfig(), fromState.WriteWgConfig());
    }

    private static string[][] Sections(string text) =>
        text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(section => section.Split('\n').Order(StringComparer.Ordinal).ToArray())
            .ToArray();
}
