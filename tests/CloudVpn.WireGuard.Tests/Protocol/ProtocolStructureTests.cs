using System.Net;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

public sealed class AllowedIpsTableTests
{
    private static byte[] Address(string text) => IPAddress.Parse(text).GetAddressBytes();

    [Fact]
    public void Longest_prefix_wins_for_ipv4_and_ipv6()
    {
        var table = new AllowedIpsTable<string>();
        table.Insert(IPNetwork.Parse("0.0.0.0/0"), "default");
        table.Insert(IPNetwork.Parse("10.0.0.0/8"), "ten");
        table.Insert(IPNetwork.Parse("10.1.0.0/16"), "ten-one");
        table.Insert(IPNetwork.Parse("10.1.2.3/32"), "host");
        table.Insert(IPNetwork.Parse("fd00::/8"), "ula");
        table.Insert(IPNetwork.Parse("fd00:1::/32"), "ula-1");

        Assert.Equal("host", table.Lookup(Address("10.1.2.3")));
        Assert.Equal("ten-one", table.Lookup(Address("10.1.2.4")));
        Assert.Equal("ten", table.Lookup(Address("10.2.0.1")));
        Assert.Equal("default", table.Lookup(Address("192.0.2.1")));
        Assert.Equal("ula-1", table.Lookup(Address("fd00:1::5")));
        Assert.Equal("ula", table.Lookup(Address("fd00:2::5")));
        Assert.Null(table.Lookup(Address("2001:db8::1")));
        Assert.Null(table.Lookup([1, 2, 3]));
    }

    [Fact]
    public void A_prefix_belongs_to_one_peer_and_moves_on_reassignment()
    {
        var table = new AllowedIpsTable<string>();
        table.Insert(IPNetwork.Parse("10.0.0.0/24"), "a");
        table.Insert(IPNetwork.Parse("10.0.1.0/24"), "a");
        table.Insert(IPNetwork.Parse("10.0.0.0/24"), "b");
        Assert.Equal("b", table.Lookup(Address("10.0.0.9")));
        Assert.Equal([IPNetwork.Parse("10.0.1.0/24")], table.PrefixesOf("a"));
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24")], table.PrefixesOf("b"));
    }

    [Fact]
    public void Removing_a_peer_removes_its_prefixes_only()
    {
        var table = new AllowedIpsTable<string>();
        table.Insert(IPNetwork.Parse("10.0.0.0/24"), "a");
        table.Insert(IPNetwork.Parse("10.0.0.0/16"), "b");
        table.Insert(IPNetwork.Parse("fd00::/64"), "a");
        table.RemovePeer("a");
        Assert.Equal("b", table.Lookup(Address("10.0.0.1")));
        Assert.Null(table.Lookup(Address("fd00::1")));
        Assert.Empty(table.PrefixesOf("a"));
    }

    [Fact]
    public void Host_bits_are_masked_off()
    {
        var table = new AllowedIpsTable<string>();
        table.Insert(new IPNetwork(IPAddress.Parse("10.0.0.0"), 24), "a");
        Assert.Equal("a", table.Lookup(Address("10.0.0.200")));
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24")], table.PrefixesOf("a"));
    }

    [Fact]
    public void Engine_appends_or_replaces_allowed_ips_with_wg_semantics()
    {
        using var pair = new EnginePair();
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, AllowedIps = [IPNetwork.Parse("10.5.0.0/16")] });
        Assert.Equal(3, Assert.Single(pair.A.GetPeers()).AllowedIps.Count);
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, ReplaceAllowedIps = true, AllowedIps = [IPNetwork.Parse("10.6.0.0/16")] });
        Assert.Equal([IPNetwork.Parse("10.6.0.0/16")], Assert.Single(pair.A.GetPeers()).AllowedIps);
        pair.A.HandleTunPacket(EnginePair.AToB());
        Assert.Equal(1, pair.A.Counters.Drops(WireGuardDropReason.NoRoute));
    }

    [Fact]
    public void Update_only_does_not_create_a_peer()
    {
        using var pair = new EnginePair();
        using var key = CloudVpn.WireGuard.Keys.WireGuardSecretKey.GeneratePrivateKey();
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = key.GetPublicKey(), UpdateOnly = true });
        Assert.Single(pair.A.GetPeers());
        pair.A.RemoveAllPeers();
        Assert.Empty(pair.A.GetPeers());
    }
}

