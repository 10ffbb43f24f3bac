using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.CustomResources;

/// <summary>
/// A Prometheus Operator PrometheusRule (<c>monitoring.coreos.com/v1</c>): alerting and recording rule groups in the
/// format of a Prometheus rules file. Strict: an unknown field is a deserialization error.
/// </summary>
[KubernetesEntity(Group = KubeGroup, Kind = KubeKind, ApiVersion = KubeApiVersion, PluralName = KubePluralName)]
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class PrometheusRule : IKubernetesObject<V1ObjectMeta>
{
    /// <summary>API group.</summary>
    public const string KubeGroup = "monitoring.coreos.com";

    /// <summary>Version within the group.</summary>
    public const string KubeApiVersion = "v1";

    /// <summary>Kind.</summary>
    public const string KubeKind = "PrometheusRule";

    /// <summary>Resource name in URLs.</summary>
    public const string KubePluralName = "prometheusrules";

    /// <summary><c>monitoring.coreos.com/v1</c>.</summary>
    public const string GroupVersion = KubeGroup + "/" + KubeApiVersion;

    /// <inheritdoc />
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = GroupVersion;

    /// <inheritdoc />
    [JsonPropertyName("kind")]
    public string Kind { get; set; } = KubeKind;

    /// <inheritdoc />
    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    /// <summary>The rule groups.</summary>
    [JsonPropertyName("spec")]
    public required PrometheusRuleSpec Spec { get; set; }
}

/// <summary><c>spec</c> of a PrometheusRule (the body of a Prometheus rules file).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class PrometheusRuleSpec
{
    /// <summary>Rule groups.</summary>
    [JsonPropertyName("groups")]
    public IList<PrometheusRuleGroup>? Groups { get; set; }
}

/// <summary>A group of rules evaluated together.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class PrometheusRuleGroup
{
    /// <summary>Group name (unique in the file).</summary>
    [JsonPropertyName("name")]
    public required string Name { get; set; }

    /// <summary>Evaluation interval; null: Prometheus' global one.</summary>
    [JsonPropertyName("interval")]
    public string? Interval { get; set; }

    /// <summary>The rules.</summary>
    [JsonPropertyName("rules")]
    public IList<PrometheusRuleRule>? Rules { get; set; }
}

/// <summary>An alerting rule (<see cref="Alert"/>) or a recording rule (<see cref="Record"/>).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class PrometheusRuleRule
{
    /// <summary>Name of the alert.</summary>
    [JsonPropertyName("alert")]
    public string? Alert { get; set; }

    /// <summary>Name of the recorded series.</summary>
    [JsonPropertyName("record")]
    public string? Record { get; set; }

    /// <summary>PromQL expression.</summary>
    [JsonPropertyName("expr")]
    public required string Expr { get; set; }

    /// <summary>How long the expression must hold before the alert fires.</summary>
    [JsonPropertyName("for")]
    public string? For { get; set; }

    /// <summary>How long the alert keeps firing after the expression stopped holding.</summary>
    [JsonPropertyName("keep_firing_for")]
    public string? KeepFiringFor { get; set; }

    /// <summary>Labels added to the alert or series.</summary>
    [JsonPropertyName("labels")]
    public IDictionary<string, string>? Labels { get; set; }

    /// <summary>Annotations of the alert.</summary>
    [JsonPropertyName("annotations")]
    public IDictionary<string, string>? Annotations { get; set; }
}
