using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using CloudVpn.Testing;
using CloudVpn.Tunnels;

namespace CloudVpn.WireGuard.Tests.Rotation;

/// <summary>
/// Where packets were dropped during a rotation test: the kernel's counters of both TUN devices and both namespaces'
/// UDP and the gateway engine's drop counters (all fresh: the namespaces and devices are the test's own). A lost ping
/// then points at its cause instead of at "the loaded machine".
/// </summary>
internal static partial class LossReport
{
    public static string Collect(string gatewayNs, string gatewayDevice, string peerNs, string peerDevice, TunnelStatus status)
    {
        var report = new StringBuilder();
        report.Append(CultureInfo.InvariantCulture, $"gateway {Link(gatewayNs, gatewayDevice)} {Udp(gatewayNs)}; ");
        report.Append(CultureInfo.InvariantCulture, $"peer {Link(peerNs, peerDevice)} {Udp(peerNs)}; ");
        report.Append("gateway engine drops ");
        report.Append(string.Join(",", status.Drops.Concat(status.HandshakeFailures).Where(d => d.Value > 0).Select(d => $"{d.Key}={d.Value}")));
        return report.ToString();
    }

    /// <summary>Dropped packets of a link: TX dropped on a TUN device means the reader did not keep up (queue full).</summary>
    private static string Link(string ns, string device)
    {
        var output = NetnsPair.Exec(ns, $"ip -s link show dev {device}", check: false).Stdout;
        var numbers = StatsLine().Matches(output).Select(m => m.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        // ip -s prints RX then TX: bytes packets errors dropped ...
        return numbers.Count >= 2
            ? $"{device} rx_dropped={numbers[0][3]} tx_dropped={numbers[1][3]} tx_errors={numbers[1][2]}"
            : $"{device} (no stats)";
    }

    private static string Udp(string ns)
    {
        var output = NetnsPair.Exec(ns, "nstat -az UdpRcvbufErrors UdpSndbufErrors UdpInErrors", check: false).Stdout;
        return string.Join(" ", output.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(p => p.Length >= 2 && p[0].StartsWith("Udp", StringComparison.Ordinal)).Select(p => $"{p[0]}={p[1]}"));
    }

    [GeneratedRegex(@"(?m)^\s+\d+\s+\d+\s+\d+\s+\d+.*$")]
    private static partial Regex StatsLine();
}
