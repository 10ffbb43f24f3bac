using System.Buffers.Binary;
using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Netlink;

namespace CloudVpn.WireGuard.Tests.Netlink;

public sealed class WireGuardGenlTests
{
    private const ushort FamilyId = 0x1b;

    internal static WireGuardPublicKey Key(int n)
    {
        var bytes = new byte[32];
        BinaryPrimitives.WriteInt32BigEndian(bytes, n);
        bytes[31] = 0x5a;
        return new WireGuardPublicKey(bytes);
    }

    private static byte[] Hex(params string[] parts) => Convert.FromHexString(string.Concat(parts).Replace(" ", string.Empty, StringComparison.Ordinal));

    [Fact]
    public void Set_message_matches_hand_checked_layout()
    {
        var privateBytes = Enumerable.Repeat((byte)0x11, 32).ToArray();
        using var privateKey = new WireGuardSecretKey(privateBytes);
        var peerKey = new WireGuardPublicKey(Enumerable.Repeat((byte)0x22, 32).ToArray());
        var update = new WireGuardDeviceUpdate { PrivateKey = privateKey, ListenPort = 51820 };
        var peer = new WireGuardPeerUpdate(peerKey)
        {
            Endpoint = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 51820),
            PersistentKeepaliveInterval = 25,
            ReplaceAllowedIps = true,
        };
        peer.AllowedIps.Add(IPNetwork.Parse("10.0.0.0/24"));
        update.Peers.Add(peer);

        var messages = WireGuardGenl.EncodeSet(FamilyId, "wg0", update);
        Assert.Single(messages);
        var bytes = messages[0].ToArray(sequence: 1);

