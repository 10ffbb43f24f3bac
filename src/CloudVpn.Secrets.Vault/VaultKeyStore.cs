using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.Secrets.Vault;

/// <summary>
/// A key store in HashiCorp Vault's KV version 2 engine, over Vault's HTTP API. Each key id is one KV secret at
/// <c>{mount}/data/{prefix}/{id}</c>; key versions are KV versions, compare-and-swap is KV's <c>cas</c>, watching
/// polls the key's metadata. KV version N holds <c>{"value": b64(key N), "vN": b64(key N), "vN-1": b64(key N-1)}</c>
/// (<see cref="VaultKeyStoreOptions.VersionProperties"/> versions as properties), so that External Secrets Operator's
/// <c>dataFrom.extract</c> of the newest version gives a Secret in the Kubernetes Secret key store's layout in one read.
/// Reading uses <c>value</c> only, so keys written before the version properties existed stay readable.
/// </summary>
public sealed partial class VaultKeyStore : IKeyStore, IKeyHistoryPruning
{
    /// <summary>The field of the KV secret's data that holds the key, base64-encoded.</summary>
    public const string ValueField = "value";

    private readonly VaultKeyStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly VaultApi _api;

    /// <summary>Creates the store over <paramref name="httpClient"/> (which it does not own).</summary>
    public VaultKeyStore(HttpClient httpClient, VaultKeyStoreOptions options, TimeProvider? timeProvider = null, ILogger<VaultKeyStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(options);
        var errors = VaultKeyStoreOptionsValidator.Collect("VaultKeyStore", options);
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, errors), nameof(options));
        }

        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _api = new VaultApi(httpClient, options, _time, _logger);
    }

    /// <summary>Test seam: runs in the first attempt of a write, after the read and before the write.</summary>
    internal Func<CancellationToken, Task>? BetweenReadAndWrite { get; set; }

    /// <summary>The token lease currently held (for diagnostics; never the token).</summary>
    internal VaultTokenLease TokenLease => _api.Tokens.Lease;

    /// <inheritdoc />
    public async ValueTask<StoredSecret?> GetAsync(string id, long? version = null, CancellationToken cancellationToken = default)
    {
        VaultPaths.ValidateId(id);
        if (version is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(version), "A version is 1 or more.");
        }

        var path = DataPath(id) + (version is { } v ? $"?version={v.ToString(CultureInfo.InvariantCulture)}" : string.Empty);
        using var answer = await _api.SendAsync(HttpMethod.Get, path, null, authenticated: true, cancellationToken);
        if (answer.Status == HttpStatusCode.NotFound)
        {
            return null;
        }

        if (!answer.IsSuccess)
        {
            throw answer.ToException($"Reading key '{id}'");
        }

        using var doc = JsonDocument.Parse(answer.Body.AsMemory());
        if (!doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
        {
            throw new KeyStoreException($"Reading key '{id}': Vault's answer has no 'data' object.");
        }

        if (!data.TryGetProperty("data", out var fields) || fields.ValueKind != JsonValueKind.Object)
        {
            return null; // deleted or destroyed version: metadata only
        }

        if (!fields.TryGetProperty(ValueField, out var valueElement) || valueElement.ValueKind != JsonValueKind.String)
        {
            throw new KeyStoreException($"Reading key '{id}': the secret at /{DataPath(id)} has no string field '{ValueField}'; it was not written by CloudVpn.");
        }

        if (!valueElement.TryGetBytesFromBase64(out var bytes))
        {
            throw new KeyStoreException($"Reading key '{id}': field '{ValueField}' is not valid base64.");
        }

        var (readVersion, createdAt) = ReadVersionMetadata(data, id);
        return new StoredSecret(id, readVersion, createdAt, bytes);
    }

    /// <inheritdoc />
    /// <remarks>
    /// With <see cref="VaultKeyStoreOptions.VersionProperties"/> above 0 (the default) the write first reads the
    /// newest version and carries the newest versions along as properties <c>v{N}</c>; the write then goes with
    /// <c>cas</c> = the version read, so the carried versions are exactly those before it (a concurrent writer makes
    /// the write re-read, or, with <paramref name="expectedVersion"/>, a conflict).
    /// </remarks>
    public async ValueTask<long> PutAsync(string id, ReadOnlyMemory<byte> value, long? expectedVersion = null, CancellationToken cancellationToken = default)
    {
        VaultPaths.ValidateId(id);
        if (expectedVersion is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(expectedVersion), "The expected version is 0 (must not exist) or a positive version.");
        }

        if (value.Length > 32 * 1024)
        {
            throw new ArgumentException("A key is at most 32 KiB.", nameof(value));
        }

        if (_options.VersionProperties == 0)
        {
            return await WriteVersionAsync(id, value, expectedVersion, expectedVersion, [], cancellationToken);
        }

        for (var attempt = 1; ; attempt++)
        {
            var carried = await ReadCarriedVersionsAsync(id, cancellationToken);
            try
            {
                if (expectedVersion is { } expected && expected != carried.Current)
                {
                    throw new KeyStoreConflictException(id, expected, carried.Current);
                }

                if (BetweenReadAndWrite is { } race && attempt == 1)
                {
                    await race(cancellationToken);
                }

                return await WriteVersionAsync(id, value, carried.Current, expectedVersion, carried.Versions, cancellationToken);
            }
            catch (KeyStoreConflictException ex) when (expectedVersion is null && attempt < MaxWriteAttempts)
            {
                // Another writer came between our read and write; read again so the carried versions stay exact.
                LogWriteRace(_logger, id, ex.ActualVersion);
            }
            finally
            {
                foreach (var (_, bytes) in carried.Versions)
                {
                    CryptographicOperations.ZeroMemory(bytes);
                }
            }
        }
    }

    /// <summary>The KV data property that holds version <paramref name="version"/> (<c>v{N}</c>, base64).</summary>
    public static string VersionProperty(long version) => "v" + version.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<SecretVersionInfo>> ListVersionsAsync(string id, CancellationToken cancellationToken = default)
    {
        VaultPaths.ValidateId(id);
        var metadata = await ReadMetadataAsync(id, cancellationToken);
        return metadata?.Live ?? [];
    }

    /// <inheritdoc />
    public async ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken = default)
    {
        VaultPaths.ValidateId(id);
        var metadata = await ReadMetadataAsync(id, cancellationToken);
        if (metadata is null)
        {
            return false;
        }

        using var answer = await _api.SendAsync(HttpMethod.Delete, MetadataPath(id), null, authenticated: true, cancellationToken);
        if (answer.Status == HttpStatusCode.NotFound)
        {
            return false;
        }

        if (!answer.IsSuccess)
        {
            throw answer.ToException($"Deleting key '{id}'");
        }

        LogDeleted(_logger, id);
        return metadata.CurrentVersion > 0;
    }

    /// <summary>
    /// Destroys (permanently, KV v2 <c>destroy</c>) the versions of <paramref name="id"/> older than the newest
    /// <paramref name="keep"/>; returns how many were destroyed.
    /// </summary>
    public async ValueTask<int> PruneAsync(string id, int keep, CancellationToken cancellationToken = default)
    {
        VaultPaths.ValidateId(id);
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        var live = await ListVersionsAsync(id, cancellationToken);
        var old = live.Take(Math.Max(0, live.Count - keep)).Select(v => v.Version).ToList();
        if (old.Count == 0)
        {
            return 0;
        }

        using var answer = await _api.SendAsync(
            HttpMethod.Post,
            VaultPaths.Kv(_options.MountPath, _options.PathPrefix, "destroy", id),
            w =>
            {
                w.WriteStartObject();
                w.WriteStartArray("versions");
                foreach (var v in old)
                {
                    w.WriteNumberValue(v);
                }

                w.WriteEndArray();
                w.WriteEndObject();
            },
            authenticated: true,
            cancellationToken);
        if (!answer.IsSuccess)
        {
            throw answer.ToException($"Destroying old versions of key '{id}'");
        }

        return old.Count;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<KeyStoreChange> WatchAsync(string? id = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (id is not null)
        {
            VaultPaths.ValidateId(id);
        }

        var known = await SnapshotOrNullAsync(id, cancellationToken) ?? [];
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.PollInterval, _time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                yield break;
            }

            var current = await SnapshotOrNullAsync(id, cancellationToken);
            if (current is null)
            {
                continue; // Vault unreachable or refusing: logged; keep the last view and poll again
            }

            foreach (var (key, version) in current)
            {
                if (!known.TryGetValue(key, out var before) || before != version)
                {
                    yield return new KeyStoreChange(key, KeyStoreChangeKind.Written, version);
                }
            }

            foreach (var key in known.Keys)
            {
                if (!current.ContainsKey(key))
                {
                    yield return new KeyStoreChange(key, KeyStoreChangeKind.Deleted, 0);
                }
            }

            known = current;
        }
    }

    /// <summary>
    /// Writes the next KV version of <paramref name="id"/>: <c>value</c> and <c>v{next}</c> are the new key, the
    /// <paramref name="carried"/> versions follow as <c>v{N}</c>. <paramref name="cas"/> null writes unconditionally.
    /// </summary>
    private async Task<long> WriteVersionAsync(string id, ReadOnlyMemory<byte> value, long? cas, long? expectedVersion, IReadOnlyList<(long Version, byte[] Bytes)> carried, CancellationToken cancellationToken)
    {
        var next = (cas ?? 0) + 1;
        using var answer = await _api.SendAsync(
            HttpMethod.Post,
            DataPath(id),
            w =>
            {
                w.WriteStartObject();
                if (cas is { } c)
                {
                    w.WriteStartObject("options");
                    w.WriteNumber("cas", c);
                    w.WriteEndObject();
                }

                w.WriteStartObject("data");
                w.WriteBase64String(ValueField, value.Span);
                if (_options.VersionProperties > 0)
                {
                    w.WriteBase64String(VersionProperty(next), value.Span);
                    foreach (var (version, bytes) in carried)
                    {
                        w.WriteBase64String(VersionProperty(version), bytes);
                    }
                }

                w.WriteEndObject();
                w.WriteEndObject();
            },
            authenticated: true,
            cancellationToken);

        if (answer.Status == HttpStatusCode.BadRequest && cas is not null && IsCasMismatch(answer.Errors))
        {
            var actual = await CurrentVersionAsync(id, cancellationToken);
            throw new KeyStoreConflictException(id, expectedVersion ?? cas.Value, actual);
        }

        if (!answer.IsSuccess)
        {
            throw answer.ToException($"Writing key '{id}'");
        }

        using var doc = JsonDocument.Parse(answer.Body.AsMemory());
        if (!doc.RootElement.TryGetProperty("data", out var data) || !data.TryGetProperty("version", out var versionElement) || !versionElement.TryGetInt64(out var written))
        {
            throw new KeyStoreException($"Writing key '{id}': Vault's answer has no 'data.version'.");
        }

        if (_options.VersionProperties > 0 && written != next)
        {
            // Only possible when Vault ignored cas; the v{N} property would then name the wrong version.
            throw new KeyStoreException($"Writing key '{id}': Vault stored version {written} where the write with cas {cas} makes {next}; the version properties of that version are wrong. Is this a KV version 2 mount?");
        }

        if (written == 1 && _options.MaxVersions > 0)
        {
            await SetMaxVersionsAsync(id, cancellationToken);
        }

        LogWritten(_logger, id, written);
        return written;
    }

    /// <summary>
    /// The newest version of <paramref name="id"/> (0 when there is none) and the live versions among the newest
    /// <c>VersionProperties - 1</c> up to it, with their bytes: from the newest version's <c>value</c> and <c>v{N}</c>
    /// properties, and for versions written before properties existed, from those versions themselves.
    /// </summary>
    private async Task<(long Current, List<(long Version, byte[] Bytes)> Versions)> ReadCarriedVersionsAsync(string id, CancellationToken cancellationToken)
    {
        var result = new List<(long Version, byte[] Bytes)>();
        var wanted = _options.VersionProperties - 1;
        long current;
        using (var answer = await _api.SendAsync(HttpMethod.Get, DataPath(id), null, authenticated: true, cancellationToken))
        {
            if (answer.Status == HttpStatusCode.NotFound)
            {
                // No key, or its newest version is deleted (Vault answers 404 for both): the metadata tells which.
                current = await CurrentVersionAsync(id, cancellationToken);
            }
            else if (!answer.IsSuccess)
            {
                throw answer.ToException($"Reading key '{id}' before writing the next version");
            }
            else
            {
                using var doc = JsonDocument.Parse(answer.Body.AsMemory());
                if (!doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
                {
                    throw new KeyStoreException($"Reading key '{id}': Vault's answer has no 'data' object.");
                }

                (current, _) = ReadVersionMetadata(data, id);
                if (data.TryGetProperty("data", out var fields) && fields.ValueKind == JsonValueKind.Object)
                {
                    for (var v = current; v > current - wanted && v >= 1; v--)
                    {
                        var name = v == current ? ValueField : VersionProperty(v);
                        if (fields.TryGetProperty(name, out var element) && element.ValueKind == JsonValueKind.String && element.TryGetBytesFromBase64(out var bytes))
                        {
                            result.Add((v, bytes));
                        }
                    }
                }
            }
        }

        // Versions the newest one does not carry (written before version properties, or a deleted newest version):
        // read them one by one; deleted and destroyed versions are left out.
        for (var v = current; v > current - wanted && v >= 1; v--)
        {
            if (result.Exists(r => r.Version == v))
            {
                continue;
            }

            using var older = await GetAsync(id, v, cancellationToken);
            if (older is not null)
            {
                result.Add((v, older.Value.ToArray()));
            }
        }

        result.Sort((a, b) => b.Version.CompareTo(a.Version));
        return (current, result);
    }

    internal static bool IsCasMismatch(IReadOnlyList<string> errors) =>
        errors.Any(e => e.Contains("check-and-set", StringComparison.OrdinalIgnoreCase));

    /// <summary>Parses Vault's RFC 3339 times, which carry up to nine fractional digits (.NET parses seven).</summary>
    internal static DateTimeOffset ParseVaultTime(string text)
    {
        var s = text;
        var dot = s.IndexOf('.', StringComparison.Ordinal);
        if (dot >= 0)
        {
            var end = dot + 1;
            while (end < s.Length && char.IsAsciiDigit(s[end]))
            {
                end++;
            }

            if (end - dot - 1 > 7)
            {
                s = string.Concat(s.AsSpan(0, dot + 8), s.AsSpan(end));
            }
        }

        return DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
    }

    private static (long Version, DateTimeOffset CreatedAt) ReadVersionMetadata(JsonElement data, string id)
    {
        if (!data.TryGetProperty("metadata", out var metadata) || metadata.ValueKind != JsonValueKind.Object
            || !metadata.TryGetProperty("version", out var v) || !v.TryGetInt64(out var version))
        {
            throw new KeyStoreException($"Reading key '{id}': Vault's answer has no 'data.metadata.version'.");
        }

        var created = metadata.TryGetProperty("created_time", out var c) && c.ValueKind == JsonValueKind.String
            ? ParseVaultTime(c.GetString()!)
            : DateTimeOffset.MinValue;
        return (version, created);
    }

    private string DataPath(string id) => VaultPaths.Kv(_options.MountPath, _options.PathPrefix, "data", id);

    private string MetadataPath(string? id) => VaultPaths.Kv(_options.MountPath, _options.PathPrefix, "metadata", id);

    private async Task<long> CurrentVersionAsync(string id, CancellationToken cancellationToken) =>
        (await ReadMetadataAsync(id, cancellationToken))?.CurrentVersion ?? 0;

    private async Task SetMaxVersionsAsync(string id, CancellationToken cancellationToken)
    {
        using var answer = await _api.SendAsync(
            HttpMethod.Post,
            MetadataPath(id),
            w =>
            {
                w.WriteStartObject();
                w.WriteNumber("max_versions", _options.MaxVersions);
                w.WriteEndObject();
            },
            authenticated: true,
            cancellationToken);
        if (!answer.IsSuccess)
        {
            // The key is written; only the version limit is missing. Policies often deny metadata writes.
            LogMaxVersionsRefused(_logger, id, (int)answer.Status, string.Join("; ", answer.Errors));
        }
    }

    private async Task<KeyMetadata?> ReadMetadataAsync(string id, CancellationToken cancellationToken)
    {
        using var answer = await _api.SendAsync(HttpMethod.Get, MetadataPath(id), null, authenticated: true, cancellationToken);
        if (answer.Status == HttpStatusCode.NotFound)
        {
            return null;
        }

        if (!answer.IsSuccess)
        {
            throw answer.ToException($"Reading the metadata of key '{id}'");
        }

        using var doc = JsonDocument.Parse(answer.Body.AsMemory());
        if (!doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
        {
            throw new KeyStoreException($"Reading the metadata of key '{id}': Vault's answer has no 'data' object.");
        }

        var current = data.TryGetProperty("current_version", out var cv) && cv.TryGetInt64(out var c) ? c : 0;
        var live = new List<SecretVersionInfo>();
        if (data.TryGetProperty("versions", out var versions) && versions.ValueKind == JsonValueKind.Object)
        {
            foreach (var entry in versions.EnumerateObject())
            {
                if (!long.TryParse(entry.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
                {
                    continue;
                }

                var destroyed = entry.Value.TryGetProperty("destroyed", out var d) && d.ValueKind == JsonValueKind.True;
                var deleted = entry.Value.TryGetProperty("deletion_time", out var dt) && dt.ValueKind == JsonValueKind.String && dt.GetString() is { Length: > 0 };
                if (destroyed || deleted)
                {
                    continue;
                }

                var created = entry.Value.TryGetProperty("created_time", out var ct) && ct.ValueKind == JsonValueKind.String
                    ? ParseVaultTime(ct.GetString()!)
                    : DateTimeOffset.MinValue;
                live.Add(new SecretVersionInfo(id, number, created));
            }
        }

        live.Sort((a, b) => a.Version.CompareTo(b.Version));
        return new KeyMetadata(current, live);
    }

    private async Task<Dictionary<string, long>?> SnapshotOrNullAsync(string? id, CancellationToken cancellationToken)
    {
        try
        {
            var result = new Dictionary<string, long>(StringComparer.Ordinal);
            var ids = id is null ? await ListIdsAsync(string.Empty, cancellationToken) : [id];
            foreach (var key in ids)
            {
                var metadata = await ReadMetadataAsync(key, cancellationToken);
                if (metadata is { CurrentVersion: > 0 } && metadata.Live.Count > 0)
                {
                    result[key] = metadata.CurrentVersion;
                }
            }

            return result;
        }
        catch (KeyStoreException ex)
        {
            LogPollFailed(_logger, id ?? "*", ex.Message);
            return null;
        }
    }

    private async Task<List<string>> ListIdsAsync(string folder, CancellationToken cancellationToken)
    {
        var path = MetadataPath(folder.Length == 0 ? null : folder.TrimEnd('/')) + "?list=true";
        using var answer = await _api.SendAsync(HttpMethod.Get, path, null, authenticated: true, cancellationToken);
        if (answer.Status == HttpStatusCode.NotFound)
        {
            return [];
        }

        if (!answer.IsSuccess)
        {
            throw answer.ToException("Listing keys");
        }

        var names = new List<string>();
        using (var doc = JsonDocument.Parse(answer.Body.AsMemory()))
        {
            if (doc.RootElement.TryGetProperty("data", out var data) && data.TryGetProperty("keys", out var keys) && keys.ValueKind == JsonValueKind.Array)
            {
                names.AddRange(keys.EnumerateArray().Where(k => k.ValueKind == JsonValueKind.String).Select(k => k.GetString()!));
            }
        }

        var result = new List<string>();
        foreach (var name in names)
        {
            if (name.EndsWith('/'))
            {
                result.AddRange(await ListIdsAsync(folder + name, cancellationToken));
            }
            else
            {
                result.Add(folder + name);
            }
        }

        return result;
    }

    private const int MaxWriteAttempts = 10;

    private sealed record KeyMetadata(long CurrentVersion, List<SecretVersionInfo> Live);

    [LoggerMessage(EventId = 320, Level = LogLevel.Information, Message = "Key {KeyId} version {Version} written to Vault")]
    private static partial void LogWritten(ILogger logger, string keyId, long version);

    [LoggerMessage(EventId = 321, Level = LogLevel.Information, Message = "Key {KeyId} deleted from Vault with all its versions")]
    private static partial void LogDeleted(ILogger logger, string keyId);

    [LoggerMessage(EventId = 322, Level = LogLevel.Warning, Message = "Vault refused to set max_versions on key {KeyId} ({Status}): {Errors}")]
    private static partial void LogMaxVersionsRefused(ILogger logger, string keyId, int status, string errors);

    [LoggerMessage(EventId = 324, Level = LogLevel.Debug, Message = "Key {KeyId}: another writer wrote version {Version} first; re-reading before the next attempt")]
    private static partial void LogWriteRace(ILogger logger, string keyId, long version);

    [LoggerMessage(EventId = 323, Level = LogLevel.Warning, Message = "Polling Vault for changes of {KeyId} failed: {Error}")]
    private static partial void LogPollFailed(ILogger logger, string keyId, string error);
}
