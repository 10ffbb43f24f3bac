using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CloudVpn.KeyStores;
using CloudVpn.OpenVpn.Configuration;
using CloudVpn.OpenVpn.Pki;
using CloudVpn.Tunnels;

namespace CloudVpn.OpenVpn.Tests;

public sealed class RenderingTests : IDisposable
{
    private static readonly OpenVpnRuntimeLayout Layout = new("/run/cloudvpn/openvpn/ovpn0-1234");
    private readonly TestStore _store = new();

    public void Dispose() => _store.Dispose();

    [Fact]
    public void Default_server_is_udp_topology_subnet_with_aead_ciphers_tls_1_2_and_client_config_addresses()
    {
        var plan = OpenVpnServerPlan.FromSpec(Specs.Server(peers: [("alice", "10.8.0.10"), ("bob", "10.8.0.11")]));
        var config = OpenVpnConfigFile.Parse(OpenVpnConfigRenderer.RenderServer(plan, Layout));

        Assert.Equal(["udp4"], Args(config, "proto"));
        Assert.Equal(["1194"], Args(config, "port"));
        Assert.Equal(["ovpn0"], Args(config, "dev"));
        Assert.Equal(["subnet"], Args(config, "topology"));
        Assert.Equal(["10.8.0.1", "255.255.255.0"], Args(config, "ifconfig"));
        Assert.Contains(config.FindAll("push"), d => d.Arguments[0] == "topology subnet");
        Assert.Contains(config.FindAll("push"), d => d.Arguments[0] == "route-gateway 10.8.0.1");
        Assert.Equal(["AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"], Args(config, "data-ciphers"));
        Assert.Null(config.Find("cipher"));
        Assert.Null(config.Find("data-ciphers-fallback"));
        Assert.Equal(["1.2"], Args(config, "tls-version-min"));
        Assert.Equal(["client"], Args(config, "remote-cert-tls"));
        Assert.NotNull(config.Find("ccd-exclusive"));
        Assert.Equal([Layout.ClientConfigDirectory], Args(config, "client-config-dir"));
        Assert.Equal([Layout.CrlFile], Args(config, "crl-verify"));
        Assert.Equal([Layout.TlsCryptFile], Args(config, "tls-crypt"));
        Assert.Equal([Layout.ManagementSocket, "unix"], Args(config, "management"));
        Assert.Equal(["1420"], Args(config, "tun-mtu"));
        Assert.Empty(config.InlineBlocks); // no key material in the server configuration

        var alice = OpenVpnConfigFile.Parse(OpenVpnConfigRenderer.RenderClientConfig(plan, plan.Clients[0]));
        Assert.Equal(["10.8.0.10", "255.255.255.0"], Args(alice, "ifconfig-push"));
    }

    [Fact]
    public void Tcp_pushed_routes_and_routes_behind_a_client_are_rendered()
    {
        var spec = Specs.Server(port: 443, settings: new Dictionary<string, string>
        {
            ["openvpn.proto"] = "tcp",
            ["openvpn.push-routes"] = "10.96.0.0/12, 192.168.50.0/24",
            ["openvpn.data-ciphers"] = "chacha20-poly1305:AES-256-GCM",
            ["openvpn.keepalive"] = "5 30",
        });
        spec = spec with { Peers = [new PeerSpec("site-a", [IPNetwork.Parse("10.8.0.20/32"), IPNetwork.Parse("172.16.5.0/24")])] };
        var plan = OpenVpnServerPlan.FromSpec(spec);
        var config = OpenVpnConfigFile.Parse(OpenVpnConfigRenderer.RenderServer(plan, Layout));

        Assert.Equal(["tcp4-server"], Args(config, "proto"));
        Assert.Equal(["443"], Args(config, "port"));
        var pushes = config.FindAll("push").Select(d => d.Arguments[0]).ToList();
        Assert.Contains("route 10.96.0.0 255.240.0.0", pushes);
        Assert.Contains("route 192.168.50.0 255.255.255.0", pushes);
        Assert.Equal(["172.16.5.0", "255.255.255.0"], Args(config, "route"));
        Assert.Equal(["CHACHA20-POLY1305:AES-256-GCM"], Args(config, "data-ciphers"));
        Assert.Equal(["5", "30"], Args(config, "keepalive"));

        var ccd = OpenVpnConfigFile.Parse(OpenVpnConfigRenderer.RenderClientConfig(plan, plan.Clients[0]));
        Assert.Equal(["10.8.0.20", "255.255.255.0"], Args(ccd, "ifconfig-push"));
        Assert.Equal(["172.16.5.0", "255.255.255.0"], Args(ccd, "iroute"));
    }

