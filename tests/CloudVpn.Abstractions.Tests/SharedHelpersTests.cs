using CloudVpn.Testing;

namespace CloudVpn.Abstractions.Tests;

public class SharedHelpersTests
{
    [Fact]
    public void Cmd_reports_failing_command_with_its_output()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Cmd.Sh("echo boom >&2; exit 3"));
        Assert.Contains("exited 3", ex.Message, StringComparison.Ordinal);
        Assert.Contains("boom", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void NetnsPair_joins_two_namespaces_and_removes_them()
    {
        string left;
        using (var pair = new NetnsPair())
        {
            left = pair.Left;
            var ping = NetnsPair.Exec(pair.Left, $"ping -c 1 -W 2 {pair.RightIp}");
            Assert.Contains("1 received", ping.Stdout, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(left, Cmd.Sh("ip netns list"), StringComparison.Ordinal);
    }
}
