using System.Net;
using CloudVpn.WireGuard.Configuration;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Tests.Configuration;

public class WgQuickConfigTests
{
    private const string PrivateKey = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    private const string PeerKey = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    private const string PeerKey2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
    private const string Psk = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

    private const string Canonical = $"""
        [Interface]
        PrivateKey = {PrivateKey}
        Address = 10.192.122.1/24, fd00:122::1/64
        ListenPort = 51820
        FwMark = 0x10
        MTU = 1420
        DNS = 10.192.122.53, fd00:122::53, corp.example
        Table = off
        PostUp = iptables -A FORWARD -i %i -j ACCEPT
        PostUp = ip rule add fwmark 0x10 table 10
        PreDown = iptables -D FORWARD -i %i -j ACCEPT
        SaveConfig = false

        [Peer]
        PublicKey = {PeerKey}
        PresharedKey = {Psk}
        AllowedIPs = 10.192.122.3/32, 10.192.124.0/24
        Endpoint = 192.0.2.3:51820
        PersistentKeepalive = 25

        [Peer]
        PublicKey = {PeerKey2}
        AllowedIPs = 10.10.10.0/24, fd00:10::/64
        Endpoint = vpn.example.com:4500

        """;

    [Fact]
    public void Parses_every_key_of_a_full_file()
    {
        using var config = WgQuickConfig.Parse(Canonical);
        var i = config.Interface;
        Assert.Equal(PrivateKey, i.PrivateKey!.ToBase64());
        Assert.Equal([new WgQuickAddress(IPAddress.Parse("10.192.122.1"), 24), new WgQuickAddress(IPAddress.Parse("fd00:122::1"), 64)], i.Addresses);
        Assert.Equal(IPNetwork.Parse("10.192.122.0/24"), i.Addresses[0].Network);
        Assert.Equal((ushort)51820, i.ListenPort);
        Assert.Equal(0x10u, i.FirewallMark);
        Assert.Equal(1420, i.Mtu);
        Assert.Equal([IPAddress.Parse("10.192.122.53"), IPAddress.Parse("fd00:122::53")], i.DnsServers);
        Assert.Equal(["corp.example"], i.DnsSearchDomains);
        Assert.Equal(
            [
                new("Table", "off"),
                new("PostUp", "iptables -A FORWARD -i %i -j ACCEPT"),
                new("PostUp", "ip rule add fwmark 0x10 table 10"),
                new("PreDown", "iptables -D FORWARD -i %i -j ACCEPT"),
                new("SaveConfig", "false"),
            ],
            i.ExtraKeys);

        Assert.Equal(2, config.Peers.Count);
        var a = config.Peers[0];
        Assert.Equal(WireGuardPublicKey.FromBase64(PeerKey), a.PublicKey);
        Assert.Equal(Psk, a.PresharedKey!.ToBase64());
        Assert.Equal([IPNetwork.Parse("10.192.122.3/32"), IPNetwork.Parse("10.192.124.0/24")], a.AllowedIps);
        Assert.Equal(new WgQuickEndpoint("192.0.2.3", 51820), a.Endpoint);
        Assert.Equal(IPEndPoint.Parse("192.0.2.3:51820"), a.Endpoint!.TryGetIPEndPoint());
        Assert.Equal((ushort)25, a.PersistentKeepalive);
        var b = config.Peers[1];
        Assert.Null(b.PresharedKey);
        Assert.Null(b.PersistentKeepalive);
        Assert.Equal(new WgQuickEndpoint("vpn.example.com", 4500), b.Endpoint);
        Assert.Null(b.Endpoint!.TryGetIPEndPoint());
    }

    [Fact]
    public void Canonical_file_round_trips_exactly()
    {
        using var config = WgQuickConfig.Parse(Canonical);
        Assert.Equal(Canonical, config.Write());
        using var again = WgQuickConfig.Parse(config.Write());
        Assert.Equal(Canonical, again.Write());
    }