        var expected = Hex(
            "b8000000 1b00 0500 01000000 00000000",             // nlmsghdr: len 184, family 0x1b, REQUEST|ACK, seq 1
            "01010000",                                           // genlmsghdr: WG_CMD_SET_DEVICE, version 1
            "08000200 77673000",                                  // WGDEVICE_A_IFNAME "wg0"
            "24000300", new string('1', 64),                      // WGDEVICE_A_PRIVATE_KEY
            "06000600 6cca0000",                                  // WGDEVICE_A_LISTEN_PORT 51820 (host order) + pad
            "70000880",                                           // WGDEVICE_A_PEERS | NLA_F_NESTED, len 112
            "6c000080",                                           //   peer entry 0 | nested, len 108
            "24000100", new string('2', 64),                      //     WGPEER_A_PUBLIC_KEY
            "14000400 0200ca6c c0000201 0000000000000000",        //     WGPEER_A_ENDPOINT sockaddr_in, port big-endian
            "06000500 19000000",                                  //     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 25
            "08000300 02000000",                                  //     WGPEER_A_FLAGS REPLACE_ALLOWEDIPS
            "20000980",                                           //     WGPEER_A_ALLOWEDIPS | nested, len 32
            "1c000080",                                           //       entry 0, len 28
            "06000100 02000000",                                  //         FAMILY AF_INET
            "08000200 0a000000",                                  //         IPADDR 10.0.0.0
            "05000300 18000000");                                 //         CIDR_MASK 24
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(bytes));
    }

    [Fact]
    public void Remove_and_replace_peers_flags_and_ipv6_endpoint_are_encoded()
    {
        var update = new WireGuardDeviceUpdate { ReplacePeers = true, FirewallMark = 0x51 };
        update.Peers.Add(new WireGuardPeerUpdate(Key(1)) { Remove = true });
        update.Peers.Add(new WireGuardPeerUpdate(Key(2)) { UpdateOnly = true, Endpoint = new IPEndPoint(IPAddress.Parse("2001:db8::7"), 443) });
        var bytes = WireGuardGenl.EncodeSet(FamilyId, "wg1", update).Single().ToArray();

        var text = Convert.ToHexString(bytes);
        Assert.Contains("08000700" + "51000000", text, StringComparison.Ordinal);                       // FWMARK
        Assert.Contains("08000500" + "01000000", text, StringComparison.Ordinal);                       // device FLAGS REPLACE_PEERS
        Assert.Contains("08000300" + "01000000", text, StringComparison.Ordinal);                       // peer FLAGS REMOVE_ME
        Assert.Contains("08000300" + "04000000", text, StringComparison.Ordinal);                       // peer FLAGS UPDATE_ONLY
        Assert.Contains("20000400" + "0A0001BB" + "00000000" + "20010DB8000000000000000000000007" + "00000000", text, StringComparison.Ordinal); // sockaddr_in6
    }

    [Fact]
    public void Get_reply_split_over_messages_is_coalesced()
    {
        var first = WireGuardGenl.Begin(FamilyId, WireGuardGenl.CmdGetDevice, 1, NetlinkSocket.FlagMulti);
        first.PutU32(WireGuardGenl.DeviceIfindex, 7);
        first.PutString(WireGuardGenl.DeviceIfname, "wg0");
        first.PutU16(WireGuardGenl.DeviceListenPort, 51820);
        first.PutBytes(WireGuardGenl.DevicePublicKey, Key(99).Bytes);
        var peers = first.BeginNested(WireGuardGenl.DevicePeers);
        var a = first.BeginNested(0);
        first.PutBytes(WireGuardGenl.PeerPublicKey, Key(1).Bytes);
        var handshake = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(handshake, 1_700_000_000);
        BinaryPrimitives.WriteInt64LittleEndian(handshake.AsSpan(8), 500_000_000);
        first.PutBytes(WireGuardGenl.PeerLastHandshake, handshake);
        first.PutU64(WireGuardGenl.PeerRxBytes, 100);
        first.PutU64(WireGuardGenl.PeerTxBytes, 200);
        first.PutU32(WireGuardGenl.PeerProtocolVersion, 1);
        first.PutU16(WireGuardGenl.PeerKeepalive, 25);
        first.PutBytes(WireGuardGenl.PeerEndpoint, WireGuardGenl.EncodeEndpoint(new IPEndPoint(IPAddress.Parse("2001:db8::1"), 51820)));
        var list = first.BeginNested(WireGuardGenl.PeerAllowedIps);
        PutAllowed(first, "10.0.0.0/24");
        first.EndNested(list);
        first.EndNested(a);
        first.EndNested(peers);

        var second = WireGuardGenl.Begin(FamilyId, WireGuardGenl.CmdGetDevice, 1, NetlinkSocket.FlagMulti);
        peers = second.BeginNested(WireGuardGenl.DevicePeers);
        a = second.BeginNested(0);
        second.PutBytes(WireGuardGenl.PeerPublicKey, Key(1).Bytes);
        list = second.BeginNested(WireGuardGenl.PeerAllowedIps);
        PutAllowed(second, "fd00::/64");
        second.EndNested(list);
        second.EndNested(a);
        var b = second.BeginNested(0);
        second.PutBytes(WireGuardGenl.PeerPublicKey, Key(2).Bytes);
        second.EndNested(b);
        second.EndNested(peers);

        using var device = new WireGuardDeviceState();
        foreach (var part in new[] { first.ToArray(1), second.ToArray(1) })
        {
            foreach (var message in new NetlinkMessageEnumerator(part))
            {
                WireGuardGenl.DecodeGetPart(message, device);
            }
        }

        Assert.Equal(7, device.Index);
        Assert.Equal("wg0", device.Name);
        Assert.Equal(51820, device.ListenPort);
        Assert.Equal(Key(99), device.PublicKey);
        Assert.Null(device.PrivateKey);
        Assert.Equal(2, device.Peers.Count);
        var peerA = device.Peers[0];
        Assert.Equal(Key(1), peerA.PublicKey);
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24"), IPNetwork.Parse("fd00::/64")], peerA.AllowedIps);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000).AddMilliseconds(500), peerA.LastHandshake);
        Assert.Equal(100UL, peerA.ReceivedBytes);
        Assert.Equal(200UL, peerA.TransmittedBytes);
        Assert.Equal(25, peerA.PersistentKeepaliveInterval);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8::1"), 51820), peerA.Endpoint);
        Assert.Equal(Key(2), device.Peers[1].PublicKey);
        Assert.Empty(device.Peers[1].AllowedIps);
        Assert.Null(device.Peers[1].LastHandshake);
    }

    [Fact]
    public void Large_update_is_split_within_the_size_limit_and_reads_back_whole()
    {
        using var psk = WireGuardSecretKey.GeneratePresharedKey();
        var update = new WireGuardDeviceUpdate { ReplacePeers = true, ListenPort = 1234 };
        for (var p = 0; p < 300; p++)
        {
            var peer = new WireGuardPeerUpdate(Key(p)) { ReplaceAllowedIps = true, PersistentKeepaliveInterval = 15, PresharedKey = p % 2 == 0 ? psk : null };
            var count = p == 7 ? 200 : 5; // peer 7 alone needs several messages
            for (var i = 0; i < count; i++)
            {
                peer.AllowedIps.Add(new IPNetwork(new IPAddress([10, (byte)(p >> 8), (byte)p, (byte)i]), 32));
            }

            update.Peers.Add(peer);
        }

        const int max = 2048;
        var messages = WireGuardGenl.EncodeSet(FamilyId, "wg0", update, max).Select(m => m.ToArray()).ToList();
        Assert.True(messages.Count > 10, $"{messages.Count} messages");
        Assert.All(messages, m => Assert.InRange(m.Length, 100, max));

        // Device fields and REPLACE_PEERS only in the first message.
        var decodedFirst = Decode(messages.Take(1));
        Assert.Equal(1234, decodedFirst.ListenPort);
        Assert.All(messages.Skip(1), m => Assert.Equal(0, Decode([m]).ListenPort));
        Assert.Equal(1, messages.Count(m => Convert.ToHexString(m).Contains("08000500" + "01000000", StringComparison.Ordinal)));

        // REPLACE_ALLOWEDIPS, PSK and keepalive go with a peer's first part only: count the parts carrying peer 7.
        var partsOfSeven = messages.Where(m => Decode([m]).Peers.Any(x => x.PublicKey == Key(7))).ToList();
        Assert.True(partsOfSeven.Count >= 3, $"peer 7 in {partsOfSeven.Count} messages");
        Assert.Equal(15, Decode(partsOfSeven.Take(1)).Peers.Single(x => x.PublicKey == Key(7)).PersistentKeepaliveInterval);
        Assert.All(partsOfSeven.Skip(1), m => Assert.Equal(0, Decode([m]).Peers.Single(x => x.PublicKey == Key(7)).PersistentKeepaliveInterval));

        // The parts, coalesced as GET replies are, give back the whole configuration in order.
        using var all = Decode(messages);
        Assert.Equal(300, all.Peers.Count);
        for (var p = 0; p < 300; p++)
        {
            Assert.Equal(Key(p), all.Peers[p].PublicKey);
            Assert.Equal(update.Peers[p].AllowedIps, all.Peers[p].AllowedIps);
            Assert.Equal(p % 2 == 0, all.Peers[p].HasPresharedKey);
        }
    }

    [Fact]
    public void Family_request_and_answer()
    {
        var request = WireGuardGenl.EncodeGetFamily("wireguard").ToArray(5);
        Assert.Equal(Hex("24000000 1000 0000 05000000 00000000", "03010000", "0e000200 77697265677561726400 0000"), request);

        var answer = WireGuardGenl.Begin(0x10, 1, 2);
        answer.PutString(2, "wireguard");
        answer.PutU16(1, 0x1b);
        answer.PutU32(3, 1);
        foreach (var message in new NetlinkMessageEnumerator(answer.ToArray()))
        {
            Assert.Equal(((ushort)0x1b, 1u), WireGuardGenl.DecodeFamily(message));
        }
    }

    [Fact]
    public void Bad_attribute_sizes_are_reported()
    {
        var reply = WireGuardGenl.Begin(FamilyId, 0, 1);
        var peers = reply.BeginNested(WireGuardGenl.DevicePeers);
        var peer = reply.BeginNested(0);
        reply.PutBytes(WireGuardGenl.PeerPublicKey, new byte[31]);
        reply.EndNested(peer);
        reply.EndNested(peers);
        var error = Assert.Throws<NetlinkProtocolException>(() =>
        {
            using var device = new WireGuardDeviceState();
            foreach (var message in new NetlinkMessageEnumerator(reply.ToArray()))
            {
                WireGuardGenl.DecodeGetPart(message, device);
            }
        });
        Assert.Contains("31 bytes where 32 were expected", error.Message, StringComparison.Ordinal);
    }

    internal static WireGuardDeviceState Decode(IEnumerable<byte[]> messages)
    {
        var device = new WireGuardDeviceState();
        foreach (var bytes in messages)
        {
            foreach (var message in new NetlinkMessageEnumerator(bytes))
            {
                WireGuardGenl.DecodeGetPart(message, device);
            }
        }

        return device;
    }

    private static void PutAllowed(NetlinkMessageBuilder m, string cidr)
    {
        var network = IPNetwork.Parse(cidr);
        var entry = m.BeginNested(0);
        m.PutU16(WireGuardGenl.AllowedIpFamily, (ushort)(network.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 2 : 10));
        m.PutBytes(WireGuardGenl.AllowedIpAddress, network.BaseAddress.GetAddressBytes());
        m.PutU8(WireGuardGenl.AllowedIpCidrMask, (byte)network.PrefixLength);
        m.EndNested(entry);
    }
}
