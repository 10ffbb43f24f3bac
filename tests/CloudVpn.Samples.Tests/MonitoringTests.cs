using System.Text.Json;
using System.Text.RegularExpressions;
using CloudVpn.Samples.Gateway;
using CloudVpn.Testing;

namespace CloudVpn.Samples.Tests;

/// <summary>The shipped dashboard and alert rules against the real promtool and prometheus, and against the exported metric set.</summary>
public sealed partial class MonitoringTests : IDisposable
{
    private static readonly string RulesFile = TestPaths.InRepo("deploy", "helm", "cloudvpn-gateway", "files", "cloudvpn-gateway-rules.yaml");
    private static readonly string DashboardFile = TestPaths.InRepo("deploy", "helm", "cloudvpn-gateway", "files", "cloudvpn-gateway-dashboard.json");
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    [Trait("Category", "Integration")]
    public void Alert_rules_pass_promtool_check()
    {
        Prerequisite.RequireCommand("promtool");
        var (code, stdout, stderr) = Cmd.Run("promtool", $"check rules {RulesFile}", check: false);
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("SUCCESS: 4 rules found", stdout + stderr, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void Alert_rule_unit_tests_pass_promtool_test()
    {
        Prerequisite.RequireCommand("promtool");
        var tests = Directory.GetFiles(TestPaths.InRepo("deploy", "monitoring"), "*.test.yaml");
        Assert.NotEmpty(tests);
        foreach (var test in tests)
        {
            var (code, stdout, stderr) = Cmd.Run("promtool", $"test rules {test}", check: false);
            Assert.True(code == 0, $"{test}: {stdout}{stderr}");
        }
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void Every_alert_has_a_firing_and_a_quiet_case_in_the_unit_tests()
    {
        var alerts = AlertName().Matches(File.ReadAllText(RulesFile)).Select(m => m.Groups[1].Value).ToList();
        var tests = string.Join("\n", Directory.GetFiles(TestPaths.InRepo("deploy", "monitoring"), "*.test.yaml").Select(File.ReadAllText));
        Assert.Equal(4, alerts.Count);
        foreach (var alert in alerts)
        {
            var cases = Regex.Matches(tests, $@"alertname: {alert}\s+exp_alerts:(\s*\[\])?").ToList();
            Assert.Contains(cases, c => c.Groups[1].Success);
            Assert.Contains(cases, c => !c.Groups[1].Success);
        }
    }

    [Fact]
    public void The_dashboard_and_the_rules_query_only_exported_metrics()
    {
        var (state, _) = MetricsTests.BusyGateway();
        MetricsTests.ParseExposition(MetricsExposition.Write(state.Snapshot(), ready: true), out var exported);

        using var dashboard = JsonDocument.Parse(File.ReadAllText(DashboardFile));
        var expressions = new List<string>();
        foreach (var panel in dashboard.RootElement.GetProperty("panels").EnumerateArray())
        {
            var targets = panel.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!).ToList();
            Assert.True(targets.Count > 0, $"panel '{panel.GetProperty("title")}' has no query");
            expressions.AddRange(targets);
        }

        foreach (var variable in dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.TryGetProperty("definition", out var definition))
            {
                expressions.Add(definition.GetString()!);
            }
        }

        var ruleExpressions = RuleExpr().Matches(File.ReadAllText(RulesFile)).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(4, ruleExpressions.Count);
        expressions.AddRange(ruleExpressions);
        Assert.True(expressions.Count > 20);
        foreach (var expr in expressions)
        {
            var names = MetricName().Matches(expr).Select(m => m.Value).ToList();
            Assert.True(names.Count > 0, $"no cloudvpn metric in: {expr}");
            foreach (var name in names)
            {
                Assert.True(exported.Contains(name), $"'{name}' in `{expr}` is not exported by the gateway");
            }
        }

        // every exported family appears somewhere, so the dashboard shows the whole documented set
        var used = expressions.SelectMany(e => MetricName().Matches(e).Select(m => m.Value)).ToHashSet();
        Assert.Empty(exported.Except(used).Except(["cloudvpn_tunnel_mtu_bytes", "cloudvpn_key_version", "cloudvpn_peer_connected"]));
    }

    [Fact]
    [Trait("Category", "Integration")]
    public async Task A_real_prometheus_scrapes_the_gateway_and_returns_its_series()
    {
        Prerequisite.RequireCommand("prometheus");
        var (gateway, _) = await InProcessGateway.StartAsync(Path.Combine(_dir.Path, "data"));
        await using (gateway)
        {
            await Eventually.HoldsAsync(() => gateway.Driver.Specs.Count == 1, "the tunnel to open");
            var promPort = TestPaths.FreeTcpPort();
            var config = Path.Combine(_dir.Path, "prometheus.yml");
            await File.WriteAllTextAsync(config, $"""
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: cloudvpn-gateway
                    static_configs:
                      - targets: ['127.0.0.1:{gateway.Port}']
                rule_files:
                  - {RulesFile}
                """);
            using var prometheus = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(
                Prerequisite.FindCommand("prometheus")!,
                $"--config.file={config} --storage.tsdb.path={Path.Combine(_dir.Path, "tsdb")} --web.listen-address=127.0.0.1:{promPort} --log.level=warn")
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            })!;
            var log = new System.Text.StringBuilder();
            prometheus.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            prometheus.BeginErrorReadLine();
            prometheus.BeginOutputReadLine();
            try
            {
                using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{promPort}"), Timeout = TimeSpan.FromSeconds(5) };
                JsonElement result = default;
                await Eventually.HoldsAsync(
                    async () =>
                    {
                        try
                        {
                            using var answer = JsonDocument.Parse(await http.GetStringAsync(new Uri("/api/v1/query?query=cloudvpn_configured_peers", UriKind.Relative)));
                            result = answer.RootElement.GetProperty("data").GetProperty("result").Clone();
                            return result.GetArrayLength() > 0;
                        }
                        catch (HttpRequestException)
                        {
                            return false;
                        }
                    },
                    "prometheus to hold cloudvpn_configured_peers",
                    timeoutMs: 60_000);

                var sample = result[0];
                Assert.Equal("cloudvpn-gateway", sample.GetProperty("metric").GetProperty("job").GetString());
                Assert.Equal($"127.0.0.1:{gateway.Port}", sample.GetProperty("metric").GetProperty("instance").GetString());
                Assert.Equal("1", sample.GetProperty("value")[1].GetString());

                using var info = JsonDocument.Parse(await http.GetStringAsync(new Uri("/api/v1/query?query=cloudvpn_gateway_info", UriKind.Relative)));
                var labels = info.RootElement.GetProperty("data").GetProperty("result")[0].GetProperty("metric");
                Assert.Equal("fake-wireguard", labels.GetProperty("driver").GetString());

                // the peer label carries the name from peers.json
                using var peers = JsonDocument.Parse(await http.GetStringAsync(new Uri("/api/v1/query?query=cloudvpn_peer_connected", UriKind.Relative)));
                Assert.Equal("client1", peers.RootElement.GetProperty("data").GetProperty("result")[0].GetProperty("metric").GetProperty("peer").GetString());

                // the shipped rules load into the real server
                using var rules = JsonDocument.Parse(await http.GetStringAsync(new Uri("/api/v1/rules", UriKind.Relative)));
                var loaded = rules.RootElement.GetProperty("data").GetProperty("groups")[0].GetProperty("rules").EnumerateArray().Select(r => r.GetProperty("name").GetString()).ToList();
                Assert.Contains("CloudVpnGatewayNotReady", loaded);
                Assert.Equal(4, loaded.Count);
            }
            finally
            {
                prometheus.Kill(entireProcessTree: true);
                await prometheus.WaitForExitAsync();
            }
        }
    }

    [GeneratedRegex(@"cloudvpn_[a-z_]+")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"- alert: (\w+)")]
    private static partial Regex AlertName();

    [GeneratedRegex(@"expr: \|?\s*\n?((?:.+\n)+?)\s+for:")]
    private static partial Regex RuleExpr();
}