public sealed class ReplayWindowTests
{
    [Fact]
    public void Accepts_each_counter_once_in_any_order_within_the_window()
    {
        var window = new ReplayWindow();
        Assert.True(window.TryAccept(0, ulong.MaxValue));
        Assert.True(window.TryAccept(5, ulong.MaxValue));
        Assert.True(window.TryAccept(3, ulong.MaxValue));
        Assert.False(window.TryAccept(3, ulong.MaxValue));
        Assert.False(window.TryAccept(5, ulong.MaxValue));
        Assert.False(window.MayAccept(5, ulong.MaxValue));
        Assert.True(window.MayAccept(4, ulong.MaxValue));
    }

    [Fact]
    public void Counters_further_back_than_the_window_are_refused()
    {
        var window = new ReplayWindow();
        Assert.True(window.TryAccept(10_000, ulong.MaxValue));
        Assert.True(window.TryAccept(10_000 - ReplayWindow.WindowSize, ulong.MaxValue));
        Assert.False(window.TryAccept(10_000 - ReplayWindow.WindowSize - 1, ulong.MaxValue));
        Assert.False(window.MayAccept(1, ulong.MaxValue));
    }

    [Fact]
    public void A_jump_forward_clears_the_bits_it_passes()
    {
        var window = new ReplayWindow();
        for (ulong i = 0; i < 200; i++)
        {
            Assert.True(window.TryAccept(i, ulong.MaxValue));
        }

        Assert.True(window.TryAccept(1_000_000, ulong.MaxValue));
        Assert.True(window.TryAccept(1_000_000 - 64, ulong.MaxValue)); // a slot reused from the ring, cleared
        Assert.False(window.TryAccept(199, ulong.MaxValue));
    }

    [Fact]
    public void Counters_at_or_past_the_limit_are_refused()
    {
        var window = new ReplayWindow();
        Assert.False(window.TryAccept(100, 100));
        Assert.True(window.TryAccept(99, 100));
    }

    [Fact]
    public void Tai64n_is_big_endian_and_whitened()
    {
        var a = new byte[12];
        var b = new byte[12];
        var t = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Tai64N.Write(a, t);
        Assert.Equal(0x400000000000000aUL + (ulong)t.ToUnixTimeSeconds(), System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(a));
        Tai64N.Write(b, t.AddMilliseconds(5)); // inside the same 2^24 ns step
        Assert.Equal(a, b);
        Tai64N.Write(b, t.AddMilliseconds(20));
        Assert.True(Tai64N.IsAfter(b, a));
        Assert.False(Tai64N.IsAfter(a, b));
    }
}

public sealed class EngineConfigurationTests
{
    [Fact]
    public void Peers_are_listed_in_the_order_they_were_added()
    {
        using var pair = new EnginePair();
        var keys = Enumerable.Range(0, 20).Select(_ =>
        {
            using var key = CloudVpn.WireGuard.Keys.WireGuardSecretKey.GeneratePrivateKey();
            return key.GetPublicKey();
        }).ToList();
        foreach (var key in keys)
        {
            pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = key });
        }

        Assert.Equal([pair.B.PublicKey, .. keys], pair.A.GetPeers().Select(p => p.PublicKey));
    }

    [Fact]
    public void A_peer_with_the_interfaces_own_key_is_ignored_and_removed_when_the_key_changes_to_it()
    {
        using var pair = new EnginePair();
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.A.PublicKey });
        Assert.Single(pair.A.GetPeers());

        // B's private key becomes A's: B's peer entry for A now names B itself and goes away
        pair.B.PrivateKey = pair.AKey;
        Assert.Empty(pair.B.GetPeers());
    }

    [Fact]
    public void Snapshot_reports_configuration_and_redacts_the_psk_in_text()
    {
        using var pair = new EnginePair(withPsk: true);
        pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = pair.B.PublicKey, PersistentKeepalive = 15 });
        var peer = Assert.Single(pair.A.GetPeers());
        Assert.Equal(pair.BEndpoint, peer.Endpoint);
        Assert.Equal((ushort)15, peer.PersistentKeepalive);
        Assert.Equal(pair.Psk, peer.PresharedKey);
        Assert.DoesNotContain(pair.Psk!.ToBase64(), peer.ToString(), StringComparison.Ordinal);
        Assert.Null(peer.LastHandshake);
        peer.PresharedKey!.Dispose();
    }

    [Fact]
    public void Bad_configuration_is_refused_with_the_field_named()
    {
        using var pair = new EnginePair();
        var error = Assert.Throws<ArgumentException>(() => pair.A.SetPeer(new WireGuardPeerConfig { PublicKey = default }));
        Assert.Contains("PublicKey", error.Message, StringComparison.Ordinal);
    }
}
