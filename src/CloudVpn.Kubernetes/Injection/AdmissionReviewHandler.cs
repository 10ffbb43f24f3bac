using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Injection;

/// <summary>The answer to an admission request: an HTTP status and a body.</summary>
/// <param name="StatusCode">200 for any well-formed review (allowed or refused inside); 400 when the body is not a review.</param>
/// <param name="Body">The AdmissionReview response (JSON), or a plain-text reason for a 400.</param>
/// <param name="Result">The injection result when a pod was examined.</param>
public sealed record AdmissionAnswer(int StatusCode, string Body, InjectionResult? Result);

/// <summary>
/// The mutating admission webhook's logic (admission.k8s.io/v1): takes an <c>AdmissionReview</c> for a Pod and answers
/// with a JSONPatch of <see cref="SidecarInjector"/>'s transform. Malformed or unexpected reviews get a clear refusal,
/// never an exception.
/// </summary>
public sealed class AdmissionReviewHandler(SidecarInjector injector, Func<Version?> serverVersion)
{
    private const string ApiVersion = "admission.k8s.io/v1";

    /// <summary>Handles one request body.</summary>
    public AdmissionAnswer Handle(string body)
    {
        JsonObject review;
        try
        {
            review = JsonNode.Parse(body) as JsonObject ?? throw new JsonException("the body is not a JSON object");
        }
        catch (JsonException e)
        {
            return new AdmissionAnswer(400, $"not an AdmissionReview: {e.Message}", null);
        }

        if (review["apiVersion"]?.GetValueKind() != JsonValueKind.String || (string?)review["apiVersion"] != ApiVersion ||
            review["kind"]?.GetValueKind() != JsonValueKind.String || (string?)review["kind"] != "AdmissionReview")
        {
            return new AdmissionAnswer(400, $"not an AdmissionReview: apiVersion must be {ApiVersion} and kind AdmissionReview", null);
        }

        if (review["request"] is not JsonObject request)
        {
            return new AdmissionAnswer(400, "AdmissionReview.request: missing", null);
        }

        if (request["uid"] is not JsonValue uidNode || uidNode.GetValueKind() != JsonValueKind.String || string.IsNullOrEmpty((string?)uidNode))
        {
            return new AdmissionAnswer(400, "AdmissionReview.request.uid: missing", null);
        }

        var uid = (string)uidNode!;
        var kind = request["kind"] as JsonObject;
        var group = kind?["group"]?.GetValueKind() == JsonValueKind.String ? (string?)kind["group"] : null;
        var kindName = kind?["kind"]?.GetValueKind() == JsonValueKind.String ? (string?)kind["kind"] : null;
        if (kindName != "Pod" || !string.IsNullOrEmpty(group))
        {
            return Refuse(uid, $"request.kind: this webhook mutates core/v1 Pods, not {group}/{kindName}", 400);
        }

        if (request["object"] is not JsonObject podNode)
        {
            return Refuse(uid, "request.object: missing (the pod to mutate)", 400);
        }

        V1Pod pod;
        try
        {
            pod = KubernetesJson.Deserialize<V1Pod>(podNode.ToJsonString());
        }
        catch (JsonException e)
        {
            return Refuse(uid, $"request.object: not a Pod: {e.Message}", 400);
        }

        (V1Pod Pod, InjectionResult Result) outcome;
        try
        {
            outcome = injector.Inject(pod, serverVersion());
        }
        catch (InjectionException e)
        {
            return Refuse(uid, e.Message, 422);
        }

        var response = new JsonObject { ["uid"] = uid, ["allowed"] = true };
        if (outcome.Result.Changed)
        {
            var before = JsonNode.Parse(KubernetesJson.Serialize(pod));
            var after = JsonNode.Parse(KubernetesJson.Serialize(outcome.Pod));
            var patch = JsonPatchBuilder.Diff(before, after);
            response["patchType"] = "JSONPatch";
            response["patch"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(patch.ToJsonString()));
        }

        return new AdmissionAnswer(200, Wrap(response), outcome.Result);
    }

    private static AdmissionAnswer Refuse(string uid, string message, int code) => new(200, Wrap(new JsonObject
    {
        ["uid"] = uid,
        ["allowed"] = false,
        ["status"] = new JsonObject { ["code"] = code, ["message"] = $"cloudvpn sidecar injection: {message}" },
    }), null);

    private static string Wrap(JsonObject response) =>
        new JsonObject { ["apiVersion"] = ApiVersion, ["kind"] = "AdmissionReview", ["response"] = response }.ToJsonString();
}
