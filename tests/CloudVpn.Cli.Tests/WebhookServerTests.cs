using System.Text;
using System.Text.Json.Nodes;
using CloudVpn.Kubernetes.Injection;

namespace CloudVpn.Cli.Tests;

public sealed class WebhookServerTests
{
    private const string Review = """
        {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
          "uid":"0df28fbd-5f5f-11e8-bc74-36e6bb280816",
          "kind":{"group":"","version":"v1","kind":"Pod"},
          "resource":{"group":"","version":"v1","resource":"pods"},
          "namespace":"team-a","operation":"CREATE",
          "userInfo":{"username":"admin"},
          "object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","annotations":{"cloudvpn.io/inject":"true","cloudvpn.io/gateway":"gw"}},
                    "spec":{"containers":[{"name":"app","image":"nginx"}]}},
          "oldObject":null,"dryRun":false}}
        """;

    [Fact]
    public async Task Answers_an_admission_review_over_https_with_a_json_patch()
    {
        await using var webhook = await RunningWebhook.StartAsync(new Version(1, 20));
        using var http = webhook.TrustingClient();

        using var health = await http.GetAsync(new Uri($"https://127.0.0.1:{webhook.Port}/healthz"), TestContext.Current.CancellationToken);
        Assert.True(health.IsSuccessStatusCode);

        using var response = await http.PostAsync(webhook.MutateUri, new StringContent(Review, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))!["response"]!;
        Assert.Equal("0df28fbd-5f5f-11e8-bc74-36e6bb280816", (string?)body["uid"]);
        Assert.True((bool)body["allowed"]!);
        var patch = Encoding.UTF8.GetString(Convert.FromBase64String((string)body["patch"]!));
        Assert.Contains(SidecarInjector.ContainerName, patch, StringComparison.Ordinal);
        Assert.Contains("10.60.0.0/16", patch, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Garbage_gets_a_400_with_a_reason_and_the_server_keeps_serving()
    {
        await using var webhook = await RunningWebhook.StartAsync(new Version(1, 20));
        using var http = webhook.TrustingClient();

        using var bad = await http.PostAsync(webhook.MutateUri, new StringContent("{\"hello\":", Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("not an AdmissionReview", await bad.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);

        using var good = await http.PostAsync(webhook.MutateUri, new StringContent(Review, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, good.StatusCode);
    }

    [Fact]
    public async Task Webhook_command_without_tls_files_exits_2_naming_them()
    {
        var stderr = new StringWriter();
        var rc = await CliApp.RunAsync(["webhook", "--listen", "127.0.0.1:18443"], new StringReader(""), new StringWriter(), stderr, TestContext.Current.CancellationToken);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("--tls-cert and --tls-key", stderr.ToString(), StringComparison.Ordinal);
    }
}
