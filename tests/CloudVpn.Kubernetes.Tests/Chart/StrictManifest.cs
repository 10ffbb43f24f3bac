using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>One object of a rendered manifest, typed with its KubernetesClient model.</summary>
internal sealed record RenderedObject(string ApiVersion, string Kind, string Name, string? Namespace, object Typed, JsonNode Json)
{
    public string Key => $"{Kind}/{Name}";
}

/// <summary>
/// Loads a multi-document manifest strictly: every object goes into the KubernetesClient model of its kind, and every
/// field of the YAML must survive the round trip through the model (an unknown or misspelt field is an error naming
/// its path), with the same scalar value.
/// </summary>
internal static class StrictManifest
{
    public static readonly IReadOnlyDictionary<string, Type> Models = new Dictionary<string, Type>
    {
        ["Namespace"] = typeof(V1Namespace),
        ["ConfigMap"] = typeof(V1ConfigMap),
        ["Secret"] = typeof(V1Secret),
        ["ServiceAccount"] = typeof(V1ServiceAccount),
        ["Role"] = typeof(V1Role),
        ["RoleBinding"] = typeof(V1RoleBinding),
        ["Service"] = typeof(V1Service),
        ["Deployment"] = typeof(V1Deployment),
        // autoscaling/v2beta2, batch/v1beta1 and policy/v1beta1 have the fields of their successors (which add none the chart uses).
        ["HorizontalPodAutoscaler"] = typeof(V2HorizontalPodAutoscaler),
        ["PodDisruptionBudget"] = typeof(V1PodDisruptionBudget),
        ["CronJob"] = typeof(V1CronJob),
        ["NetworkPolicy"] = typeof(V1NetworkPolicy),
        ["MutatingWebhookConfiguration"] = typeof(V1MutatingWebhookConfiguration),
        ["CustomResourceDefinition"] = typeof(V1CustomResourceDefinition),
        // custom resources: the strict models of CloudVpn.Kubernetes (KubernetesClient has none)
        ["ServiceMonitor"] = typeof(CustomResources.ServiceMonitor),
        ["PrometheusRule"] = typeof(CustomResources.PrometheusRule),
        ["ExternalSecret"] = typeof(CustomResources.ExternalSecret),
        ["SecretStore"] = typeof(CustomResources.SecretStore),
    };

    /// <summary>Custom resources the chart may render where their API is served.</summary>
    public static readonly IReadOnlySet<string> CustomKinds = new HashSet<string> { "ServiceMonitor", "PrometheusRule", "ExternalSecret" };

    public static List<RenderedObject> Load(string manifest)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(manifest));
        var result = new List<RenderedObject>();
        foreach (var doc in stream.Documents)
        {
            if (doc.RootNode is not YamlMappingNode root || root.Children.Count == 0)
            {
                continue;
            }

            var source = ToJson(root)!;
            var kind = source["kind"]?.GetValue<string>() ?? throw new InvalidDataException("object without kind");
            var apiVersion = source["apiVersion"]?.GetValue<string>() ?? throw new InvalidDataException($"{kind} without apiVersion");
            var name = source["metadata"]?["name"]?.GetValue<string>() ?? throw new InvalidDataException($"{kind} without metadata.name");
            object typed;
            JsonNode roundTrip;
            if (Models.TryGetValue(kind, out var type))
            {
                try
                {
                    typed = Deserialize(source.ToJsonString(), type);
                }
                catch (System.Reflection.TargetInvocationException e) when (e.InnerException is JsonException inner)
                {
                    // the custom resource models refuse an unknown field (or a missing required one) themselves
                    throw new InvalidDataException($"{kind}/{name}: {inner.Message}", inner);
                }

                roundTrip = JsonNode.Parse(KubernetesJson.Serialize(typed))!;
                CompareStrict(source, roundTrip, $"{kind}/{name}");
            }
            else
            {
                throw new InvalidDataException($"{kind}/{name}: no model for kind {kind}");
            }

            result.Add(new RenderedObject(apiVersion, kind, name, source["metadata"]?["namespace"]?.GetValue<string>(), typed, roundTrip));
        }

        return result;
    }

    public static object Deserialize(string json, Type type)
    {
        var method = typeof(KubernetesJson).GetMethods().Single(m => m.Name == nameof(KubernetesJson.Deserialize) && m.IsGenericMethod && m.GetParameters()[0].ParameterType == typeof(string));
        var args = method.GetParameters().Length == 2 ? new object?[] { json, null } : [json];
        return method.MakeGenericMethod(type).Invoke(null, args) ?? throw new InvalidDataException("null object");
    }

    /// <summary>Every field of <paramref name="source"/> must be in <paramref name="model"/> with the same value.</summary>
    public static void CompareStrict(JsonNode? source, JsonNode? model, string path)
    {
        switch (source)
        {
            case JsonObject so:
                if (model is not JsonObject mo)
                {
                    throw new InvalidDataException($"{path}: the model has no object here (got {model?.ToJsonString() ?? "nothing"})");
                }

                foreach (var (key, value) in so)
                {
                    if (value is null)
                    {
                        continue;
                    }

                    if (!mo.TryGetPropertyValue(key, out var mv))
                    {
                        // An empty object or list the model drops is not a field the model lacks.
                        if (value is JsonObject { Count: 0 } || value is JsonArray { Count: 0 })
                        {
                            continue;
                        }

                        throw new InvalidDataException($"{path}.{key}: unknown field (not in the typed model, or not in what the server stored)");
                    }

                    CompareStrict(value, mv, $"{path}.{key}");
                }

                break;
            case JsonArray sa:
                if (model is not JsonArray ma || ma.Count != sa.Count)
                {
                    throw new InvalidDataException($"{path}: list does not survive the model");
                }

                for (var i = 0; i < sa.Count; i++)
                {
                    CompareStrict(sa[i], ma[i], $"{path}[{i}]");
                }

                break;
            case JsonValue sv:
                var a = Scalar(sv);
                var b = model is JsonValue mv2 ? Scalar(mv2) : model?.ToJsonString();
                if (!string.Equals(a, b, StringComparison.Ordinal))
                {
                    throw new InvalidDataException($"{path}: value '{a}' became '{b}' in the model (wrong type?)");
                }

                break;
        }
    }

    private static string Scalar(JsonValue v) => v.GetValueKind() switch
    {
        JsonValueKind.String => v.GetValue<string>(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Number => double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture),
        _ => v.ToJsonString(),
    };

    /// <summary>YAML node to JSON with YAML 1.1/1.2 core scalar typing (plain true/false/null/numbers; quoted: strings).</summary>
    public static JsonNode? ToJson(YamlNode node)
    {
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    obj[((YamlScalarNode)k).Value!] = ToJson(v);
                }

                return obj;
            case YamlSequenceNode seq:
                var arr = new JsonArray();
                foreach (var item in seq.Children)
                {
                    arr.Add(ToJson(item));
                }

                return arr;
            case YamlScalarNode scalar:
                var text = scalar.Value ?? "";
                if (scalar.Style is YamlDotNet.Core.ScalarStyle.Plain)
                {
                    if (text is "true" or "false")
                    {
                        return JsonValue.Create(text == "true");
                    }

                    if (text is "null" or "~" or "")
                    {
                        return null;
                    }

                    if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                    {
                        return JsonValue.Create(l);
                    }

                    if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && text.Contains('.', StringComparison.Ordinal))
                    {
                        return JsonValue.Create(d);
                    }
                }

                return JsonValue.Create(text);
            default:
                throw new InvalidDataException($"unsupported YAML node {node.NodeType}");
        }
    }
}
