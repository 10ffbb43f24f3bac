using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.Samples.Gateway;

/// <summary>One peer as written in peers.json.</summary>
/// <param name="Name">Short stable name (metric label, log field).</param>
/// <param name="PublicKey">The peer's public key, base64.</param>
/// <param name="AllowedIps">Tunnel addresses routed to the peer.</param>
internal sealed record PeerEntry(string Name, string PublicKey, IReadOnlyList<IPNetwork> AllowedIps)
{
    /// <summary>Known endpoint (host:port), for peers the gateway dials; null for clients.</summary>
    public string? Endpoint { get; init; }

    /// <summary>Keepalive from the gateway side, seconds; 0 off.</summary>
    public int PersistentKeepalive { get; init; }

    public PeerSpec ToSpec() => new(PublicKey, AllowedIps)
    {
        Name = Name,
        Endpoint = Endpoint,
        PersistentKeepalive = PersistentKeepalive > 0 ? TimeSpan.FromSeconds(PersistentKeepalive) : null,
    };
}

/// <summary>Thrown when peers.json does not parse; the message names the entry and the field.</summary>
internal sealed class PeersFileException(string message) : Exception(message);

/// <summary>Rules for peer names: they become metric labels, so they are short and plain.</summary>
internal static partial class PeerName
{
    public const string Rule = "is not a peer name: 1 to 32 characters of lowercase letters, digits, '-', '_' and '.', starting with a letter or digit";

    public static bool IsValid(string? name) => name is not null && Pattern().IsMatch(name);

    [GeneratedRegex("^[a-z0-9][a-z0-9_.-]{0,31}$")]
    private static partial Regex Pattern();
}

/// <summary>
/// peers.json in the data folder: <c>{"peers":[{"name":"...","publicKey":"...","allowedIps":["10.8.0.2/32"]}]}</c>.
/// Written atomically (temporary file, then rename) so a running gateway never reads half a file.
/// </summary>
internal static class PeersFile
{
    public static IReadOnlyList<PeerEntry> Load(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>A fingerprint of the file's bytes, to notice changes (null when absent).</summary>
    public static string? Fingerprint(string path)
    {
        try
        {
            return Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
    }

    public static IReadOnlyList<PeerEntry> Parse(string json, string source = "peers.json")
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new PeersFileException($"{source}: not valid JSON (line {e.LineNumber + 1}): {e.Message}");
        }

        if (root is not JsonObject obj || obj["peers"] is not JsonArray array)
        {
            throw new PeersFileException($"{source}: expected an object with a \"peers\" array");
        }

        var errors = new List<string>();
        var result = new List<PeerEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < array.Count; i++)
        {
            var where = $"{source}: peers[{i}]";
            if (array[i] is not JsonObject peer)
            {
                errors.Add($"{where}: expected an object");
                continue;
            }

            var name = ReadString(peer, "name");
            var key = ReadString(peer, "publicKey");
            if (!PeerName.IsValid(name))
            {
                errors.Add($"{where}.name: '{name}' {PeerName.Rule}");
            }
            else if (!names.Add(name!))
            {
                errors.Add($"{where}.name: '{name}' is used by another peer");
            }

            if (!WireGuardPublicKey.TryFromBase64(key, out _))
            {
                errors.Add($"{where}.publicKey: not a WireGuard public key (44 characters of base64)");
            }
            else if (!keys.Add(key!))
            {
                errors.Add($"{where}.publicKey: the same key is given for another peer");
            }

            var allowed = new List<IPNetwork>();
            if (peer["allowedIps"] is JsonArray ips)
            {
                foreach (var ip in ips)
                {
                    var text = ip is JsonValue v && v.TryGetValue<string>(out var s) ? s : ip?.ToJsonString();
                    if (text is not null && IPNetwork.TryParse(text, out var network))
                    {
                        allowed.Add(network);
                    }
                    else
                    {
                        errors.Add($"{where}.allowedIps: '{text}' is not a prefix such as 10.8.0.2/32");
                    }
                }
            }
            else
            {
                errors.Add($"{where}.allowedIps: missing; give the peer's tunnel address, for example [\"10.8.0.2/32\"]");
            }

            var endpoint = ReadString(peer, "endpoint");
            if (!string.IsNullOrEmpty(endpoint) && !GatewayOptionsValidator.TryParseHostPort(endpoint, out _, out _))
            {
                errors.Add($"{where}.endpoint: '{endpoint}' is not host:port");
            }

            var keepalive = 0;
            if (peer["persistentKeepalive"] is JsonNode ka && (!(ka is JsonValue kv && kv.TryGetValue(out keepalive)) || keepalive is < 0 or > 65535))
            {
                errors.Add($"{where}.persistentKeepalive: '{ka.ToJsonString()}' is not a number of seconds from 0 to 65535");
            }

            if (name is not null && key is not null)
            {
                result.Add(new PeerEntry(name, key, allowed) { Endpoint = string.IsNullOrEmpty(endpoint) ? null : endpoint, PersistentKeepalive = keepalive });
            }
        }

        return errors.Count == 0 ? result : throw new PeersFileException(string.Join(Environment.NewLine, errors));
    }

    public static string Serialize(IEnumerable<PeerEntry> peers)
    {
        var array = new JsonArray();
        foreach (var p in peers)
        {
            var node = new JsonObject
            {
                ["name"] = p.Name,
                ["publicKey"] = p.PublicKey,
                ["allowedIps"] = new JsonArray([.. p.AllowedIps.Select(a => (JsonNode)JsonValue.Create(a.ToString()))]),
            };
            if (p.Endpoint is not null)
            {
                node["endpoint"] = p.Endpoint;
            }

            if (p.PersistentKeepalive > 0)
            {
                node["persistentKeepalive"] = p.PersistentKeepalive;
            }

            array.Add(node);
        }

        return new JsonObject { ["peers"] = array }.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
    }

    public static void Save(string path, IEnumerable<PeerEntry> peers)
    {
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, Serialize(peers), new UTF8Encoding(false));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// The lowest host address of the gateway's network not taken by the gateway or any peer's allowed IPs.
    /// </summary>
    /// <exception cref="InvalidOperationException">The network is full.</exception>
    public static IPAddress NextFreeAddress(IPAddress gateway, int prefixLength, IEnumerable<PeerEntry> peers)
    {
        var mask = TunnelAddress.PrefixMask(prefixLength);
        var network = TunnelAddress.ToUInt32(gateway) & mask;
        var broadcast = network | ~mask;
        var taken = new List<(uint First, uint Last)> { (TunnelAddress.ToUInt32(gateway), TunnelAddress.ToUInt32(gateway)) };
        foreach (var allowed in peers.SelectMany(p => p.AllowedIps))
        {
            if (allowed.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            {
                continue;
            }

            var first = TunnelAddress.ToUInt32(allowed.BaseAddress) & TunnelAddress.PrefixMask(allowed.PrefixLength);
            taken.Add((first, first | ~TunnelAddress.PrefixMask(allowed.PrefixLength)));
        }

        for (var candidate = network + 1; candidate < broadcast; candidate++)
        {
            if (!taken.Any(t => candidate >= t.First && candidate <= t.Last))
            {
                return TunnelAddress.FromUInt32(candidate);
            }
        }

        throw new InvalidOperationException($"The tunnel network {TunnelAddress.Mask(gateway, prefixLength)}/{prefixLength} has no free address left; widen Gateway:Address's prefix or remove peers.");
    }

    private static string? ReadString(JsonObject obj, string field) =>
        obj[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
