using System.Net;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Netlink;

namespace CloudVpn.WireGuard.Tests.Netlink;

/// <summary>A network namespace of its own for one test, removed on dispose.</summary>
internal sealed class TestNamespace : IDisposable
{
    private static int s_counter;

    public TestNamespace(string prefix = "cvk")
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("ip");
        Name = $"{prefix}{Environment.ProcessId % 100000}x{Interlocked.Increment(ref s_counter)}";
        // One process for both steps: spawning is the slow part under emulation (the kernel VM).
        Cmd.Sh($"ip netns add {Name} && ip -n {Name} link set lo up");
    }

    public string Name { get; }

    public string Ip(string arguments) => Cmd.Run("ip", $"-n {Name} {arguments}").Stdout;

    public void Dispose() => Cmd.Run("ip", $"netns del {Name}", check: false);
}

[Trait("Category", "Integration")]
public sealed class RtNetlinkTests
{
    [Fact]
    public void Link_lifecycle_addresses_and_routes_match_ip_output()
    {
        using var ns = new TestNamespace();
        using var rt = RtNetlink.Open(ns.Name);

        Assert.Equal(-1, rt.GetLinkIndex("cvbr0"));
        var index = rt.CreateLink("cvbr0", "bridge");
        Assert.True(index > 0);
        Assert.Equal(index, rt.GetLinkIndex("cvbr0"));
        Assert.Contains($"{index}: cvbr0:", ns.Ip("-o link show cvbr0"), StringComparison.Ordinal);

        rt.SetLinkMtu(index, 1380);
        rt.SetLinkUp(index, true);
        Assert.Equal((1380, true), rt.GetLinkState(index));
        var show = ns.Ip("-o link show cvbr0");
        Assert.Contains("mtu 1380", show, StringComparison.Ordinal);
        Assert.Contains("UP", show, StringComparison.Ordinal);

        rt.AddAddress(index, IPAddress.Parse("10.44.0.1"), 24);
        rt.AddAddress(index, IPAddress.Parse("10.44.0.1"), 24); // EEXIST tolerated
        rt.AddAddress(index, IPAddress.Parse("fd00:44::1"), 64);
        var addresses = rt.GetAddresses(index);
        Assert.Contains((IPAddress.Parse("10.44.0.1"), 24), addresses);
        Assert.Contains((IPAddress.Parse("fd00:44::1"), 64), addresses);
        var ipAddr = ns.Ip("-o addr show dev cvbr0");
        Assert.Contains("inet 10.44.0.1/24", ipAddr, StringComparison.Ordinal);
        Assert.Contains("inet6 fd00:44::1/64", ipAddr, StringComparison.Ordinal);

        rt.ReplaceRoute(index, IPNetwork.Parse("10.45.0.0/16"));
        rt.ReplaceRoute(index, IPNetwork.Parse("10.45.0.0/16")); // replace: no EEXIST
        rt.ReplaceRoute(index, IPNetwork.Parse("fd00:45::/48"));
        Assert.Contains("10.45.0.0/16 dev cvbr0", ns.Ip("route show"), StringComparison.Ordinal);
        Assert.Contains("fd00:45::/48 dev cvbr0", ns.Ip("-6 route show"), StringComparison.Ordinal);
        var routes = rt.GetRoutes(index);
        Assert.Contains(IPNetwork.Parse("10.45.0.0/16"), routes);
        Assert.Contains(IPNetwork.Parse("fd00:45::/48"), routes);

        rt.DeleteRoute(index, IPNetwork.Parse("10.45.0.0/16"));
        Assert.False(rt.TryDeleteRoute(index, IPNetwork.Parse("10.45.0.0/16")));
        Assert.DoesNotContain("10.45.0.0/16", ns.Ip("route show"), StringComparison.Ordinal);

        rt.DeleteAddress(index, IPAddress.Parse("10.44.0.1"), 24);
        Assert.DoesNotContain((IPAddress.Parse("10.44.0.1"), 24), rt.GetAddresses(index));

        rt.SetLinkUp(index, false);
        Assert.Equal((1380, false), rt.GetLinkState(index));
        rt.DeleteLink(index);
        Assert.Equal(-1, rt.GetLinkIndex("cvbr0"));
        Assert.Null(rt.GetLinkState(index));
        Assert.DoesNotContain("cvbr0", ns.Ip("-o link show"), StringComparison.Ordinal);
    }

    [Fact]
    public void Kernel_refusals_become_clear_errors()
    {
        using var ns = new TestNamespace();
        using var rt = RtNetlink.Open(ns.Name);
        rt.CreateLink("cvdup", "bridge");
        var duplicate = Assert.Throws<NetlinkException>(() => rt.CreateLink("cvdup", "bridge"));
        Assert.Equal("EEXIST", duplicate.ErrorName);
        Assert.Contains("RTM_NEWLINK cvdup type bridge failed: EEXIST", duplicate.Message, StringComparison.Ordinal);

        var missing = Assert.Throws<NetlinkException>(() => rt.DeleteLink(999_999));
        Assert.Equal("ENODEV", missing.ErrorName);

        // A kind the kernel does not know (no such module): EOPNOTSUPP, with the kernel's own words when it sends them.
        var unknown = Assert.Throws<NetlinkException>(() => rt.CreateLink("cvx", "cloudvpn-nokind"));
        Assert.Equal(95, unknown.Errno);
        Assert.Contains("cloudvpn-nokind", unknown.Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => rt.CreateLink("a-name-longer-than-15", "bridge"));
    }

    [Fact]
    public void Sockets_opened_in_a_namespace_do_not_see_the_callers_links()
    {
        using var ns = new TestNamespace();
        using var inside = RtNetlink.Open(ns.Name);
        var index = inside.CreateLink("cvonly", "bridge");
        using var outside = RtNetlink.Open();
        Assert.Equal(-1, outside.GetLinkIndex("cvonly"));
        Assert.Equal(index, inside.GetLinkIndex("cvonly"));
    }
}
