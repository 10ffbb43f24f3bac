using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.CustomResources;

/// <summary>
/// A Prometheus Operator ServiceMonitor (<c>monitoring.coreos.com/v1</c>): which Services Prometheus scrapes and how.
/// Only the fields the gateway's chart uses and a few close neighbours are modelled; an unknown field is a
/// deserialization error (the model is strict so that a misspelt field never passes silently).
/// </summary>
[KubernetesEntity(Group = KubeGroup, Kind = KubeKind, ApiVersion = KubeApiVersion, PluralName = KubePluralName)]
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ServiceMonitor : IKubernetesObject<V1ObjectMeta>
{
    /// <summary>API group.</summary>
    public const string KubeGroup = "monitoring.coreos.com";

    /// <summary>Version within the group.</summary>
    public const string KubeApiVersion = "v1";

    /// <summary>Kind.</summary>
    public const string KubeKind = "ServiceMonitor";

    /// <summary>Resource name in URLs.</summary>
    public const string KubePluralName = "servicemonitors";

    /// <summary><c>monitoring.coreos.com/v1</c>, as <c>apiVersion</c> and <c>.Capabilities.APIVersions</c> spell it.</summary>
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

    /// <summary>What to scrape.</summary>
    [JsonPropertyName("spec")]
    public required ServiceMonitorSpec Spec { get; set; }
}

/// <summary><c>spec</c> of a ServiceMonitor.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ServiceMonitorSpec
{
    /// <summary>Labels of the Services to scrape.</summary>
    [JsonPropertyName("selector")]
    public required V1LabelSelector Selector { get; set; }

    /// <summary>Namespaces the Services are looked up in; null: the ServiceMonitor's own.</summary>
    [JsonPropertyName("namespaceSelector")]
    public ServiceMonitorNamespaceSelector? NamespaceSelector { get; set; }

    /// <summary>Ports of the selected Services to scrape.</summary>
    [JsonPropertyName("endpoints")]
    public IList<ServiceMonitorEndpoint>? Endpoints { get; set; }

    /// <summary>Service label whose value becomes the <c>job</c> label.</summary>
    [JsonPropertyName("jobLabel")]
    public string? JobLabel { get; set; }
}

/// <summary>Namespaces a ServiceMonitor selects Services in.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ServiceMonitorNamespaceSelector
{
    /// <summary>Every namespace.</summary>
    [JsonPropertyName("any")]
    public bool? Any { get; set; }

    /// <summary>These namespaces.</summary>
    [JsonPropertyName("matchNames")]
    public IList<string>? MatchNames { get; set; }
}

/// <summary>One scraped port of a ServiceMonitor.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ServiceMonitorEndpoint
{
    /// <summary>Name of the Service port.</summary>
    [JsonPropertyName("port")]
    public string? Port { get; set; }

    /// <summary>HTTP path of the metrics (default /metrics).</summary>
    [JsonPropertyName("path")]
    public string? Path { get; set; }

    /// <summary>http or https.</summary>
    [JsonPropertyName("scheme")]
    public string? Scheme { get; set; }

    /// <summary>Scrape interval (Prometheus duration, for example 30s).</summary>
    [JsonPropertyName("interval")]
    public string? Interval { get; set; }

    /// <summary>Scrape timeout (Prometheus duration).</summary>
    [JsonPropertyName("scrapeTimeout")]
    public string? ScrapeTimeout { get; set; }
}
