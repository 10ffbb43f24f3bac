using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>
/// Strict models of the custom resources the chart renders (KubernetesClient has none): the fields of their CRDs
/// (monitoring.coreos.com/v1, external-secrets.io/v1beta1) the chart uses; any other field is an error.
/// </summary>
internal static class CustomResourceModels
{
    private static readonly JsonSerializerOptions Strict = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectRequiredConstructorParameters = true,
        RespectNullableAnnotations = true,
    };

    public static object Deserialize(string kind, JsonNode json) => kind switch
    {
        "ServiceMonitor" => json.Deserialize<Resource<ServiceMonitorSpec>>(Strict)!,
        "PrometheusRule" => json.Deserialize<Resource<PrometheusRuleSpec>>(Strict)!,
        "ExternalSecret" => json.Deserialize<Resource<ExternalSecretSpec>>(Strict)!,
        _ => throw new InvalidDataException($"no model for {kind}"),
    };

    internal sealed record Resource<TSpec>(string ApiVersion, string Kind, Meta Metadata, TSpec Spec);

    internal sealed record Meta(string Name, Dictionary<string, string>? Labels = null, Dictionary<string, string>? Annotations = null, string? Namespace = null);

    internal sealed record LabelSelector(Dictionary<string, string>? MatchLabels = null);

    internal sealed record ServiceMonitorSpec(LabelSelector Selector, List<Endpoint> Endpoints, NamespaceSelector? NamespaceSelector = null);

    internal sealed record NamespaceSelector(List<string>? MatchNames = null, bool? Any = null);

    internal sealed record Endpoint(string Port, string? Path = null, string? Interval = null, string? ScrapeTimeout = null);

    internal sealed record PrometheusRuleSpec(List<RuleGroup> Groups);

    internal sealed record RuleGroup(string Name, List<Rule> Rules, string? Interval = null);

    internal sealed record Rule(
        string Expr,
        string? Alert = null,
        string? Record = null,
        string? For = null,
        [property: JsonPropertyName("keep_firing_for")] string? KeepFiringFor = null,
        Dictionary<string, string>? Labels = null,
        Dictionary<string, string>? Annotations = null);

    internal sealed record ExternalSecretSpec(StoreRef SecretStoreRef, Target Target, List<DataFrom> DataFrom, string? RefreshInterval = null);

    internal sealed record StoreRef(string Name, string Kind);

    internal sealed record Target(string Name, string? CreationPolicy = null, TargetTemplate? Template = null);

    /// <summary>ESO's target template (type and metadata of the Secret it writes; no data: the fetched data as is).</summary>
    internal sealed record TargetTemplate(string? Type = null, TemplateMeta? Metadata = null);

    internal sealed record TemplateMeta(Dictionary<string, string>? Labels = null, Dictionary<string, string>? Annotations = null);

    internal sealed record DataFrom(Extract Extract);

    internal sealed record Extract(string Key, string? DecodingStrategy = null);
}
