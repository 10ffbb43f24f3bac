using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>
/// A FAKE HashiCorp Vault for tests (no Vault server can be installed here): a real HTTP listener on loopback that
/// answers the part of Vault's documented HTTP API the store uses, as the docs show it: KV version 2 under
/// <c>/v1/secret/{data,metadata,destroy}/...</c> with <c>cas</c> semantics and <c>max_versions</c>, token
/// lookup/renewal with leases and max TTL, Kubernetes and AppRole login, the <c>X-Vault-Token</c> header, and error
/// bodies <c>{"errors":[...]}</c> with Vault's status codes (400, 403, 404, 5xx). It is not Vault: no policies language,
/// no storage, no seal; failures and delays are injected by the tests.
/// </summary>
public sealed class FakeVaultServer : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly TimeProvider _time;
    private readonly Task _loop;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, FakeToken> _tokens = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Jwt, TimeSpan Ttl)> _kubernetesRoles = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string SecretId, TimeSpan Ttl)> _appRoles = new(StringComparer.Ordinal);
    private readonly Dictionary<string, KvSecret> _kv = new(StringComparer.Ordinal);
    private readonly List<string> _deniedPrefixes = [];
    private int _tokenCounter;

    public FakeVaultServer(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort();
            _listener.Prefixes.Clear();
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                _listener.Start();
                Address = new Uri($"http://127.0.0.1:{port}/");
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
            }
        }

        _loop = Task.Run(AcceptLoopAsync);
    }

    public Uri Address { get; }

    /// <summary>Every request seen: method, path with query, the token and namespace headers (or null). Bodies are not kept.</summary>
    public ConcurrentQueue<(string Method, string Path, string? Token, string? Namespace)> Requests { get; } = new();

    /// <summary>Answers to give instead of handling the next requests (status, Vault error text).</summary>
    public ConcurrentQueue<(int Status, string Error)> InjectedFailures { get; } = new();

    /// <summary>Delays before answering the next requests (to provoke client timeouts).</summary>
    public ConcurrentQueue<TimeSpan> InjectedDelays { get; } = new();

    public int LoginCount { get; private set; }

    public int RenewCount { get; private set; }

    /// <summary>The mount's default <c>max_versions</c> (Vault's default is 10).</summary>
    public int DefaultMaxVersions { get; set; } = 10;

    public string IssueToken(TimeSpan ttl, bool renewable = true, TimeSpan? maxTtl = null)
    {
        lock (_lock)
        {
            var token = $"hvs.fake{Interlocked.Increment(ref _tokenCounter).ToString(CultureInfo.InvariantCulture)}{Guid.NewGuid():N}";
            var now = _time.GetUtcNow();
            _tokens[token] = new FakeToken(now, ttl, renewable, maxTtl is { } m ? now + m : null);
            return token;
        }
    }

    public void RevokeToken(string token)
    {
        lock (_lock)
        {
            _tokens.Remove(token);
        }
    }

    public void AddKubernetesRole(string role, string jwt, TimeSpan ttl)
    {
        lock (_lock)
        {
            _kubernetesRoles[role] = (jwt, ttl);
        }
    }

    public void AddAppRole(string roleId, string secretId, TimeSpan ttl)
    {
        lock (_lock)
        {
            _appRoles[roleId] = (secretId, ttl);
        }
    }

    /// <summary>Refuses (403) every request whose path starts with <paramref name="prefix"/>, as a policy without that capability would.</summary>
    public void Deny(string prefix)
    {
        lock (_lock)
        {
            _deniedPrefixes.Add(prefix);
        }
    }

    /// <summary>The raw data map of a KV secret's latest live version, as stored (for assertions).</summary>
    public JsonObject? PeekData(string path)
    {
        lock (_lock)
        {
            return _kv.TryGetValue(path, out var s) && s.Versions.LastOrDefault(v => v.Value.Data is not null) is { Value.Data: { } data }
                ? (JsonObject)data.DeepClone()
                : null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Close alone: the managed HttpListener's Stop already takes the prefixes off, and a Close after it takes them
        // off again, which looks the port up anew and binds it (failing with "Address already in use" when another
        // test has taken the port meanwhile)
        _listener.Close();
        try
        {
            // closing faults the pending accept; bounded all the same, so a listener that misses it cannot hang a test
            await _loop.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException or TimeoutException)
        {
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task AcceptLoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(context));
        }
    }

    private async Task ServeAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var token = request.Headers["X-Vault-Token"];
        var rawPath = request.Url!.AbsolutePath;
        Requests.Enqueue((request.HttpMethod, request.Url.PathAndQuery, token, request.Headers["X-Vault-Namespace"]));
        JsonObject? body = null;
        if (request.HasEntityBody)
        {
            using var reader = new StreamReader(request.InputStream, Encoding.UTF8);
            var text = await reader.ReadToEndAsync();
            body = text.Length == 0 ? null : JsonNode.Parse(text) as JsonObject;
        }

        (int Status, JsonNode? Body) answer;
        if (InjectedDelays.TryDequeue(out var delay))
        {
            await Task.Delay(delay);
        }

        if (InjectedFailures.TryDequeue(out var failure))
        {
            answer = Error(failure.Status, failure.Error);
        }
        else
        {
            try
            {
                lock (_lock)
                {
                    answer = Route(request.HttpMethod, rawPath, request.QueryString, token, body);
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
            {
                answer = Error(400, $"failed to parse JSON input: {ex.Message}");
            }
        }

        try
        {
            context.Response.StatusCode = answer.Status;
            if (answer.Body is not null)
            {
                var bytes = Encoding.UTF8.GetBytes(answer.Body.ToJsonString());
                context.Response.ContentType = "application/json";
                context.Response.ContentLength64 = bytes.Length;
                await context.Response.OutputStream.WriteAsync(bytes);
            }

            context.Response.Close();
        }
        catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or IOException)
        {
            // client gave up (timeout test)
        }
    }

    private static (int, JsonNode?) Error(int status, params string[] errors) =>
        (status, new JsonObject { ["errors"] = new JsonArray([.. errors.Select(e => (JsonNode)JsonValue.Create(e))]) });

    private (int, JsonNode?) Route(string method, string path, System.Collections.Specialized.NameValueCollection query, string? token, JsonObject? body)
    {
        switch (path)
        {
            case "/v1/auth/kubernetes/login" when method is "POST" or "PUT":
                return KubernetesLogin(body);
            case "/v1/auth/approle/login" when method is "POST" or "PUT":
                return AppRoleLogin(body);
            case "/v1/auth/token/lookup-self" when method == "GET":
                return LookupSelf(token);
            case "/v1/auth/token/renew-self" when method is "POST" or "PUT":
                return RenewSelf(token);
            default:
                break;
        }

        if (!path.StartsWith("/v1/secret/", StringComparison.Ordinal))
        {
            return Error(404, $"no handler for route \"{path.TrimStart('/')}\". route entry not found.");
        }

        if (!IsLive(token))
        {
            return Error(403, "permission denied");
        }

        if (_deniedPrefixes.Any(p => path.StartsWith(p, StringComparison.Ordinal)))
        {
            return Error(403, "1 error occurred:\n\t* permission denied\n\n");
        }

        var rest = path["/v1/secret/".Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var kind = slash < 0 ? rest : rest[..slash];
        var key = slash < 0 ? string.Empty : rest[(slash + 1)..];
        var list = method == "LIST" || (method == "GET" && query["list"] == "true");
        return (kind, method) switch
        {
            ("metadata", _) when list => ListKeys(key),
            ("data", "GET") => ReadData(key, query["version"]),
            ("data", "POST" or "PUT") => WriteData(key, body),
            ("data", "DELETE") => SoftDeleteLatest(key),
            ("metadata", "GET") => ReadMetadata(key),
            ("metadata", "POST" or "PUT") => WriteMetadata(key, body),
            ("metadata", "DELETE") => DeleteAll(key),
            ("destroy", "POST" or "PUT") => Destroy(key, body),
            _ => Error(405, "unsupported operation"),
        };
    }

    private bool IsLive(string? token) =>
        token is not null && _tokens.TryGetValue(token, out var t) && _time.GetUtcNow() < t.ExpiresAt;

    private (int, JsonNode?) KubernetesLogin(JsonObject? body)
    {
        var role = body?["role"]?.GetValue<string>();
        var jwt = body?["jwt"]?.GetValue<string>();
        if (string.IsNullOrEmpty(role))
        {
            return Error(400, "missing role");
        }

        if (!_kubernetesRoles.TryGetValue(role, out var r))
        {
            return Error(400, $"invalid role name \"{role}\"");
        }

        if (jwt != r.Jwt)
        {
            return Error(403, "permission denied");
        }

        return Login(r.Ttl);
    }

    private (int, JsonNode?) AppRoleLogin(JsonObject? body)
    {
        var roleId = body?["role_id"]?.GetValue<string>();
        var secretId = body?["secret_id"]?.GetValue<string>();
        if (roleId is null || !_appRoles.TryGetValue(roleId, out var r) || r.SecretId != secretId)
        {
            return Error(400, "invalid role or secret ID");
        }

        return Login(r.Ttl);
    }

    private (int, JsonNode?) Login(TimeSpan ttl)
    {
        LoginCount++;
        var now = _time.GetUtcNow();
        var token = $"hvs.fakelogin{Interlocked.Increment(ref _tokenCounter).ToString(CultureInfo.InvariantCulture)}";
        _tokens[token] = new FakeToken(now, ttl, true, now + (ttl * 3));
        return (200, new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["client_token"] = token,
                ["policies"] = new JsonArray("default", "cloudvpn"),
                ["lease_duration"] = (long)ttl.TotalSeconds,
                ["renewable"] = true,
            },
        });
    }

    private (int, JsonNode?) LookupSelf(string? token)
    {
        if (!IsLive(token))
        {
            return Error(403, "permission denied");
        }

        var t = _tokens[token!];
        var remaining = t.Ttl == TimeSpan.Zero ? 0 : (long)(t.ExpiresAt - _time.GetUtcNow()).TotalSeconds;
        return (200, new JsonObject
        {
            ["data"] = new JsonObject
            {
                ["ttl"] = remaining,
                ["renewable"] = t.Renewable,
                ["policies"] = new JsonArray("default"),
            },
        });
    }

    private (int, JsonNode?) RenewSelf(string? token)
    {
        if (!IsLive(token))
        {
            return Error(403, "permission denied");
        }

        var t = _tokens[token!];
        if (!t.Renewable)
        {
            return Error(400, "lease is not renewable");
        }

        RenewCount++;
        var now = _time.GetUtcNow();
        var lease = t.Ttl;
        if (t.MaxExpiry is { } max && now + lease > max)
        {
            lease = max - now; // capped by the token's max TTL, as Vault does
        }

        _tokens[token!] = t with { IssuedAt = now, CurrentLease = lease };
        return (200, new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["client_token"] = token,
                ["lease_duration"] = (long)lease.TotalSeconds,
                ["renewable"] = true,
            },
        });
    }

    private (int, JsonNode?) ReadData(string key, string? versionText)
    {
        if (!_kv.TryGetValue(key, out var secret) || secret.Versions.Count == 0)
        {
            return Error(404);
        }

        var version = versionText is null ? secret.CurrentVersion : int.Parse(versionText, CultureInfo.InvariantCulture);
        if (!secret.Versions.TryGetValue(version, out var v))
        {
            return Error(404);
        }

        var metadata = VersionMetadata(version, v);
        if (v.Data is null)
        {
            // deleted or destroyed: Vault answers 404 with the metadata and null data
            return (404, new JsonObject { ["data"] = new JsonObject { ["data"] = null, ["metadata"] = metadata } });
        }

        return (200, new JsonObject { ["data"] = new JsonObject { ["data"] = v.Data.DeepClone(), ["metadata"] = metadata } });
    }

    private (int, JsonNode?) WriteData(string key, JsonObject? body)
    {
        if (body?["data"] is not JsonObject data)
        {
            return Error(400, "no data provided");
        }

        _kv.TryGetValue(key, out var secret);
        var current = secret?.CurrentVersion ?? 0;
        var cas = body["options"]?["cas"]?.GetValue<int>();
        if (cas is null && secret?.CasRequired == true)
        {
            return Error(400, "check-and-set parameter required for this call");
        }

        if (cas is { } expected && expected != current)
        {
            return Error(400, "check-and-set parameter did not match the current version");
        }

        secret ??= _kv[key] = new KvSecret { MaxVersions = 0 };
        var version = current + 1;
        var now = _time.GetUtcNow();
        secret.Versions[version] = new KvVersion(now, (JsonObject)data.DeepClone(), null, false);
        secret.CurrentVersion = version;
        secret.UpdatedTime = now;
        if (secret.Versions.Count == 1)
        {
            secret.CreatedTime = now;
        }

        var max = secret.MaxVersions > 0 ? secret.MaxVersions : DefaultMaxVersions;
        while (secret.Versions.Count > max)
        {
            secret.Versions.Remove(secret.Versions.Keys.Min());
        }

        return (200, new JsonObject { ["data"] = VersionMetadata(version, secret.Versions[version]) });
    }

    private (int, JsonNode?) SoftDeleteLatest(string key)
    {
        if (_kv.TryGetValue(key, out var secret) && secret.Versions.TryGetValue(secret.CurrentVersion, out var v))
        {
            secret.Versions[secret.CurrentVersion] = v with { Data = null, DeletedAt = _time.GetUtcNow() };
        }

        return (204, null);
    }

    private (int, JsonNode?) ReadMetadata(string key)
    {
        if (!_kv.TryGetValue(key, out var secret))
        {
            return Error(404);
        }

        var versions = new JsonObject();
        foreach (var (n, v) in secret.Versions.OrderBy(p => p.Key))
        {
            versions[n.ToString(CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["created_time"] = VaultTime(v.CreatedAt),
                ["deletion_time"] = v.DeletedAt is { } d ? VaultTime(d) : string.Empty,
                ["destroyed"] = v.Destroyed,
            };
        }

        return (200, new JsonObject
        {
            ["data"] = new JsonObject
            {
                ["cas_required"] = secret.CasRequired,
                ["created_time"] = VaultTime(secret.CreatedTime),
                ["current_version"] = secret.CurrentVersion,
                ["max_versions"] = secret.MaxVersions,
                ["oldest_version"] = secret.Versions.Count == 0 ? 0 : secret.Versions.Keys.Min(),
                ["updated_time"] = VaultTime(secret.UpdatedTime),
                ["versions"] = versions,
            },
        });
    }

    private (int, JsonNode?) WriteMetadata(string key, JsonObject? body)
    {
        var secret = _kv.TryGetValue(key, out var s) ? s : _kv[key] = new KvSecret { CreatedTime = _time.GetUtcNow() };
        if (body?["max_versions"] is { } max)
        {
            secret.MaxVersions = max.GetValue<int>();
        }

        if (body?["cas_required"] is { } casRequired)
        {
            secret.CasRequired = casRequired.GetValue<bool>();
        }

        return (204, null);
    }

    private (int, JsonNode?) DeleteAll(string key)
    {
        _kv.Remove(key);
        return (204, null);
    }

    private (int, JsonNode?) Destroy(string key, JsonObject? body)
    {
        if (body?["versions"] is not JsonArray versions)
        {
            return Error(400, "no versions provided");
        }

        if (_kv.TryGetValue(key, out var secret))
        {
            foreach (var n in versions)
            {
                var number = n!.GetValue<int>();
                if (secret.Versions.TryGetValue(number, out var v))
                {
                    secret.Versions[number] = v with { Data = null, Destroyed = true };
                }
            }
        }

        return (204, null);
    }

    private (int, JsonNode?) ListKeys(string folder)
    {
        var prefix = folder.Length == 0 ? string.Empty : folder.TrimEnd('/') + "/";
        var keys = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var path in _kv.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)))
        {
            var rest = path[prefix.Length..];
            var slash = rest.IndexOf('/', StringComparison.Ordinal);
            keys.Add(slash < 0 ? rest : rest[..(slash + 1)]);
        }

        return keys.Count == 0
            ? Error(404)
            : (200, new JsonObject { ["data"] = new JsonObject { ["keys"] = new JsonArray([.. keys.Select(k => (JsonNode)JsonValue.Create(k))]) } });
    }

    private static JsonObject VersionMetadata(int version, KvVersion v) => new()
    {
        ["created_time"] = VaultTime(v.CreatedAt),
        ["custom_metadata"] = null,
        ["deletion_time"] = v.DeletedAt is { } d ? VaultTime(d) : string.Empty,
        ["destroyed"] = v.Destroyed,
        ["version"] = version,
    };

    // Vault prints nanoseconds: 2018-03-22T02:24:06.945319214Z
    private static string VaultTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff", CultureInfo.InvariantCulture) + "14Z";

    private sealed record FakeToken(DateTimeOffset IssuedAt, TimeSpan Ttl, bool Renewable, DateTimeOffset? MaxExpiry)
    {
        public TimeSpan CurrentLease { get; init; } = Ttl;

        public DateTimeOffset ExpiresAt => Ttl == TimeSpan.Zero ? DateTimeOffset.MaxValue : IssuedAt + CurrentLease;
    }

    private sealed record KvVersion(DateTimeOffset CreatedAt, JsonObject? Data, DateTimeOffset? DeletedAt, bool Destroyed);

    private sealed class KvSecret
    {
        public SortedDictionary<int, KvVersion> Versions { get; } = [];

        public int CurrentVersion { get; set; }

        public int MaxVersions { get; set; }

        public bool CasRequired { get; set; }

        public DateTimeOffset CreatedTime { get; set; }

        public DateTimeOffset UpdatedTime { get; set; }
    }
}
