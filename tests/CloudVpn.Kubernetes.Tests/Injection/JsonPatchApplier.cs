using System.Text.Json.Nodes;

namespace CloudVpn.Kubernetes.Tests.Injection;

/// <summary>Applies RFC 6902 add/remove/replace operations (what the API server does with our patch), for the tests.</summary>
internal static class JsonPatchApplier
{
    public static JsonNode Apply(JsonNode document, JsonArray patch)
    {
        var root = document.DeepClone();
        foreach (var op in patch.Select(o => o!.AsObject()))
        {
            var path = (string)op["path"]!;
            var kind = (string)op["op"]!;
            if (path.Length == 0)
            {
                Assert.Equal("replace", kind);
                root = op["value"]!.DeepClone();
                continue;
            }

            var tokens = path[1..].Split('/').Select(t => t.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();
            var parent = root;
            foreach (var t in tokens[..^1])
            {
                parent = parent is JsonArray arr ? arr[int.Parse(t, System.Globalization.CultureInfo.InvariantCulture)]! : parent[t] ?? throw new InvalidOperationException($"path {path}: '{t}' does not exist");
            }

            var last = tokens[^1];
            var target = parent.AsObject();
            switch (kind)
            {
                case "add":
                    target[last] = op["value"]?.DeepClone();
                    break;
                case "replace":
                    Assert.True(target.ContainsKey(last), $"replace of missing member {path}");
                    target[last] = op["value"]?.DeepClone();
                    break;
                case "remove":
                    Assert.True(target.Remove(last), $"remove of missing member {path}");
                    break;
                default:
                    throw new InvalidOperationException($"unexpected op {kind}");
            }
        }

        return root;
    }
}
