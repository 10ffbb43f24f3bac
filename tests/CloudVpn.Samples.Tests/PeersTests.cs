using System.Net;
using CloudVpn.Samples.Gateway;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.Samples.Tests;

public sealed class PeersTests : IDisposable
{
    private static readonly string KeyA = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey().ToBase64();
    private static readonly string KeyB = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey().ToBase64();
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Peers_file_round_trips()
    {
        var peers = new[]
        {
            new PeerEntry("alice", KeyA, [IPNetwork.Parse("10.8.0.2/32")]),
            new PeerEntry("site-b", KeyB, [IPNetwork.Parse("10.8.0.3/32"), IPNetwork.Parse("192.168.50.0/24")]) { Endpoint = "198.51.100.7:51820", PersistentKeepalive = 25 },
        };
        var path = Path.Combine(_dir.Path, "peers.json");
        PeersFile.Save(path, peers);

        var loaded = PeersFile.Load(path);

        Assert.Equal(2, loaded.Count);
        Assert.Equal("alice", loaded[0].Name);
        Assert.Equal(KeyA, loaded[0].PublicKey);
        Assert.Equal([IPNetwork.Parse("10.8.0.3/32"), IPNetwork.Parse("192.168.50.0/24")], loaded[1].AllowedIps);
        Assert.Equal("198.51.100.7:51820", loaded[1].Endpoint);
        Assert.Equal(TimeSpan.FromSeconds(25), loaded[1].ToSpec().PersistentKeepalive);
        Assert.Contains(KeyA, File.ReadAllText(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_bad_entry_is_named_with_its_field()
    {
        var json = $$"""
            {"peers": [
              {"name": "Bad Name", "publicKey": "{{KeyA}}", "allowedIps": ["10.8.0.2/32"]},
              {"name": "bob", "publicKey": "not-a-key", "allowedIps": ["10.8.0.300/32"]},
              {"name": "carol", "publicKey": "{{KeyA}}"},
              {"name": "bob", "publicKey": "{{KeyB}}", "allowedIps": [], "persistentKeepalive": -1}
            ]}
            """;

        var e = Assert.Throws<PeersFileException>(() => PeersFile.Parse(json, "peers.json"));

        Assert.Contains("peers.json: peers[0].name: 'Bad Name' is not a peer name", e.Message, StringComparison.Ordinal);
        Assert.Contains("peers.json: peers[1].publicKey: not a WireGuard public key", e.Message, StringComparison.Ordinal);
        Assert.Contains("peers.json: peers[1].allowedIps: '10.8.0.300/32' is not a prefix", e.Message, StringComparison.Ordinal);
        Assert.Contains("peers.json: peers[2].publicKey: the same key is given for another peer", e.Message, StringComparison.Ordinal);
        Assert.Contains("peers.json: peers[2].allowedIps: missing", e.Message, StringComparison.Ordinal);
        Assert.Contains("peers.json: peers[3].name: 'bob' is used by another peer", e.Message, StringComparison.Ordinal);
        Assert.Contains("peers.json: peers[3].persistentKeepalive: '-1'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Broken_json_names_the_line()
    {
        var e = Assert.Throws<PeersFileException>(() => PeersFile.Parse("{\n\"peers\": [\n{,]}", "peers.json"));
        Assert.StartsWith("peers.json: not valid JSON (line 3)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_next_free_address_skips_the_gateway_and_every_taken_range()
    {
        var peers = new[]
        {
            new PeerEntry("a", KeyA, [IPNetwork.Parse("10.8.0.1/32")]),
            new PeerEntry("b", KeyB, [IPNetwork.Parse("10.8.0.4/30"), IPNetwork.Parse("10.8.0.2/32")]),
        };

        var next = PeersFile.NextFreeAddress(IPAddress.Parse("10.8.0.3"), 24, peers);

        Assert.Equal(IPAddress.Parse("10.8.0.8"), next);
    }

    [Fact]
    public void A_full_network_is_reported()
    {
        var peers = new[] { new PeerEntry("a", KeyA, [IPNetwork.Parse("10.8.0.2/32")]) };
        var e = Assert.Throws<InvalidOperationException>(() => PeersFile.NextFreeAddress(IPAddress.Parse("10.8.0.1"), 30, peers));
        Assert.Contains("10.8.0.0/30 has no free address left", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Adding_a_peer_writes_its_public_key_and_prints_a_matching_client_configuration()
    {
        var options = TestOptions.Valid(_dir.Path);
        options.ClientDns = "10.8.0.1";
        var gatewayKey = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey().ToBase64();

        var first = PeerEnrollment.Add("laptop", options, gatewayKey);
        var second = PeerEnrollment.Add("phone", options, gatewayKey);

        var peers = PeersFile.Load(options.PeersFile);
        Assert.Equal(["laptop", "phone"], peers.Select(p => p.Name));
        Assert.Equal([IPNetwork.Parse("10.8.0.2/32")], peers[0].AllowedIps);
        Assert.Equal([IPNetwork.Parse("10.8.0.3/32")], peers[1].AllowedIps);

        var fields = ParseWgQuick(second.ClientConfiguration);
        using var clientKey = WireGuardSecretKey.FromBase64(fields["Interface.PrivateKey"]);
        Assert.Equal(peers[1].PublicKey, clientKey.GetPublicKey().ToBase64());
        Assert.Equal("10.8.0.3/32", fields["Interface.Address"]);
        Assert.Equal("10.8.0.1", fields["Interface.DNS"]);
        Assert.Equal(gatewayKey, fields["Peer.PublicKey"]);
        Assert.Equal("192.0.2.1:51820", fields["Peer.Endpoint"]);
        Assert.Equal("10.8.0.0/24", fields["Peer.AllowedIPs"]);
        Assert.Equal("25", fields["Peer.PersistentKeepalive"]);
        Assert.DoesNotContain(fields["Interface.PrivateKey"], File.ReadAllText(options.PeersFile), StringComparison.Ordinal);
        Assert.NotEqual(first.ClientConfiguration, second.ClientConfiguration);
    }

    [Fact]
    public void Adding_a_peer_twice_under_one_name_is_refused()
    {
        var options = TestOptions.Valid(_dir.Path);
        PeerEnrollment.Add("laptop", options, KeyA);
        var e = Assert.Throws<PeersFileException>(() => PeerEnrollment.Add("laptop", options, KeyA));
        Assert.Contains("a peer named 'laptop' already exists", e.Message, StringComparison.Ordinal);
        Assert.Single(PeersFile.Load(options.PeersFile));
    }

    [Fact]
    public void The_qr_code_is_square_and_uses_only_block_characters()
    {
        var qr = ClientConfig.RenderQr("[Interface]\nPrivateKey = x\n");
        var lines = qr.TrimEnd('\n').Split('\n');
        var width = lines[0].Length;
        Assert.All(lines, l => Assert.Equal(width, l.Length));
        Assert.Equal((width + 1) / 2, lines.Length);
        Assert.All(qr.Replace("\n", string.Empty, StringComparison.Ordinal), c => Assert.Contains(c, " ▀▄█"));
        Assert.Contains('▀', qr);
    }

    internal static Dictionary<string, string> ParseWgQuick(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var section = string.Empty;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith('[') && line.EndsWith(']'))
            {
                section = line[1..^1];
            }
            else if (line.Contains('=', StringComparison.Ordinal))
            {
                var eq = line.IndexOf('=', StringComparison.Ordinal);
                result[$"{section}.{line[..eq].Trim()}"] = line[(eq + 1)..].Trim();
            }
        }

        return result;
    }
}
