using CloudVpn.Testing;
using CloudVpn.WireGuard.Hosting;
using CloudVpn.WireGuard.Netlink;

namespace CloudVpn.WireGuard.Tests.Netlink;

public sealed class GatewaySysctlsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cv-sysctl-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string name, string value)
    {
        var path = Path.Combine(_root, name.Replace('.', '/'));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, value + "\n");
    }

    private string Read(string name) => File.ReadAllText(Path.Combine(_root, name.Replace('.', '/'))).Trim();

    [Fact]
    public void Every_setting_gets_a_result_applied_kept_or_reported()
    {
        Write("net.ipv4.ip_forward", "0");
        Write("net.ipv6.conf.all.forwarding", "1");
        Write("net.core.rmem_max", "16777216");   // larger than asked: kept, never lowered
        // net.core.wmem_max absent: reported as not available
        var results = new GatewaySysctls(_root).Apply(GatewaySysctls.GatewayDefaults(4 * 1024 * 1024));

        Assert.Equal(4, results.Count);
        Assert.Equal(SysctlOutcome.Applied, results[0].Outcome);
        Assert.Equal("0", results[0].Previous);
        Assert.Equal("1", Read("net.ipv4.ip_forward"));
        Assert.Equal(SysctlOutcome.AlreadySet, results[1].Outcome);
        Assert.Equal(SysctlOutcome.AlreadySet, results[2].Outcome);
        Assert.Equal("16777216", Read("net.core.rmem_max"));
        Assert.Equal(SysctlOutcome.NotAvailable, results[3].Outcome);
        Assert.False(results[3].IsSatisfied);
        Assert.Contains("wmem_max does not exist here", results[3].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Refused_write_is_reported_with_what_to_do()
    {
        // A directory where the value file should be: the write fails like a read-only /proc/sys entry.
        Write("net.core.rmem_max", "1000");
        var blocked = Path.Combine(_root, "net", "core", "wmem_max");
        Directory.CreateDirectory(blocked);
        File.WriteAllText(Path.Combine(blocked, "x"), "1");
        var results = new GatewaySysctls(_root).Apply([new("net.core.rmem_max", "2000", SysctlComparison.AtLeast, "test"), new("net.core.wmem_max", "2000", SysctlComparison.AtLeast, "test")]);
        Assert.Equal(SysctlOutcome.Applied, results[0].Outcome);
        Assert.Equal("2000", results[0].Current);
        Assert.False(results[1].IsSatisfied);
        Assert.Contains(results[1].Outcome, new[] { SysctlOutcome.NotPermitted, SysctlOutcome.NotAvailable });
        Assert.False(string.IsNullOrWhiteSpace(results[1].Detail));
    }

    [Fact]
    public void Bad_names_are_rejected()
    {
        var tuner = new GatewaySysctls(_root);
        Assert.Throws<ArgumentException>(() => tuner.Apply([new("net/../../etc/passwd", "1", SysctlComparison.Exact, "x")]));
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void Applies_forwarding_inside_a_fresh_network_namespace_and_reports_the_rest()
    {
        using var ns = new TestNamespace("cvs");
        var before = Cmd.Run("ip", $"netns exec {ns.Name} cat /proc/sys/net/ipv4/ip_forward").Stdout.Trim();
        Assert.Equal("0", before);
        var hostForward = File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim();

        var results = NetworkNamespace.Run(ns.Name, () => new GatewaySysctls().Apply(GatewaySysctls.GatewayDefaults()));

        Assert.Equal(4, results.Count);
        Assert.Equal(SysctlOutcome.Applied, results[0].Outcome);
        Assert.Equal("1", Cmd.Run("ip", $"netns exec {ns.Name} cat /proc/sys/net/ipv4/ip_forward").Stdout.Trim());
        Assert.Equal("1", Cmd.Run("ip", $"netns exec {ns.Name} cat /proc/sys/net/ipv6/conf/all/forwarding").Stdout.Trim());
        Assert.Equal(hostForward, File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim()); // the host's value is untouched
        foreach (var r in results.Skip(2))
        {
            // Buffer limits are global (init namespace only) on most kernels: satisfied, or reported, never missing.
            Assert.True(r.IsSatisfied || r.Outcome is SysctlOutcome.NotAvailable or SysctlOutcome.NotPermitted, $"{r.Name}: {r.Outcome} {r.Detail}");
            Assert.False(string.IsNullOrWhiteSpace(r.Detail));
        }
    }
}
