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
}
