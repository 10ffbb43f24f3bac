using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CloudVpn.Kubernetes.CustomResources;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace CloudVpn.Kubernetes.Manifests;

/// <summary>
/// The files of the chart's <c>files/</c> folder, embedded into this assembly at build time (one source of truth):
/// the Grafana dashboards (<c>*dashboard*.json</c>) and the Prometheus alert rules (<c>*rules*.yaml</c>), picked with
/// the chart's globs and in the chart's order (by name).
/// </summary>
public static class ChartFiles
{
    private const string Prefix = "CloudVpn.Kubernetes.ChartFiles/";

    private static readonly Lazy<IReadOnlyList<KeyValuePair<string, string>>> s_files = new(Load);

    /// <summary>Every Grafana dashboard of the chart: file name and content, verbatim.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Dashboards =>
        [.. s_files.Value.Where(f => f.Key.Contains("dashboard", StringComparison.Ordinal) && f.Key.EndsWith(".json", StringComparison.Ordinal))];

    /// <summary>Every rules file of the chart: file name and content.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> RuleFiles =>
        [.. s_files.Value.Where(f => f.Key.Contains("rules", StringComparison.Ordinal) && f.Key.EndsWith(".yaml", StringComparison.Ordinal))];

    /// <summary>The rule groups of every rules file, in file order (what the chart's PrometheusRule holds); new objects on every call.</summary>
    public static IReadOnlyList<PrometheusRuleGroup> RuleGroups => ParseRuleGroups(RuleFiles);

    /// <summary>
    /// Parses rules files (a Prometheus rules file with <c>groups</c>, or a PrometheusRule with <c>spec.groups</c>) into
    /// rule groups; an unknown field or a file that does not parse is an <see cref="InvalidDataException"/> naming the file.
    /// </summary>
    public static IReadOnlyList<PrometheusRuleGroup> ParseRuleGroups(IEnumerable<KeyValuePair<string, string>> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var groups = new List<PrometheusRuleGroup>();
        foreach (var (name, content) in files)
        {
            try
            {
                var stream = new YamlStream();
                stream.Load(new StringReader(content));
                if (stream.Documents.Count == 0 || ToJson(stream.Documents[0].RootNode) is not JsonObject root)
                {
                    throw new InvalidDataException($"{name}: not a YAML mapping");
                }

                var body = root["spec"] as JsonObject ?? root;
                if (body["groups"] is JsonArray list)
                {
                    groups.AddRange(list.Deserialize<List<PrometheusRuleGroup>>() ?? []);
                }
            }
            catch (Exception e) when (e is YamlException or JsonException or ArgumentException)
            {
                throw new InvalidDataException($"{name} does not parse as rule groups: {e.Message}", e);
            }
        }

        return groups;
    }

    private static List<KeyValuePair<string, string>> Load()
    {
        var assembly = typeof(ChartFiles).Assembly;
        var files = new List<KeyValuePair<string, string>>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith(Prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using var stream = assembly.GetManifestResourceStream(resource) ?? throw new InvalidOperationException($"resource {resource} missing");
            using var reader = new StreamReader(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true));
            files.Add(new(resource[Prefix.Length..], reader.ReadToEnd()));
        }

        return files;
    }

    // Scalars stay strings (every field of a rule is one); plain null, ~ and empty become null.
    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value ?? "", ToJson(c.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "null" or "~" } => null,
        YamlScalarNode scalar => JsonValue.Create(scalar.Value ?? ""),
        _ => throw new InvalidDataException($"unsupported YAML node {node.NodeType} at {node.Start}"),
    };
}