    [Fact]
    public void Case_insensitive_keys_comments_whitespace_and_repeated_lists_as_wg_quick_reads_them()
    {
        using var config = WgQuickConfig.Parse(
            "\uFEFF# a comment\r\n"
            + "[interface]   # trailing comment\r\n"
            + "  privatekey=" + PrivateKey + "\r\n"
            + "ADDRESS = 10.0.0.1/24\r\n"
            + "address=fd00::1/64 ,  10.0.1.1 \r\n"
            + "listenport = 1\r\n"
            + "\r\n"
            + "[PEER]\r\n"
            + "publickey = " + PeerKey + "\r\n"
            + "allowedips = 10.0.0.0/24\r\n"
            + "AllowedIPs = 10.1.0.0/16, \r\n"
            + "endpoint = [2001:db8::1]:51820 # the gateway\r\n"
            + "persistentkeepalive = off\r\n");

        Assert.Equal(["10.0.0.1/24", "fd00::1/64", "10.0.1.1/32"], config.Interface.Addresses.Select(a => a.ToString()));
        Assert.Equal((ushort)1, config.Interface.ListenPort);
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24"), IPNetwork.Parse("10.1.0.0/16")], config.Peers[0].AllowedIps);
        Assert.Equal(new WgQuickEndpoint("2001:db8::1", 51820), config.Peers[0].Endpoint);
        Assert.Equal("[2001:db8::1]:51820", config.Peers[0].Endpoint!.ToString());
        Assert.Equal((ushort)0, config.Peers[0].PersistentKeepalive);
        Assert.Contains("PersistentKeepalive = off\n", config.Write(), StringComparison.Ordinal);
    }

    [Fact]
    public void Allowed_ips_host_bits_are_cleared_and_bare_addresses_are_hosts()
    {
        using var config = WgQuickConfig.Parse($"[Interface]\n[Peer]\nPublicKey = {PeerKey}\nAllowedIPs = 10.0.0.7/24, 192.0.2.1, fd00::1\n");
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24"), IPNetwork.Parse("192.0.2.1/32"), IPNetwork.Parse("fd00::1/128")], config.Peers[0].AllowedIps);
    }

    [Fact]
    public void Minimal_interface_without_keys_is_valid()
    {
        using var config = WgQuickConfig.Parse("[Interface]\n");
        Assert.Null(config.Interface.PrivateKey);
        Assert.Empty(config.Peers);
        Assert.Equal("[Interface]\n", config.Write());
    }

    [Fact]
    public void WriteWgConfig_leaves_out_the_wg_quick_keys()
    {
        using var config = WgQuickConfig.Parse(Canonical);
        var wg = config.WriteWgConfig();
        Assert.Equal(
            $"""
            [Interface]
            PrivateKey = {PrivateKey}
            ListenPort = 51820
            FwMark = 0x10

            [Peer]
            PublicKey = {PeerKey}
            PresharedKey = {Psk}
            AllowedIPs = 10.192.122.3/32, 10.192.124.0/24
            Endpoint = 192.0.2.3:51820
            PersistentKeepalive = 25

            [Peer]
            PublicKey = {PeerKey2}
            AllowedIPs = 10.10.10.0/24, fd00:10::/64
            Endpoint = vpn.example.com:4500

            """,
            wg);
    }

    [Fact]
    public void ToString_redacts_keys_but_Write_has_them()
    {
        using var config = WgQuickConfig.Parse(Canonical);
        var shown = config.ToString();
        Assert.DoesNotContain(PrivateKey, shown, StringComparison.Ordinal);
        Assert.DoesNotContain(Psk, shown, StringComparison.Ordinal);
        Assert.DoesNotContain(PrivateKey, config.Interface.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Psk, config.Peers[0].ToString(), StringComparison.Ordinal);
        Assert.Contains("<redacted>", shown, StringComparison.Ordinal);
        Assert.Contains(PeerKey, shown, StringComparison.Ordinal); // public keys are not secret
        Assert.Contains(PrivateKey, config.Write(), StringComparison.Ordinal);
    }

    [Fact]
    public void Dispose_zeroes_the_keys()
    {
        var config = WgQuickConfig.Parse(Canonical);
        var key = config.Interface.PrivateKey!;
        var psk = config.Peers[0].PresharedKey!;
        config.Dispose();
        Assert.Throws<ObjectDisposedException>(() => key.Bytes.Length);
        Assert.Throws<ObjectDisposedException>(() => psk.Bytes.Length);
    }

