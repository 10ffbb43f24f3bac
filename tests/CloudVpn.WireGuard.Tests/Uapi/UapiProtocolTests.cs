using System.Net;
using System.Text;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Uapi;

namespace CloudVpn.WireGuard.Tests.Uapi;

public class UapiProtocolTests
{
    private const string PrivateHex = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";
    private const string PeerAHex = "b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33";
    private const string PeerBHex = "58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376";
    private const string PskHex = "188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52";

    private static UapiSetRequest ParseSet(string body) => UapiProtocol.ParseSetRequest(Encoding.UTF8.GetBytes(body));

    private static string WriteGet(UapiDeviceState state)
    {
        using var buffer = new SecretBuffer(16);
        UapiProtocol.WriteGetResponse(state, buffer);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [Fact]
    public void Get_answer_has_wireguard_go_layout()
    {
        using var state = new UapiDeviceState
        {
            PrivateKey = WireGuardSecretKey.FromHex(PrivateHex),
            ListenPort = 51820,
            FirewallMark = 0x42,
            Peers =
            [
                new UapiPeerState
                {
                    PublicKey = WireGuardPublicKey.FromHex(PeerAHex),
                    PresharedKey = WireGuardSecretKey.FromHex(PskHex),
                    Endpoint = IPEndPoint.Parse("[2001:db8::1]:51820"),
                    LastHandshake = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000).AddTicks(1234567),
                    ReceivedBytes = 92,
                    TransmittedBytes = 148,
                    PersistentKeepaliveInterval = 25,
                    AllowedIps = [IPNetwork.Parse("10.0.0.0/24"), IPNetwork.Parse("fd00::/64")],
                },
                new UapiPeerState { PublicKey = WireGuardPublicKey.FromHex(PeerBHex), Endpoint = IPEndPoint.Parse("192.0.2.7:4500") },
            ],
        };

        Assert.Equal(
            $"private_key={PrivateHex}\nlisten_port=51820\nfwmark=66\n"
            + $"public_key={PeerAHex}\npreshared_key={PskHex}\nprotocol_version=1\nendpoint=[2001:db8::1]:51820\n"
            + "last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=123456700\ntx_bytes=148\nrx_bytes=92\n"
            + "persistent_keepalive_interval=25\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\n"
            + $"public_key={PeerBHex}\npreshared_key={new string('0', 64)}\nprotocol_version=1\nendpoint=192.0.2.7:4500\n"
            + "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n"
            + "errno=0\n\n",
            WriteGet(state));
    }

    [Fact]
    public void Get_answer_of_an_unconfigured_device_is_only_errno()
    {
        using var state = new UapiDeviceState { PrivateKey = new WireGuardSecretKey(new byte[32]) };
        Assert.Equal("errno=0\n\n", WriteGet(state));
    }

