using System.Text.Json.Nodes;

namespace CloudVpn.Kubernetes.Injection;

/// <summary>
/// Builds an RFC 6902 JSON Patch that turns one JSON document into another: objects are compared member by member,
/// arrays and scalars that differ are replaced whole (which keeps the patch valid whatever the array's shape).
/// </summary>
public static class JsonPatchBuilder
{
    /// <summary>The operations that turn <paramref name="from"/> into <paramref name="to"/>, as a JSON array.</summary>
    public static JsonArray Diff(JsonNode? from, JsonNode? to)
    {
        var ops = new JsonArray();
        Walk(from, to, "", ops);
        return ops;
    }

    private static void Walk(JsonNode? from, JsonNode? to, string path, JsonArray ops)
    {
        if (JsonNode.DeepEquals(from, to))
        {
            return;
        }

        if (from is JsonObject a && to is JsonObject b)
        {
            foreach (var (key, value) in a)
            {
                if (!b.ContainsKey(key))
                {
                    ops.Add(new JsonObject { ["op"] = "remove", ["path"] = $"{path}/{Escape(key)}" });
                }
                else
                {
                    Walk(value, b[key], $"{path}/{Escape(key)}", ops);
                }
            }

            foreach (var (key, value) in b)
            {
                if (!a.ContainsKey(key))
                {
                    ops.Add(new JsonObject { ["op"] = "add", ["path"] = $"{path}/{Escape(key)}", ["value"] = value?.DeepClone() });
                }
            }

            return;
        }

        ops.Add(new JsonObject { ["op"] = "replace", ["path"] = path, ["value"] = to?.DeepClone() });
    }

    /// <summary>Escapes a member name for a JSON Pointer (RFC 6901): <c>~</c> as <c>~0</c>, <c>/</c> as <c>~1</c>.</summary>
    public static string Escape(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
    }
}
