using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Netlink;
using static CloudVpn.WireGuard.Tests.Netlink.WireGuardGenlTests;

namespace CloudVpn.WireGuard.Tests.Netlink;

public sealed class WireGuardConfigDiffTests
{
    private static IPNetwork Net(int peer, int i) => new(new IPAddress([10, (byte)(peer >> 8), (byte)peer, (byte)(i * 16)]), 28);

    /// <summary>A device state as the kernel would report it after applying <paramref name="config"/>.</summary>
    private static WireGuardDeviceState StateOf(WireGuardInterfaceConfig config, ushort port = 51820)
    {
        var state = new WireGuardDeviceState { Name = "wg0", ListenPort = port, PrivateKey = config.PrivateKey is { } k ? new WireGuardSecretKey(k.Bytes) : null };
        foreach (var peer in config.Peers)
        {
            var p = new WireGuardPeerState(peer.PublicKey)
            {
                PresharedKey = new WireGuardSecretKey(peer.PresharedKey is { } psk ? psk.Bytes : new byte[32]),
                Endpoint = peer.Endpoint,
                PersistentKeepaliveInterval = peer.PersistentKeepaliveInterval,
            };
            p.AllowedIps.AddRange(peer.AllowedIps);
            state.Peers.Add(p);
        }

        return state;
    }

    private static WireGuardInterfaceConfig Config(int peers, WireGuardSecretKey? key = null)
    {
        var config = new WireGuardInterfaceConfig { PrivateKey = key, ListenPort = 51820 };
        for (var p = 0; p < peers; p++)
        {
            var peer = new WireGuardInterfacePeer(Key(p)) { PersistentKeepaliveInterval = 25 };
            peer.AllowedIps.Add(Net(p, 0));
            peer.AllowedIps.Add(Net(p, 1));
            config.Peers.Add(peer);
        }

        return config;
    }

    [Fact]
    public void Same_configuration_gives_an_empty_update()
    {
        using var key = WireGuardSecretKey.GeneratePrivateKey();
        var config = Config(50, key);
        using var state = StateOf(config);
        config.Peers[3].AllowedIps.Reverse(); // order does not matter
        var diff = WireGuardConfigDiff.Compute(state, config);
        Assert.True(diff.Update.IsEmpty);
        Assert.False(diff.DeviceChanged);
        Assert.Empty(diff.Added);
        Assert.Empty(diff.Updated);
        Assert.Empty(diff.Removed);
    }

    [Fact]
    public void One_changed_peer_of_ten_thousand_is_the_only_peer_in_the_messages()
    {
        var config = Config(10_000);
        using var state = StateOf(config);
        config.Peers[4321].AllowedIps[1] = IPNetwork.Parse("172.16.0.0/24");

        var diff = WireGuardConfigDiff.Compute(state, config);
        Assert.Equal([Key(4321)], diff.Updated);
        Assert.Empty(diff.Added);
        Assert.Empty(diff.Removed);
        var peer = Assert.Single(diff.Update.Peers);
        Assert.True(peer.ReplaceAllowedIps);
        Assert.True(peer.UpdateOnly);
        Assert.Null(peer.PersistentKeepaliveInterval);
        Assert.Null(peer.Endpoint);
        Assert.Null(peer.PresharedKey);

        var messages = WireGuardGenl.EncodeSet(0x1b, "wg0", diff.Update).Select(m => m.ToArray()).ToList();
        var message = Assert.Single(messages);
        Assert.True(message.Length < 200, $"{message.Length} bytes");
        using var sent = Decode(messages);
        var only = Assert.Single(sent.Peers);
        Assert.Equal(Key(4321), only.PublicKey);
        Assert.Equal([Net(4321, 0), IPNetwork.Parse("172.16.0.0/24")], only.AllowedIps);
    }

    [Fact]
    public void Adds_updates_and_removes_only_what_differs()
    {
        using var oldKey = WireGuardSecretKey.GeneratePrivateKey();
        using var newKey = WireGuardSecretKey.GeneratePrivateKey();
        using var psk = WireGuardSecretKey.GeneratePresharedKey();
        var current = Config(5, oldKey);
        current.Peers[2].PresharedKey = psk;
        current.Peers[3].Endpoint = new IPEndPoint(IPAddress.Parse("198.51.100.9"), 4000);
        using var state = StateOf(current);

        var desired = Config(5, newKey);
        desired.Peers.RemoveAt(4);                                       // removed
        desired.Peers[0].PersistentKeepaliveInterval = 0;                // keepalive off
        desired.Peers[1].PresharedKey = psk;                             // psk added
        // peers[2]: psk absent in desired -> psk removed (zero key)
        desired.Peers[3].Endpoint = null;                                // null endpoint: leave the roamed one alone
        var added = new WireGuardInterfacePeer(Key(77));
        added.AllowedIps.Add(IPNetwork.Parse("fd00::/64"));
        desired.Peers.Add(added);

        var diff = WireGuardConfigDiff.Compute(state, desired);
        Assert.True(diff.DeviceChanged);
        Assert.Same(newKey, diff.Update.PrivateKey);
        Assert.Null(diff.Update.ListenPort);
        Assert.Equal([Key(77)], diff.Added);
        Assert.Equal([Key(0), Key(1), Key(2)], diff.Updated);
        Assert.Equal([Key(4)], diff.Removed);

        var byKey = diff.Update.Peers.ToDictionary(p => p.PublicKey);
        Assert.Equal((ushort)0, byKey[Key(0)].PersistentKeepaliveInterval);
        Assert.False(byKey[Key(0)].ReplaceAllowedIps);
        Assert.Same(psk, byKey[Key(1)].PresharedKey);
        Assert.True(byKey[Key(2)].PresharedKey!.IsZero);
        Assert.True(byKey[Key(4)].Remove);
        Assert.True(byKey[Key(77)].ReplaceAllowedIps);
        Assert.False(byKey[Key(77)].UpdateOnly);
        Assert.False(byKey.ContainsKey(Key(3)));
    }

    [Fact]
    public void Duplicate_desired_peer_is_rejected_with_its_index()
    {
        var config = Config(3);
        config.Peers.Add(new WireGuardInterfacePeer(Key(1)));
        using var state = new WireGuardDeviceState();
        var error = Assert.Throws<ArgumentException>(() => WireGuardConfigDiff.Compute(state, config));
        Assert.Contains("Peers[3].PublicKey", error.Message, StringComparison.Ordinal);
    }
}