    [Fact]
    public void Errno_is_written_negated_like_wireguard_go()
    {
        using var buffer = new SecretBuffer();
        UapiProtocol.WriteErrno(buffer, UapiErrno.Invalid);
        UapiProtocol.WriteErrno(buffer, 0);
        Assert.Equal("errno=-22\n\nerrno=0\n\n", Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    [Fact]
    public void Set_request_with_every_key_is_parsed()
    {
        using var request = ParseSet(
            $"private_key={PrivateHex}\nlisten_port=51820\nfwmark=7\nreplace_peers=true\n"
            + $"public_key={PeerAHex}\nupdate_only=true\npreshared_key={PskHex}\nendpoint=[2001:db8::1]:51820\n"
            + "persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.0.0.1/24\nallowed_ip=fd00::1/64\nprotocol_version=1\n"
            + $"public_key={PeerBHex}\nremove=true");

        Assert.Equal(PrivateHex, request.PrivateKey!.ToHex());
        Assert.Equal((ushort)51820, request.ListenPort);
        Assert.Equal(7u, request.FirewallMark);
        Assert.True(request.ReplacePeers);
        Assert.Equal(2, request.Peers.Count);
        var a = request.Peers[0];
        Assert.Equal(PeerAHex, a.PublicKey.ToHex());
        Assert.True(a.UpdateOnly);
        Assert.False(a.Remove);
        Assert.Equal(PskHex, a.PresharedKey!.ToHex());
        Assert.Equal(IPEndPoint.Parse("[2001:db8::1]:51820"), a.Endpoint);
        Assert.Equal((ushort)25, a.PersistentKeepaliveInterval);
        Assert.True(a.ReplaceAllowedIps);
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24"), IPNetwork.Parse("fd00::/64")], a.AllowedIps);
        var b = request.Peers[1];
        Assert.True(b.Remove);
        Assert.Null(b.PresharedKey);
        Assert.Null(b.Endpoint);
        Assert.Null(b.PersistentKeepaliveInterval);
    }

    [Fact]
    public void Absent_keys_mean_unchanged()
    {
        using var request = ParseSet($"public_key={PeerAHex}\nallowed_ip=192.0.2.0/24");
        Assert.Null(request.PrivateKey);
        Assert.Null(request.ListenPort);
        Assert.Null(request.FirewallMark);
        Assert.False(request.ReplacePeers);
        Assert.False(request.Peers[0].ReplaceAllowedIps);
        Assert.False(request.Peers[0].UpdateOnly);
    }

    [Fact]
    public void Empty_set_request_changes_nothing()
    {
        using var request = ParseSet("");
        Assert.Empty(request.Peers);
        Assert.Null(request.PrivateKey);
    }

    [Fact]
    public void Replace_allowed_ips_after_allowed_ip_drops_the_earlier_ones_as_wireguard_go_does()
    {
        using var request = ParseSet($"public_key={PeerAHex}\nallowed_ip=10.0.0.0/8\nreplace_allowed_ips=true\nallowed_ip=10.1.0.0/16");
        Assert.Equal([IPNetwork.Parse("10.1.0.0/16")], request.Peers[0].AllowedIps);
        Assert.True(request.Peers[0].ReplaceAllowedIps);
    }

    [Fact]
    public void Zero_keys_are_kept_as_zero_to_mean_remove()
    {
        using var request = ParseSet($"private_key={new string('0', 64)}\npublic_key={PeerAHex}\npreshared_key={new string('0', 64)}");
        Assert.True(request.PrivateKey!.IsZero);
        Assert.True(request.Peers[0].PresharedKey!.IsZero);
    }

    [Fact]
    public void Upper_case_hex_is_accepted()
    {
        using var request = ParseSet($"public_key={PeerAHex.ToUpperInvariant()}");
        Assert.Equal(PeerAHex, request.Peers[0].PublicKey.ToHex());
    }

    [Theory]
    [InlineData("garbage", UapiErrno.Protocol, "line 2: expected key=value")]
    [InlineData("private_key=", UapiErrno.Invalid, "line 2: private_key: expected 64 hexadecimal characters, got 0")]
    [InlineData("private_key=" + "zz" + "4b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a", UapiErrno.Invalid, "line 2: private_key: not a hexadecimal key")]
    [InlineData("listen_port=70000", UapiErrno.Invalid, "line 2: listen_port: '70000' is not a number from 0 to 65535")]
    [InlineData("listen_port=-1", UapiErrno.Invalid, "line 2: listen_port: '-1'")]
    [InlineData("listen_port=+5", UapiErrno.Invalid, "line 2: listen_port: '+5'")]
    [InlineData("listen_port=", UapiErrno.Invalid, "line 2: listen_port: ''")]
    [InlineData("fwmark=4294967296", UapiErrno.Invalid, "line 2: fwmark: '4294967296' is not a number from 0 to 4294967295")]
    [InlineData("replace_peers=false", UapiErrno.Invalid, "line 2: replace_peers: the only value is 'true', not 'false'")]
    [InlineData("Private_key=00", UapiErrno.Invalid, "line 2: 'Private_key' is not a device key")]
    [InlineData("protocol_version=1", UapiErrno.Invalid, "line 2: 'protocol_version' is not a device key")]
    [InlineData("listen_port=1\n=5", UapiErrno.Invalid, "line 3: '' is not a device key")]
    [InlineData("public_key=abcd", UapiErrno.Invalid, "line 2: public_key: expected 64 hexadecimal characters, got 4")]
    [InlineData("PEER\nremove=false", UapiErrno.Invalid, "line 3: remove: the only value is 'true', not 'false'")]
    [InlineData("PEER\nupdate_only=1", UapiErrno.Invalid, "line 3: update_only: the only value is 'true', not '1'")]
    [InlineData("PEER\npreshared_key=0011", UapiErrno.Invalid, "line 3: preshared_key: expected 64 hexadecimal characters, got 4")]
    [InlineData("PEER\nendpoint=vpn.example.com:51820", UapiErrno.Invalid, "line 3: endpoint: 'vpn.example.com:51820' is not an IPv4 address:port")]
    [InlineData("PEER\nendpoint=192.0.2.1", UapiErrno.Invalid, "line 3: endpoint: '192.0.2.1'")]
    [InlineData("PEER\nendpoint=::1:5", UapiErrno.Invalid, "line 3: endpoint: '::1:5'")]
    [InlineData("PEER\nendpoint=192.0.2.1:65536", UapiErrno.Invalid, "line 3: endpoint: '192.0.2.1:65536'")]
    [InlineData("PEER\npersistent_keepalive_interval=65536", UapiErrno.Invalid, "line 3: persistent_keepalive_interval: '65536'")]
    [InlineData("PEER\nreplace_allowed_ips=yes", UapiErrno.Invalid, "line 3: replace_allowed_ips: the only value is 'true', not 'yes'")]
    [InlineData("PEER\nallowed_ip=10.0.0.1", UapiErrno.Invalid, "line 3: allowed_ip: expected address/prefix-length")]
    [InlineData("PEER\nallowed_ip=10.0.0.0/33", UapiErrno.Invalid, "line 3: allowed_ip: prefix length '33' is not a number from 0 to 32")]
    [InlineData("PEER\nallowed_ip=fd00::/129", UapiErrno.Invalid, "line 3: allowed_ip: prefix length '129' is not a number from 0 to 128")]
    [InlineData("PEER\nallowed_ip=10/8", UapiErrno.Invalid, "line 3: allowed_ip: '10' is not an IPv4 or IPv6 address")]
    [InlineData("PEER\nallowed_ip=010.0.0.0/8", UapiErrno.Invalid, "line 3: allowed_ip: '010.0.0.0' is not an IPv4 or IPv6 address")]
    [InlineData("PEER\nprotocol_version=2", UapiErrno.Invalid, "line 3: protocol_version: only version 1 exists, not '2'")]
    [InlineData("PEER\nlisten_port=5", UapiErrno.Invalid, "line 3: 'listen_port' is not a peer key")]
    [InlineData("PEER\nallowed_ip=10.0.0.0/8\nPEER\nname=x", UapiErrno.Invalid, "line 5: 'name' is not a peer key")]
    public void Every_bad_line_is_refused_with_its_errno_line_and_key(string body, int errno, string message)
    {
        body = body.Replace("PEER", $"public_key={PeerAHex}", StringComparison.Ordinal);
        var ex = Assert.Throws<UapiException>(() => ParseSet(body));
        Assert.Equal(errno, ex.Errno);
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_key_value_is_not_echoed_in_the_error()
    {
        var secretLooking = PrivateHex[..63] + "x";
        var ex = Assert.Throws<UapiException>(() => ParseSet($"private_key={secretLooking}"));
        Assert.DoesNotContain(PrivateHex[..40], ex.Message, StringComparison.Ordinal);
        var ex2 = Assert.Throws<UapiException>(() => ParseSet($"public_key={PeerAHex}\npreshared_key={PskHex}00"));
        Assert.DoesNotContain(PskHex[..40], ex2.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Set_request_round_trips_through_writer_and_parser()
    {
        using var original = new UapiSetRequest
        {
            PrivateKey = WireGuardSecretKey.FromHex(PrivateHex),
            ListenPort = 0,
            FirewallMark = 3,
            ReplacePeers = true,
            Peers =
            [
                new UapiPeerUpdate
                {
                    PublicKey = WireGuardPublicKey.FromHex(PeerAHex),
                    UpdateOnly = true,
                    PresharedKey = WireGuardSecretKey.FromHex(PskHex),
                    Endpoint = IPEndPoint.Parse("198.51.100.9:1"),
                    PersistentKeepaliveInterval = 0,
                    ReplaceAllowedIps = true,
                    AllowedIps = [IPNetwork.Parse("0.0.0.0/0"), IPNetwork.Parse("::/0")],
                },
                new UapiPeerUpdate { PublicKey = WireGuardPublicKey.FromHex(PeerBHex), Remove = true },
            ],
        };
        using var text = new SecretBuffer();
        UapiProtocol.WriteSetRequest(original, text);
        var written = Encoding.UTF8.GetString(text.WrittenSpan);
        Assert.StartsWith("set=1\n", written, StringComparison.Ordinal);
        Assert.EndsWith("\n\n", written, StringComparison.Ordinal);

        using var parsed = ParseSet(written["set=1\n".Length..].TrimEnd('\n'));
        Assert.Equal(PrivateHex, parsed.PrivateKey!.ToHex());
        Assert.Equal((ushort)0, parsed.ListenPort);
        Assert.Equal(3u, parsed.FirewallMark);
        Assert.True(parsed.ReplacePeers);
        Assert.Equal(original.Peers[0].AllowedIps, parsed.Peers[0].AllowedIps);
        Assert.Equal(original.Peers[0].Endpoint, parsed.Peers[0].Endpoint);
        Assert.Equal((ushort)0, parsed.Peers[0].PersistentKeepaliveInterval);
        Assert.True(parsed.Peers[0].UpdateOnly);
        Assert.True(parsed.Peers[0].ReplaceAllowedIps);
        Assert.Equal(PskHex, parsed.Peers[0].PresharedKey!.ToHex());
        Assert.True(parsed.Peers[1].Remove);
    }

    [Fact]
    public void Get_answer_round_trips_through_writer_and_parser()
    {
        using var state = new UapiDeviceState
        {
            PrivateKey = WireGuardSecretKey.FromHex(PrivateHex),
            ListenPort = 1,
            Peers =
            [
                new UapiPeerState
                {
                    PublicKey = WireGuardPublicKey.FromHex(PeerAHex),
                    PresharedKey = WireGuardSecretKey.FromHex(PskHex),
                    Endpoint = IPEndPoint.Parse("192.0.2.1:51820"),
                    LastHandshake = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000).AddTicks(5),
                    ReceivedBytes = ulong.MaxValue,
                    TransmittedBytes = 1,
                    PersistentKeepaliveInterval = 65535,
                    AllowedIps = [IPNetwork.Parse("10.0.0.0/8")],
                },
                new UapiPeerState { PublicKey = WireGuardPublicKey.FromHex(PeerBHex) },
            ],
        };
        using var parsed = UapiProtocol.ParseGetResponse(Encoding.UTF8.GetBytes(WriteGet(state)));
        Assert.Equal(PrivateHex, parsed.PrivateKey!.ToHex());
        Assert.Equal((ushort)1, parsed.ListenPort);
        Assert.Equal(0u, parsed.FirewallMark);
        Assert.Equal(2, parsed.Peers.Count);
        var a = parsed.Peers[0];
        Assert.Equal(PskHex, a.PresharedKey!.ToHex());
        Assert.Equal(state.Peers[0].LastHandshake, a.LastHandshake);
        Assert.Equal(ulong.MaxValue, a.ReceivedBytes);
        Assert.Equal(1ul, a.TransmittedBytes);
        Assert.Equal((ushort)65535, a.PersistentKeepaliveInterval);
        Assert.Equal(state.Peers[0].AllowedIps, a.AllowedIps);
        Assert.Equal(state.Peers[0].Endpoint, a.Endpoint);
        var b = parsed.Peers[1];
        Assert.Null(b.PresharedKey);
        Assert.Null(b.Endpoint);
        Assert.Null(b.LastHandshake);
        Assert.Empty(b.AllowedIps);
    }

    [Fact]
    public void Get_answer_with_an_error_throws_its_errno()
    {
        var ex = Assert.Throws<UapiException>(() => UapiProtocol.ParseGetResponse("errno=-71\n\n"u8));
        Assert.Equal(UapiErrno.Protocol, ex.Errno);
    }

    [Fact]
    public void ToString_of_state_and_request_never_shows_keys()
    {
        using var state = new UapiDeviceState
        {
            PrivateKey = WireGuardSecretKey.FromHex(PrivateHex),
            Peers = [new UapiPeerState { PublicKey = WireGuardPublicKey.FromHex(PeerAHex), PresharedKey = WireGuardSecretKey.FromHex(PskHex) }],
        };
        using var request = ParseSet($"private_key={PrivateHex}\npublic_key={PeerAHex}\npreshared_key={PskHex}");
        var privateBase64 = state.PrivateKey.ToBase64();
        var pskBase64 = state.Peers[0].PresharedKey!.ToBase64();
        foreach (var text in new[] { state.ToString(), state.Peers[0].ToString(), request.ToString(), request.Peers[0].ToString() })
        {
            Assert.DoesNotContain(PrivateHex, text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(PskHex, text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(privateBase64, text, StringComparison.Ordinal);
            Assert.DoesNotContain(pskBase64, text, StringComparison.Ordinal);
        }

        Assert.Contains("<redacted>", state.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Disposing_a_request_zeroes_its_keys()
    {
        var request = ParseSet($"private_key={PrivateHex}\npublic_key={PeerAHex}\npreshared_key={PskHex}");
        var privateKey = request.PrivateKey!;
        var psk = request.Peers[0].PresharedKey!;
        request.Dispose();
        Assert.Throws<ObjectDisposedException>(() => privateKey.Bytes.Length);
        Assert.Throws<ObjectDisposedException>(() => psk.Bytes.Length);
    }
}
