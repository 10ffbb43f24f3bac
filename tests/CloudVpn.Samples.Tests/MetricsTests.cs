using System.Globalization;
using System.Text.RegularExpressions;
using CloudVpn.Samples.Gateway;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.Samples.Tests;

public sealed partial class MetricsTests
{
    private const string KeyA = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    private const string KeyB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";

    /// <summary>A gateway with every metric family populated: two peers (one with packet counts), failures, drops, a rotation.</summary>
    internal static (GatewayState State, FakeTimeProvider Time) BusyGateway()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
        var state = new GatewayState(new ConnectionEvents(NullLoggerFactory.Instance), TestOptions.Wrap(TestOptions.Valid("/tmp/unused")), time);
        state.KeyLoaded(new GatewayKeyInfo(KeyA, 1, time.GetUtcNow() - TimeSpan.FromHours(2), true));
        state.KeyRotated(new GatewayKeyInfo(KeyA, 2, time.GetUtcNow() - TimeSpan.FromMinutes(30), false));
        state.PeersConfigured([new PeerEntry("alice", KeyA, []), new PeerEntry("bob \"the\" peer", KeyB, [])]);
        state.TunnelOpened("fake-wireguard", "wireguard");
        state.Observe(new TunnelStatus("cv0", "fake-wireguard", true, 51820, null, 1420,
        [
            new PeerStatus(KeyA, "198.51.100.2:40000", time.GetUtcNow() - TimeSpan.FromSeconds(30), 1000, 2000) { ReceivedPackets = 10, TransmittedPackets = 20 },
            new PeerStatus(KeyB, null, null, 0, 0) { Name = "bob \"the\" peer" },
        ])
        {
            HandshakeFailures = new Dictionary<string, long> { ["invalid_mac"] = 3 },
            Drops = new Dictionary<string, long> { ["no_route"] = 7 },
        });
        time.Advance(TimeSpan.FromSeconds(2));
        return (state, time);
    }

    /// <summary>Parses the exposition: sample lines as (name, labels, value), checking the syntax of every line.</summary>
    internal static List<(string Name, string Labels, double Value)> ParseExposition(string text, out HashSet<string> families)
    {
        families = [];
        var samples = new List<(string, string, double)>();
        string? typed = null;
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0)
            {
                continue;
            }

            var type = TypeLine().Match(line);
            if (type.Success)
            {
                Assert.True(families.Add(type.Groups[1].Value), $"family declared twice: {line}");
                typed = type.Groups[1].Value;
                continue;
            }

            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                continue;
            }

            var sample = SampleLine().Match(line);
            Assert.True(sample.Success, $"not a valid sample line: {line}");
            Assert.Equal(typed, sample.Groups[1].Value);
            samples.Add((sample.Groups[1].Value, sample.Groups[2].Value, double.Parse(sample.Groups[3].Value, CultureInfo.InvariantCulture)));
        }

        return samples;
    }

    [Fact]
    public void The_exposition_is_valid_and_carries_the_documented_values()
    {
        var (state, _) = BusyGateway();
        var text = MetricsExposition.Write(state.Snapshot(), ready: true);

        var samples = ParseExposition(text, out var families);
        double Value(string name, string labels = "") => Assert.Single(samples, s => s.Name == name && s.Labels == labels).Value;

        Assert.Equal(1, Value("cloudvpn_gateway_ready"));
        Assert.Equal(2, Value("cloudvpn_configured_peers"));
        Assert.Equal(1, Value("cloudvpn_active_peers"));
        Assert.Equal(1, Value("cloudvpn_handshakes_total", "{result=\"success\"}"));
        Assert.Equal(3, Value("cloudvpn_handshakes_total", "{result=\"failure\"}"));
        Assert.Equal(3, Value("cloudvpn_handshake_failures_total", "{reason=\"invalid_mac\"}"));
        Assert.Equal(7, Value("cloudvpn_drops_total", "{reason=\"no_route\"}"));
        Assert.Equal(1000, Value("cloudvpn_peer_receive_bytes_total", "{peer=\"alice\"}"));
        Assert.Equal(2000, Value("cloudvpn_peer_transmit_bytes_total", "{peer=\"alice\"}"));
        Assert.Equal(10, Value("cloudvpn_peer_receive_packets_total", "{peer=\"alice\"}"));
        Assert.Equal(20, Value("cloudvpn_peer_transmit_packets_total", "{peer=\"alice\"}"));
        Assert.Equal(32, Value("cloudvpn_peer_last_handshake_age_seconds", "{peer=\"alice\"}"));
        Assert.Equal(0, Value("cloudvpn_peer_receive_bytes_total", "{peer=\"bob \\\"the\\\" peer\"}"));
        Assert.DoesNotContain(samples, s => s.Name == "cloudvpn_peer_last_handshake_age_seconds" && s.Labels.Contains("bob", StringComparison.Ordinal));
        Assert.Equal(2, Value("cloudvpn_key_version"));
        Assert.Equal(1802, Value("cloudvpn_key_age_seconds"));
        Assert.Equal(1, Value("cloudvpn_key_rotations_total"));
        Assert.Equal(1, Value("cloudvpn_connection_events_total", "{event=\"key_rotated\"}"));
        Assert.Equal(1, Value("cloudvpn_connection_events_total", "{event=\"peer_connected\"}"));
        Assert.Equal(1420, Value("cloudvpn_tunnel_mtu_bytes"));
        Assert.Equal(1, Value("cloudvpn_gateway_info", $"{{version=\"{MetricsExposition.Version}\",driver=\"fake-wireguard\",family=\"wireguard\",interface=\"cloudvpn0\"}}"));
        Assert.Equal(DocumentedMetrics().Order(), families.Order());
    }

    [Fact]
    public void Before_the_tunnel_opens_every_family_is_still_announced()
    {
        var state = new GatewayState(new ConnectionEvents(NullLoggerFactory.Instance), TestOptions.Wrap(TestOptions.Valid("/tmp/unused")), new FakeTimeProvider());
        var samples = ParseExposition(MetricsExposition.Write(state.Snapshot(), ready: false), out var families);
        Assert.Equal(DocumentedMetrics().Order(), families.Order());
        Assert.Equal(0, Assert.Single(samples, s => s.Name == "cloudvpn_gateway_ready").Value);
        Assert.DoesNotContain(samples, s => s.Name == "cloudvpn_gateway_info");
    }

    /// <summary>The metric names listed in docs/metrics.md's table.</summary>
    internal static IReadOnlyList<string> DocumentedMetrics() =>
        [.. DocRow().Matches(File.ReadAllText(TestPaths.InRepo("docs", "metrics.md"))).Select(m => m.Groups[1].Value).Distinct()];

    [GeneratedRegex(@"^# TYPE (cloudvpn_[a-z_]+) (counter|gauge)$")]
    private static partial Regex TypeLine();

    [GeneratedRegex("^([a-z_:][a-z0-9_:]*)((?:\\{(?:[a-z_][a-z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\[\"\\\\n])*\",?)*\\})?) (-?[0-9.e+]+|NaN|[+-]Inf)$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"^\| `(cloudvpn_[a-z_]+)` \|", RegexOptions.Multiline)]
    private static partial Regex DocRow();
}
