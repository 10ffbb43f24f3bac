using System.Text;
using System.Text.Json.Nodes;
using CloudVpn.Kubernetes.Injection;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Injection;

public sealed class AdmissionReviewHandlerTests
{
    private static readonly Version Kube120 = new(1, 20);

    private static AdmissionReviewHandler Handler() =>
        new(new SidecarInjector(new SidecarInjectionOptions { Image = "registry.example/cloudvpn-sidecar:1.0" }), () => Kube120);

    /// <summary>An AdmissionReview request as the API server sends it (admission.k8s.io/v1, API reference shape).</summary>
    private static string Review(string podYaml, string uid = "705ab4f5-6393-11e8-b7cc-42010a800002", string kind = "Pod", string group = "")
    {
        var pod = JsonNode.Parse(KubernetesJson.Serialize(PodShapes.Load(podYaml)));
        return new JsonObject
        {
            ["apiVersion"] = "admission.k8s.io/v1",
            ["kind"] = "AdmissionReview",
            ["request"] = new JsonObject
            {
                ["uid"] = uid,
                ["kind"] = new JsonObject { ["group"] = group, ["version"] = "v1", ["kind"] = kind },
                ["resource"] = new JsonObject { ["group"] = group, ["version"] = "v1", ["resource"] = "pods" },
                ["requestKind"] = new JsonObject { ["group"] = group, ["version"] = "v1", ["kind"] = kind },
                ["requestResource"] = new JsonObject { ["group"] = group, ["version"] = "v1", ["resource"] = "pods" },
                ["name"] = "app",
                ["namespace"] = "team-a",
                ["operation"] = "CREATE",
                ["userInfo"] = new JsonObject { ["username"] = "admin", ["groups"] = new JsonArray("system:authenticated") },
                ["object"] = pod,
                ["oldObject"] = null,
                ["dryRun"] = false,
                ["options"] = new JsonObject { ["apiVersion"] = "meta.k8s.io/v1", ["kind"] = "CreateOptions" },
            },
        }.ToJsonString();
    }

    [Theory]
    [InlineData(PodShapes.Plain)]
    [InlineData(PodShapes.WithInitContainersVolumesAndSecurity)]
    public void Patch_applied_to_the_pod_gives_the_transforms_result(string yaml)
    {
        var answer = Handler().Handle(Review(yaml));

        Assert.Equal(200, answer.StatusCode);
        var response = JsonNode.Parse(answer.Body)!;
        Assert.Equal("admission.k8s.io/v1", (string?)response["apiVersion"]);
        Assert.Equal("AdmissionReview", (string?)response["kind"]);
        Assert.Equal("705ab4f5-6393-11e8-b7cc-42010a800002", (string?)response["response"]!["uid"]);
        Assert.True((bool)response["response"]!["allowed"]!);
        Assert.Equal("JSONPatch", (string?)response["response"]!["patchType"]);
        var patch = JsonNode.Parse(Encoding.UTF8.GetString(Convert.FromBase64String((string)response["response"]!["patch"]!)))!.AsArray();

        var original = JsonNode.Parse(KubernetesJson.Serialize(PodShapes.Load(yaml)))!;
        var patched = JsonPatchApplier.Apply(original, patch);
        var expectedPod = new SidecarInjector(new SidecarInjectionOptions { Image = "registry.example/cloudvpn-sidecar:1.0" }).Inject(PodShapes.Load(yaml), Kube120).Pod;
        var expected = JsonNode.Parse(KubernetesJson.Serialize(expectedPod));
        var actual = JsonNode.Parse(KubernetesJson.Serialize(KubernetesJson.Deserialize<V1Pod>(patched.ToJsonString())));
        Assert.True(JsonNode.DeepEquals(expected, actual), $"patched:\n{actual}\nexpected:\n{expected}");
        // the patch only touches what the transform changes
        Assert.All(patch, op => Assert.Matches("^/(metadata/annotations|spec/(containers|initContainers|volumes))", (string)op!["path"]!));
    }

    [Fact]
    public void Opted_out_pod_is_allowed_without_a_patch()
    {
        var answer = Handler().Handle(Review(PodShapes.OptedOut));
        var response = JsonNode.Parse(answer.Body)!["response"]!;
        Assert.True((bool)response["allowed"]!);
        Assert.Null(response["patch"]);
        Assert.Equal(InjectionDecision.NotOptedIn, answer.Result?.Decision);
    }

    [Fact]
    public void Opted_in_pod_without_a_gateway_is_refused_with_the_reason()
    {
        var answer = Handler().Handle(Review(PodShapes.MissingGateway));
        Assert.Equal(200, answer.StatusCode);
        var response = JsonNode.Parse(answer.Body)!["response"]!;
        Assert.False((bool)response["allowed"]!);
        Assert.Contains("cloudvpn.io/gateway", (string)response["status"]!["message"]!, StringComparison.Ordinal);
    }

    [Fact]
    public void Review_of_another_kind_is_refused_naming_the_kind()
    {
        var answer = Handler().Handle(Review(PodShapes.Plain, kind: "Deployment", group: "apps"));
        var response = JsonNode.Parse(answer.Body)!["response"]!;
        Assert.False((bool)response["allowed"]!);
        Assert.Contains("apps/Deployment", (string)response["status"]!["message"]!, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "not an AdmissionReview")]
    [InlineData("[1,2]", "not an AdmissionReview")]
    [InlineData("{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}", "admission.k8s.io/v1")]
    [InlineData("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "request: missing")]
    [InlineData("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"kind\":{\"kind\":\"Pod\"}}}", "request.uid")]
    [InlineData("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":5}}", "request.uid")]
    public void Malformed_reviews_get_a_400_with_the_reason(string body, string reason)
    {
        var answer = Handler().Handle(body);
        Assert.Equal(400, answer.StatusCode);
        Assert.Contains(reason, answer.Body, StringComparison.Ordinal);
    }

    [Fact]
    public void Review_without_an_object_or_with_a_broken_pod_is_refused_not_thrown()
    {
        var noObject = JsonNode.Parse(Review(PodShapes.Plain))!;
        noObject["request"]!.AsObject().Remove("object");
        var a = JsonNode.Parse(Handler().Handle(noObject.ToJsonString()).Body)!["response"]!;
        Assert.False((bool)a["allowed"]!);
        Assert.Contains("request.object", (string)a["status"]!["message"]!, StringComparison.Ordinal);

        var broken = JsonNode.Parse(Review(PodShapes.Plain))!;
        broken["request"]!["object"]!["spec"] = "not an object";
        var b = JsonNode.Parse(Handler().Handle(broken.ToJsonString()).Body)!["response"]!;
        Assert.False((bool)b["allowed"]!);
        Assert.Contains("request.object", (string)b["status"]!["message"]!, StringComparison.Ordinal);
    }
}