    [Fact]
    public void Port_zero_uses_1194_and_the_server_address_can_be_chosen()
    {
        var plan = OpenVpnServerPlan.FromSpec(Specs.Server(port: 0, settings: new Dictionary<string, string> { ["openvpn.server-address"] = "10.8.0.254" }, peers: [("alice", "10.8.0.1")]));
        Assert.Equal(1194, plan.Port);
        Assert.Equal(IPAddress.Parse("10.8.0.254"), plan.ServerAddress);
        Assert.Equal(IPAddress.Parse("10.8.0.1"), plan.Clients[0].Address);
    }

    [Fact]
    public void A_bad_spec_fails_with_every_problem_naming_its_field()
    {
        var spec = new TunnelSpec(
            new DeviceSpec("this-name-is-far-too-long", new KeyReference("openvpn/x"), 70000, [IPNetwork.Parse("10.8.0.0/24")]),
            [
                new PeerSpec("alice", [IPNetwork.Parse("10.8.0.10/32")]),
                new PeerSpec("bob", [IPNetwork.Parse("10.8.0.10/32")]),
                new PeerSpec("carol", [IPNetwork.Parse("172.16.0.0/24")]),
                new PeerSpec("bad name", [IPNetwork.Parse("10.8.0.12/32")]),
                new PeerSpec("dave", [IPNetwork.Parse("10.8.0.1/32")]),
            ])
        {
            DriverSettings = new Dictionary<string, string>
            {
                ["openvpn.proto"] = "sctp",
                ["openvpn.data-ciphers"] = "AES-256-GCM:BF-CBC",
                ["openvpn.push-routes"] = "10.0.0.0/8,banana",
                ["openvpn.keepalive"] = "60 10",
                ["openvpn.compress"] = "lz4",
                ["wireguard.ignored"] = "x",
            },
        };

        var e = Assert.Throws<OpenVpnConfigurationException>(() => OpenVpnServerPlan.FromSpec(spec));
        string[] expected =
        [
            "Device.Name: 'this-name-is-far-too-long'",
            "Device.ListenPort: 70000",
            "DriverSettings[openvpn.proto]: 'sctp'",
            "DriverSettings[openvpn.data-ciphers]: 'BF-CBC' is not an AEAD cipher",
            "DriverSettings[openvpn.push-routes]: 'banana'",
            "DriverSettings[openvpn.keepalive]: '60 10'",
            "DriverSettings[openvpn.compress]: unknown OpenVPN setting",
            "Peers[1].AllowedIps: 10.8.0.10 is already given to another peer",
            "Peers[2].AllowedIps: has no /32 inside the tunnel network",
            "Peers[3].PublicKey: 'bad name'",
            "Peers[4].AllowedIps: 10.8.0.1 is the network, broadcast or server address",
        ];
        foreach (var item in expected)
        {
            Assert.Contains(e.Errors, error => error.StartsWith(item, StringComparison.Ordinal) || error.Contains(item, StringComparison.Ordinal));
        }

        Assert.Equal(expected.Length, e.Errors.Count);
        Assert.DoesNotContain("wireguard.ignored", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exported_profile_parses_back_with_the_pki_material_inline()
    {
        var pki = new OpenVpnPki(_store.Store, "openvpn/ovpn0");
        var plan = OpenVpnServerPlan.FromSpec(Specs.Server(settings: new Dictionary<string, string> { ["openvpn.remote"] = "vpn.example.net" }, peers: [("alice", "10.8.0.10")]));
        var bytes = await OpenVpnClientProfile.ExportAsync(pki, plan, "alice");
        var profile = OpenVpnConfigFile.Parse(Encoding.UTF8.GetString(bytes));

        Assert.NotNull(profile.Find("client"));
        Assert.Equal(["udp"], Args(profile, "proto"));
        Assert.Equal(["vpn.example.net", "1194"], Args(profile, "remote"));
        Assert.Equal(["server"], Args(profile, "remote-cert-tls"));
        Assert.Equal(["ovpn0", "name"], Args(profile, "verify-x509-name"));
        Assert.Equal(["1.2"], Args(profile, "tls-version-min"));
        Assert.Equal(["AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305"], Args(profile, "data-ciphers"));
        Assert.Equal(["ca", "cert", "key", "tls-crypt"], profile.InlineBlocks.Keys.Order(StringComparer.Ordinal));

        using var ca = await pki.GetCaCertificateAsync();
        using var client = await pki.GetClientCertificateAsync("alice");
        Assert.Equal(ca.Thumbprint, X509Certificate2.CreateFromPem(profile.InlineBlocks["ca"]).Thumbprint);
        using var withKey = X509Certificate2.CreateFromPem(profile.InlineBlocks["cert"], profile.InlineBlocks["key"]);
        Assert.Equal(client.Thumbprint, withKey.Thumbprint);
        Assert.True(withKey.HasPrivateKey);
        Assert.Equal(await pki.GetTlsCryptKeyAsync(), TlsCryptKey.Format(TlsCryptKey.Parse(Encoding.ASCII.GetBytes(profile.InlineBlocks["tls-crypt"]))));

        var tcp = OpenVpnServerPlan.FromSpec(Specs.Server(settings: new Dictionary<string, string> { ["openvpn.proto"] = "tcp" }, peers: [("alice", "10.8.0.10")]));
        var tcpProfile = OpenVpnConfigFile.Parse(Encoding.UTF8.GetString(await OpenVpnClientProfile.ExportAsync(pki, tcp, "alice", "203.0.113.7", 8443)));
        Assert.Equal(["tcp-client"], Args(tcpProfile, "proto"));
        Assert.Equal(["203.0.113.7", "8443"], Args(tcpProfile, "remote"));
        CryptographicOperations.ZeroMemory(bytes);
    }

    [Fact]
    public async Task Export_without_a_remote_host_says_what_is_missing()
    {
        var pki = new OpenVpnPki(_store.Store, "openvpn/ovpn0");
        var plan = OpenVpnServerPlan.FromSpec(Specs.Server(peers: [("alice", "10.8.0.10")]));
        var e = await Assert.ThrowsAsync<ArgumentException>(async () => await OpenVpnClientProfile.ExportAsync(pki, plan, "alice"));
        Assert.Contains("openvpn.remote", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_parser_handles_quotes_comments_and_reports_unclosed_blocks()
    {
        var parsed = OpenVpnConfigFile.Parse("# c\n; c\npush \"route 10.0.0.0 255.0.0.0\"  # trailing\nremote a 1\n<ca>\nX\n</ca>\n");
        Assert.Equal(["route 10.0.0.0 255.0.0.0"], parsed.Find("push")!.Arguments);
        Assert.Equal(["a", "1"], parsed.Find("remote")!.Arguments);
        Assert.Equal("X\n", parsed.InlineBlocks["ca"]);
        var e = Assert.Throws<FormatException>(() => OpenVpnConfigFile.Parse("client\n<key>\nabc\n"));
        Assert.Contains("line 2", e.Message, StringComparison.Ordinal);
    }

    private static IReadOnlyList<string> Args(OpenVpnConfigFile file, string name) =>
        (file.Find(name) ?? throw new Xunit.Sdk.XunitException($"directive '{name}' missing")).Arguments;
}