    [Theory]
    [InlineData("PrivateKey = x\n[Interface]", 1, "PrivateKey", "a key before any [Interface] or [Peer] section")]
    [InlineData("[Interface]\n[Interface]", 2, null, "a second [Interface] section (the first is on line 1)")]
    [InlineData("[Interface]\n[Peers]", 2, null, "unknown section '[Peers]'")]
    [InlineData("[Interface]\nListenPort 51820", 2, null, "expected 'Key = Value' or a [Section]")]
    [InlineData("[Interface]\n= 5", 2, null, "expected 'Key = Value' or a [Section]")]
    [InlineData("[Interface]\nPrivateKey = abc", 2, "PrivateKey", "not a key: expected 44 characters of base64 encoding 32 bytes, got 3 characters")]
    [InlineData("[Interface]\nPrivateKey = \nListenPort = 1", 2, "PrivateKey", "not a key")]
    [InlineData("[Interface]\nPRIVATEKEY = " + PrivateKey + "\nPrivateKey = " + PrivateKey, 3, "PrivateKey", "set twice in this section (first on line 2)")]
    [InlineData("[Interface]\nAddress = 10.0.0.1/33", 2, "Address", "prefix length '33' is not a number from 0 to 32")]
    [InlineData("[Interface]\nAddress = 10.0.0.1/24, 10.0.0.256/24", 2, "Address", "'10.0.0.256' is not an IPv4 or IPv6 address")]
    [InlineData("[Interface]\nAddress = gateway", 2, "Address", "'gateway' is not an IPv4 or IPv6 address")]
    [InlineData("[Interface]\nListenPort = 65536", 2, "ListenPort", "'65536' is not a port number from 0 to 65535")]
    [InlineData("[Interface]\nListenPort = -1", 2, "ListenPort", "'-1' is not a port number")]
    [InlineData("[Interface]\nlistenport = 1\nListenPort = 2", 3, "ListenPort", "set twice in this section (first on line 2)")]
    [InlineData("[Interface]\nFwMark = 0xzz", 2, "FwMark", "'0xzz' is not 'off' or a number")]
    [InlineData("[Interface]\nFwMark = 0x", 2, "FwMark", "'0x' is not 'off' or a number")]
    [InlineData("[Interface]\nMTU = 67", 2, "MTU", "'67' is not an MTU from 68 to 65535")]
    [InlineData("[Interface]\nMTU = big", 2, "MTU", "'big' is not an MTU")]
    [InlineData("[Interface]\nDNS = 1.1.1.1, -bad", 2, "DNS", "'-bad' is neither an IP address nor a search domain")]
    [InlineData("[Interface]\nTable = ", 2, "Table", "empty value")]
    [InlineData("[Interface]\nSaveConfig = true\nSaveConfig = false", 3, "SaveConfig", "set twice")]
    [InlineData("[Interface]\nPort = 1", 2, "Port", "unknown key in [Interface]")]
    [InlineData("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/8", 2, "PublicKey", "missing in this [Peer] section")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = nope", 3, "PublicKey", "'nope' is not a key")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\n[Peer]\nPublicKey = " + PeerKey, 5, "PublicKey", "the same peer is already defined in the [Peer] section on line 2")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nPresharedKey = short", 4, "PresharedKey", "not a key: expected 44 characters of base64 encoding 32 bytes, got 5 characters")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nAllowedIPs = 10.0.0.0/8, 10.0.0.0/", 4, "AllowedIPs", "prefix length '' is not a number from 0 to 32")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nAllowedIPs = fd00::/200", 4, "AllowedIPs", "prefix length '200' is not a number from 0 to 128")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nEndpoint = 192.0.2.1", 4, "Endpoint", "'192.0.2.1' is not host:port or [IPv6 address]:port")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nEndpoint = 2001:db8::1:51820", 4, "Endpoint", "'2001:db8::1:51820' is not host:port or [IPv6 address]:port")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nEndpoint = [vpn.example.com]:1", 4, "Endpoint", "'vpn.example.com' in brackets is not an IPv6 address")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nEndpoint = 192.0.2.300:1", 4, "Endpoint", "'192.0.2.300' is not an IPv4 address or a host name")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nEndpoint = host:99999", 4, "Endpoint", "'host:99999' is not host:port")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nPersistentKeepalive = always", 4, "PersistentKeepalive", "'always' is not 'off' or a number of seconds from 0 to 65535")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nEndpoint = 192.0.2.1:1\nendpoint = 192.0.2.1:2", 5, "endpoint", "set twice in this section (first on line 4)")]
    [InlineData("[Interface]\n[Peer]\nPublicKey = " + PeerKey + "\nAddress = 10.0.0.1/24", 4, "Address", "unknown key in [Peer]")]
    public void Every_error_names_line_key_and_problem(string text, int line, string? key, string problem)
    {
        var ex = Assert.Throws<WgQuickConfigException>(() => WgQuickConfig.Parse(text));
        Assert.Equal(line, ex.LineNumber);
        Assert.Equal(key, ex.Key);
        Assert.StartsWith(problem, ex.Problem, StringComparison.Ordinal);
        Assert.StartsWith($"line {line}: " + (key is null ? string.Empty : key + ": ") + problem, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_without_interface_is_refused()
    {
        var ex = Assert.Throws<WgQuickConfigException>(() => WgQuickConfig.Parse("# nothing\n"));
        Assert.Equal(0, ex.LineNumber);
        Assert.Equal("no [Interface] section", ex.Message);
    }

    [Fact]
    public void A_bad_private_key_is_not_echoed()
    {
        var almost = PrivateKey[..43] + "!";
        var ex = Assert.Throws<WgQuickConfigException>(() => WgQuickConfig.Parse($"[Interface]\nPrivateKey = {almost}\n"));
        Assert.DoesNotContain(PrivateKey[..20], ex.Message, StringComparison.Ordinal);
        var ex2 = Assert.Throws<WgQuickConfigException>(() => WgQuickConfig.Parse($"[Interface]\n[Peer]\nPublicKey = {PeerKey}\nPresharedKey = {Psk}x\n"));
        Assert.DoesNotContain(Psk[..20], ex2.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_built_in_code_writes_a_parsable_file()
    {
        using var key = WireGuardSecretKey.GeneratePrivateKey();
        using var config = new WgQuickConfig
        {
            Interface = new WgQuickInterface
            {
                PrivateKey = new WireGuardSecretKey(key.Bytes),
                Addresses = [new WgQuickAddress(IPAddress.Parse("100.64.0.1"), 10)],
                ListenPort = 0,
                FirewallMark = 0,
            },
            Peers = [new WgQuickPeer { PublicKey = key.GetPublicKey(), AllowedIps = [IPNetwork.Parse("0.0.0.0/0"), IPNetwork.Parse("::/0")], Endpoint = new WgQuickEndpoint("2001:db8::5", 1) }],
        };
        var text = config.Write();
        Assert.Contains("FwMark = off\n", text, StringComparison.Ordinal);
        Assert.Contains("Endpoint = [2001:db8::5]:1\n", text, StringComparison.Ordinal);
        using var parsed = WgQuickConfig.Parse(text);
        Assert.True(key.Equals(parsed.Interface.PrivateKey));
        Assert.Equal((ushort)0, parsed.Interface.ListenPort);
        Assert.Equal(0u, parsed.Interface.FirewallMark);
        Assert.Equal(config.Peers[0].AllowedIps, parsed.Peers[0].AllowedIps);
        Assert.Equal(config.Peers[0].Endpoint, parsed.Peers[0].Endpoint);
        Assert.Equal(text, parsed.Write());
    }

    [Fact]
    public void ToSetRequest_needs_a_resolver_for_host_names_and_uses_it()
    {
        using var config = WgQuickConfig.Parse(Canonical);
        var ex = Assert.Throws<WgQuickConfigException>(() => config.ToSetRequest());
        Assert.Equal("Endpoint", ex.Key);
        Assert.Contains("'vpn.example.com:4500'", ex.Message, StringComparison.Ordinal);

        using var request = config.ToSetRequest(e => new IPEndPoint(IPAddress.Parse("203.0.113.7"), e.Port));
        Assert.True(request.ReplacePeers);
        Assert.Equal((ushort)51820, request.ListenPort);
        Assert.Equal(0x10u, request.FirewallMark);
        Assert.Equal(PrivateKey, request.PrivateKey!.ToBase64());
        Assert.Equal(IPEndPoint.Parse("192.0.2.3:51820"), request.Peers[0].Endpoint);
        Assert.Equal(IPEndPoint.Parse("203.0.113.7:4500"), request.Peers[1].Endpoint);
        Assert.Equal(Psk, request.Peers[0].PresharedKey!.ToBase64());
        Assert.True(request.Peers[1].PresharedKey!.IsZero);
        Assert.Equal((ushort)0, request.Peers[1].PersistentKeepaliveInterval);
        Assert.All(request.Peers, p => Assert.True(p.ReplaceAllowedIps));

        // The request owns copies: disposing it leaves the configuration's keys intact.
        request.Dispose();
        Assert.Equal(PrivateKey, config.Interface.PrivateKey!.ToBase64());
    }

    [Fact]
    public void Save_writes_the_file_0600_and_replaces_an_existing_one_whole()
    {
        var directory = Directory.CreateTempSubdirectory("cvwqs").FullName;
        try
        {
            var path = Path.Combine(directory, "wg0.conf");
            File.WriteAllText(path, "old contents");
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            using var config = WgQuickConfig.Parse(Canonical);

            config.Save(path);

            Assert.Equal(Canonical, File.ReadAllText(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Equal(["wg0.conf"], Directory.GetFiles(directory).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Save_into_a_missing_directory_fails_and_leaves_nothing()
    {
        using var config = WgQuickConfig.Parse(Canonical);
        var missing = Path.Combine(Path.GetTempPath(), "cvwq-missing-" + Guid.NewGuid().ToString("N"), "wg0.conf");
        Assert.Throws<DirectoryNotFoundException>(() => config.Save(missing));
        Assert.False(Directory.Exists(Path.GetDirectoryName(missing)));
    }
}
