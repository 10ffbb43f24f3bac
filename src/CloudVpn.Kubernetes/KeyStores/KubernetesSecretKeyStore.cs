using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Threading.Channels;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.Kubernetes.KeyStores;

/// <summary>
/// A key store in Kubernetes Secrets: one Secret per key id (type <c>cloudvpn.io/key</c>) whose data keys
/// <c>v1</c>, <c>v2</c>, ... hold the newest <see cref="KubernetesSecretKeyStoreOptions.MaxVersions"/> versions.
/// Writes are compare-and-swap through the Secret's <c>resourceVersion</c>; watching uses the API's watch (restarted
/// when the server ends it, relisted on 410 Gone). Only Secrets carrying this store's labels are read or changed: a
/// Secret of the same name without them is reported, never touched. Needs the Role of <see cref="KubernetesSecretKeyStoreRbac"/>.
/// </summary>
public sealed partial class KubernetesSecretKeyStore : IKeyStore, IKeyHistoryPruning
{
    /// <summary>The Secret type of key Secrets.</summary>
    public const string SecretType = "cloudvpn.io/key";

    /// <summary>
    /// Label the Secrets this store creates carry: <c>app.kubernetes.io/managed-by=cloudvpn</c>. Ownership is decided
    /// by <see cref="StoreLabelName"/> and <see cref="KeyIdAnnotation"/>: a key Secret made up front by an installer
    /// (Helm sets its own managed-by) is this store's when it carries both.
    /// </summary>
    public const string ManagedByLabel = "app.kubernetes.io/managed-by";

    /// <summary>Label naming the store a Secret belongs to.</summary>
    public const string StoreLabelName = "cloudvpn.io/key-store";

    /// <summary>Annotation holding the exact key id.</summary>
    public const string KeyIdAnnotation = "cloudvpn.io/key-id";

    /// <summary>Annotation holding the latest version number.</summary>
    public const string LatestVersionAnnotation = "cloudvpn.io/latest-version";

    private const string CreatedAnnotationPrefix = "cloudvpn.io/created-v";
    private const int MaxWriteAttempts = 10;

    private readonly IKubernetes _client;
    private readonly KubernetesSecretKeyStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _storeLabel;

    /// <summary>Creates the store. <paramref name="storeName"/> is the store label unless the options set one.</summary>
    public KubernetesSecretKeyStore(IKubernetes client, KubernetesSecretKeyStoreOptions options, string storeName = "kubernetes", TimeProvider? timeProvider = null, ILogger<KubernetesSecretKeyStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        var errors = KubernetesSecretKeyStoreOptionsValidator.Collect($"KeyStores:{storeName}", options);
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, errors), nameof(options));
        }

        _client = client;
        _options = options;
        _storeLabel = options.StoreLabel ?? storeName;
        if (!SecretNames.IsLabelValue(_storeLabel))
        {
            throw new ArgumentException($"The store name '{_storeLabel}' is not a valid label value; set {nameof(options.StoreLabel)}.", nameof(storeName));
        }

        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The label selector matching this store's Secrets.</summary>
    public string LabelSelector => $"{StoreLabelName}={_storeLabel}";

    /// <summary>The Secret name that holds <paramref name="id"/>.</summary>
    public string SecretNameFor(string id) => SecretNames.ForKey(_options.NamePrefix, id);

    /// <inheritdoc />
    public async ValueTask<StoredSecret?> GetAsync(string id, long? version = null, CancellationToken cancellationToken = default)
    {
        var secret = await ReadOwnAsync(id, cancellationToken);
        if (secret is null)
        {
            return null;
        }

        var latest = LatestVersion(secret);
        var wanted = version ?? latest;
        if (secret.Data is null || !secret.Data.TryGetValue(DataKey(wanted), out var bytes))
        {
            return null;
        }

        var copy = bytes.ToArray();
        CryptographicOperations.ZeroMemory(bytes);
        return new StoredSecret(id, wanted, CreatedAt(secret, wanted), copy);
    }

    /// <inheritdoc />
    public async ValueTask<long> PutAsync(string id, ReadOnlyMemory<byte> value, long? expectedVersion = null, CancellationToken cancellationToken = default)
    {
        if (expectedVersion is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(expectedVersion), "The expected version is 0 (must not exist) or a positive version.");
        }

        var name = SecretNameFor(id);
        for (var attempt = 1; ; attempt++)
        {
            var existing = await ReadOwnAsync(id, cancellationToken);
            var latest = existing is null ? 0 : LatestVersion(existing);
            if (expectedVersion is { } expected && expected != latest)
            {
                throw new KeyStoreConflictException(id, expected, latest);
            }

            if (BetweenReadAndWrite is { } race && attempt == 1)
            {
                await race(cancellationToken);
            }

            var next = latest + 1;
            var now = _time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture);
            try
            {
                if (existing is null)
                {
                    var created = new V1Secret
                    {
                        Metadata = new V1ObjectMeta
                        {
                            Name = name,
                            NamespaceProperty = _options.Namespace,
                            Labels = new Dictionary<string, string>(StringComparer.Ordinal) { [ManagedByLabel] = "cloudvpn", [StoreLabelName] = _storeLabel },
                            Annotations = new Dictionary<string, string>(StringComparer.Ordinal)
                            {
                                [KeyIdAnnotation] = id,
                                [LatestVersionAnnotation] = "1",
                                [CreatedAnnotationPrefix + "1"] = now,
                            },
                        },
                        Type = SecretType,
                        Data = new Dictionary<string, byte[]>(StringComparer.Ordinal) { [DataKey(1)] = value.ToArray() },
                    };
                    try
                    {
                        await _client.CoreV1.CreateNamespacedSecretAsync(created, _options.Namespace, cancellationToken: cancellationToken);
                    }
                    finally
                    {
                        ZeroData(created);
                    }
                }
                else
                {
                    existing.Data ??= new Dictionary<string, byte[]>(StringComparer.Ordinal);
                    existing.Metadata.Annotations ??= new Dictionary<string, string>(StringComparer.Ordinal);
                    existing.Data[DataKey(next)] = value.ToArray();
                    existing.Metadata.Annotations[LatestVersionAnnotation] = next.ToString(CultureInfo.InvariantCulture);
                    existing.Metadata.Annotations[CreatedAnnotationPrefix + next.ToString(CultureInfo.InvariantCulture)] = now;
                    Prune(existing, next);
                    try
                    {
                        // The read's resourceVersion rides along: the API server refuses (409) if anyone wrote in between.
                        await _client.CoreV1.ReplaceNamespacedSecretAsync(existing, name, _options.Namespace, cancellationToken: cancellationToken);
                    }
                    finally
                    {
                        ZeroData(existing);
                    }
                }

                LogWritten(_logger, id, next, name);
                return next;
            }
            catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.Conflict && attempt < MaxWriteAttempts)
            {
                // Someone else wrote between our read and write (or created the Secret first): re-read; with an expected
                // version the next round turns into a conflict unless the other writer left the version unchanged.
                LogWriteRace(_logger, id, attempt);
            }
            catch (HttpOperationException ex)
            {
                throw ApiError(ex, $"Writing key '{id}' (Secret {_options.Namespace}/{name})");
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<SecretVersionInfo>> ListVersionsAsync(string id, CancellationToken cancellationToken = default)
    {
        var secret = await ReadOwnAsync(id, cancellationToken);
        if (secret is null)
        {
            return [];
        }

        var result = Versions(secret).Select(v => new SecretVersionInfo(id, v, CreatedAt(secret, v))).ToList();
        ZeroData(secret);
        return result;
    }

    /// <inheritdoc />
    public async ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken = default)
    {
        var secret = await ReadOwnAsync(id, cancellationToken);
        if (secret is null)
        {
            return false;
        }

        ZeroData(secret);
        try
        {
            await _client.CoreV1.DeleteNamespacedSecretAsync(
                secret.Metadata.Name,
                _options.Namespace,
                new V1DeleteOptions { Preconditions = new V1Preconditions { Uid = secret.Metadata.Uid } },
                cancellationToken: cancellationToken);
            LogDeleted(_logger, id, secret.Metadata.Name);
            return true;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (HttpOperationException ex)
        {
            throw ApiError(ex, $"Deleting key '{id}' (Secret {_options.Namespace}/{secret.Metadata.Name})");
        }
    }

    /// <inheritdoc />
    public async ValueTask<int> PruneAsync(string id, int keep, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        for (var attempt = 1; ; attempt++)
        {
            var secret = await ReadOwnAsync(id, cancellationToken);
            if (secret is null)
            {
                return 0;
            }

            var versions = Versions(secret);
            var excess = Math.Max(0, versions.Count - keep);
            if (excess == 0)
            {
                ZeroData(secret);
                return 0;
            }

            foreach (var v in versions.Take(excess))
            {
                CryptographicOperations.ZeroMemory(secret.Data![DataKey(v)]);
                secret.Data.Remove(DataKey(v));
                secret.Metadata.Annotations?.Remove(CreatedAnnotationPrefix + v.ToString(CultureInfo.InvariantCulture));
            }

            try
            {
                await _client.CoreV1.ReplaceNamespacedSecretAsync(secret, secret.Metadata.Name, _options.Namespace, cancellationToken: cancellationToken);
                return excess;
            }
            catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.Conflict && attempt < MaxWriteAttempts)
            {
                LogWriteRace(_logger, id, attempt);
            }
            catch (HttpOperationException ex)
            {
                throw ApiError(ex, $"Pruning key '{id}'");
            }
            finally
            {
                ZeroData(secret);
            }
        }
    }

    /// <inheritdoc />
    public IAsyncEnumerable<KeyStoreChange> WatchAsync(string? id = null, CancellationToken cancellationToken = default) =>
        WatchFromAsync(id, null, cancellationToken);

    /// <summary>
    /// The watch loop. <paramref name="startResourceVersion"/> (tests) replaces the first list's resourceVersion, to
    /// start from a version the server no longer has and exercise the 410 Gone path.
    /// </summary>
    internal async IAsyncEnumerable<KeyStoreChange> WatchFromAsync(string? id, string? startResourceVersion, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var fieldSelector = id is null ? null : $"metadata.name={SecretNameFor(id)}";
        var channel = Channel.CreateUnbounded<KeyStoreChange>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pump = Task.Run(() => PumpWatchAsync(fieldSelector, startResourceVersion, channel.Writer, stop.Token), CancellationToken.None);
        try
        {
            while (true)
            {
                KeyStoreChange change;
                try
                {
                    if (!await channel.Reader.WaitToReadAsync(cancellationToken))
                    {
                        break;
                    }

                    if (!channel.Reader.TryRead(out change!))
                    {
                        continue;
                    }
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                yield return change;
            }
        }
        finally
        {
            await stop.CancelAsync();
            await pump;
        }
    }

    /// <summary>Test seam: runs inside the first attempt of a write, after the read and before the write.</summary>
    internal Func<CancellationToken, Task>? BetweenReadAndWrite { get; set; }

    /// <summary>Number of watch requests started (for tests: proves the watch was restarted).</summary>
    internal int WatchRequests => _watchRequests;

    /// <summary>Number of relists after 410 Gone or a failure (for tests).</summary>
    internal int Relists => _relists;

    private int _watchRequests;
    private int _relists;

    private async Task PumpWatchAsync(string? fieldSelector, string? startResourceVersion, ChannelWriter<KeyStoreChange> output, CancellationToken cancellationToken)
    {
        var known = new Dictionary<string, long>(StringComparer.Ordinal);
        string? resourceVersion = null;
        var first = true;
        var failures = 0;
        long? watchStarted = null;
        var gone = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (resourceVersion is null)
                {
                    // (Re)list: the ground truth; report what changed since the last view.
                    var list = await _client.CoreV1.ListNamespacedSecretAsync(_options.Namespace, fieldSelector: fieldSelector, labelSelector: LabelSelector, cancellationToken: cancellationToken);
                    var current = new Dictionary<string, long>(StringComparer.Ordinal);
                    foreach (var s in list.Items)
                    {
                        if (KeyIdOf(s) is { } key)
                        {
                            current[key] = LatestVersion(s);
                        }

                        ZeroData(s);
                    }

                    if (!first)
                    {
                        Interlocked.Increment(ref _relists);
                        foreach (var (key, version) in current)
                        {
                            if (!known.TryGetValue(key, out var before) || before != version)
                            {
                                await output.WriteAsync(new KeyStoreChange(key, KeyStoreChangeKind.Written, version), cancellationToken);
                            }
                        }

                        foreach (var key in known.Keys.Where(k => !current.ContainsKey(k)).ToList())
                        {
                            await output.WriteAsync(new KeyStoreChange(key, KeyStoreChangeKind.Deleted, 0), cancellationToken);
                        }
                    }

                    known = current;
                    resourceVersion = first && startResourceVersion is not null ? startResourceVersion : list.Metadata.ResourceVersion;
                    first = false;
                }

                gone = false;
                watchStarted = _time.GetTimestamp();
                Interlocked.Increment(ref _watchRequests);
                var response = _client.CoreV1.ListNamespacedSecretWithHttpMessagesAsync(
                    _options.Namespace,
                    allowWatchBookmarks: true,
                    fieldSelector: fieldSelector,
                    labelSelector: LabelSelector,
                    resourceVersion: resourceVersion,
                    timeoutSeconds: (int)Math.Max(1, _options.WatchTimeout.TotalSeconds),
                    watch: true,
                    cancellationToken: cancellationToken);
                // The suggested replacement (ClientSets.SecretClient) needs the concrete Kubernetes class; the store takes
                // IKubernetes so that a host can hand it any implementation.
#pragma warning disable CS0618
                var events = response.WatchAsync<V1Secret, V1SecretList>(
                    ex =>
                    {
                        if (ex is KubernetesException { Status.Code: 410 })
                        {
                            gone = true;
                        }
                        else
                        {
                            LogWatchError(_logger, ex.Message);
                        }
                    },
                    cancellationToken);
#pragma warning restore CS0618
                await foreach (var (type, secret) in events)
                {
                    failures = 0;
                    if (secret?.Metadata?.ResourceVersion is { } rv)
                    {
                        resourceVersion = rv;
                    }

                    if (type == WatchEventType.Bookmark || secret is null)
                    {
                        continue;
                    }

                    var key = KeyIdOf(secret);
                    if (key is null)
                    {
                        continue;
                    }

                    if (type == WatchEventType.Deleted)
                    {
                        if (known.Remove(key))
                        {
                            await output.WriteAsync(new KeyStoreChange(key, KeyStoreChangeKind.Deleted, 0), cancellationToken);
                        }
                    }
                    else if (type is WatchEventType.Added or WatchEventType.Modified)
                    {
                        var latest = LatestVersion(secret);
                        if (!known.TryGetValue(key, out var before) || before != latest)
                        {
                            known[key] = latest;
                            await output.WriteAsync(new KeyStoreChange(key, KeyStoreChangeKind.Written, latest), cancellationToken);
                        }
                    }

                    ZeroData(secret);
                }

                if (gone)
                {
                    LogWatchGone(_logger, resourceVersion ?? "?");
                    resourceVersion = null; // relist
                }

                // Otherwise the server ended the watch (timeoutSeconds): start the next one from the last version seen.
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (!gone && resourceVersion is not null && watchStarted is { } started && _time.GetElapsedTime(started) >= TimeSpan.FromSeconds(1)
                                       && ex is HttpRequestException or IOException)
            {
                // A watch that ran and then lost its stream (the server ending it at timeoutSeconds shows up this way
                // too): resume from the last resourceVersion; if the server no longer has it, it answers 410 and we relist.
                LogWatchResumed(_logger, ex.Message);
                failures = 0;
                watchStarted = null;
            }
            catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or IOException or KubernetesException or OperationCanceledException)
            {
                watchStarted = null;
                failures++;
                var delay = Backoff(failures);
                LogWatchFailed(_logger, ex.Message, delay);
                resourceVersion = null;
                try
                {
                    await Task.Delay(delay, _time, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        output.TryComplete();
    }

    private TimeSpan Backoff(int failures)
    {
        var ceiling = Math.Min(_options.WatchMaxBackoff.TotalMilliseconds, 200 * Math.Pow(2, Math.Min(failures, 16)));
        return TimeSpan.FromMilliseconds(ceiling * (0.5 + (Random.Shared.NextDouble() / 2)));
    }

    private async Task<V1Secret?> ReadOwnAsync(string id, CancellationToken cancellationToken)
    {
        var name = SecretNameFor(id);
        V1Secret secret;
        try
        {
            secret = await _client.CoreV1.ReadNamespacedSecretAsync(name, _options.Namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (HttpOperationException ex)
        {
            throw ApiError(ex, $"Reading key '{id}' (Secret {_options.Namespace}/{name})");
        }

        var labels = secret.Metadata.Labels;
        if (labels is null
            || !labels.TryGetValue(StoreLabelName, out var store) || store != _storeLabel
            || KeyIdOf(secret) != id)
        {
            ZeroData(secret);
            throw new KeyStoreException(
                $"Secret {_options.Namespace}/{name} exists but does not belong to key '{id}' of store '{_storeLabel}' (label {StoreLabelName}={_storeLabel}, annotation {KeyIdAnnotation}={id}); it is left untouched. Rename it or choose another {nameof(_options.NamePrefix)}.");
        }

        return secret;
    }

    private static KeyStoreException ApiError(HttpOperationException ex, string what)
    {
        var status = (int)ex.Response.StatusCode;
        var message = ex.Response.Content is { Length: > 0 } body ? ExtractStatusMessage(body) : ex.Message;
        var hint = status == 403 ? " Bind the store's Role (KubernetesSecretKeyStoreRbac.Role) to the identity the process runs as." : string.Empty;
        return new KeyStoreException($"{what}: the API server answered {status}: {message}.{hint}", ex);
    }

    private static string ExtractStatusMessage(string body)
    {
        try
        {
            var status = KubernetesJson.Deserialize<V1Status>(body);
            return status?.Message ?? "no message";
        }
        catch (System.Text.Json.JsonException)
        {
            return "no message";
        }
    }

    private static string? KeyIdOf(V1Secret secret) =>
        secret.Metadata?.Annotations is { } a && a.TryGetValue(KeyIdAnnotation, out var id) ? id : null;

    private static string DataKey(long version) => "v" + version.ToString(CultureInfo.InvariantCulture);

    private static long LatestVersion(V1Secret secret)
    {
        if (secret.Metadata?.Annotations is { } a && a.TryGetValue(LatestVersionAnnotation, out var text)
            && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0)
        {
            return v;
        }

        return Versions(secret).DefaultIfEmpty(0).Max();
    }

    private static List<long> Versions(V1Secret secret)
    {
        var result = new List<long>();
        foreach (var key in secret.Data?.Keys ?? [])
        {
            if (key.Length > 1 && key[0] == 'v' && long.TryParse(key.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0)
            {
                result.Add(v);
            }
        }

        result.Sort();
        return result;
    }

    private static DateTimeOffset CreatedAt(V1Secret secret, long version) =>
        secret.Metadata?.Annotations is { } a
        && a.TryGetValue(CreatedAnnotationPrefix + version.ToString(CultureInfo.InvariantCulture), out var text)
        && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t
            : secret.Metadata?.CreationTimestamp is { } c ? new DateTimeOffset(DateTime.SpecifyKind(c, DateTimeKind.Utc)) : DateTimeOffset.MinValue;

    private void Prune(V1Secret secret, long newest)
    {
        foreach (var v in Versions(secret))
        {
            if (v <= newest - _options.MaxVersions)
            {
                CryptographicOperations.ZeroMemory(secret.Data![DataKey(v)]);
                secret.Data.Remove(DataKey(v));
                secret.Metadata.Annotations?.Remove(CreatedAnnotationPrefix + v.ToString(CultureInfo.InvariantCulture));
            }
        }
    }

    private static void ZeroData(V1Secret secret)
    {
        foreach (var bytes in secret.Data?.Values ?? [])
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Key {KeyId} version {Version} written to Secret {SecretName}")]
    private static partial void LogWritten(ILogger logger, string keyId, long version, string secretName);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Key {KeyId} deleted (Secret {SecretName})")]
    private static partial void LogDeleted(ILogger logger, string keyId, string secretName);

    [LoggerMessage(EventId = 402, Level = LogLevel.Debug, Message = "Key {KeyId}: another writer changed the Secret first (attempt {Attempt}); re-reading")]
    private static partial void LogWriteRace(ILogger logger, string keyId, int attempt);

    [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "Key watch: resourceVersion {ResourceVersion} is gone (410); relisting")]
    private static partial void LogWatchGone(ILogger logger, string resourceVersion);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Key watch failed: {Error}; relisting in {Delay}")]
    private static partial void LogWatchFailed(ILogger logger, string error, TimeSpan delay);

    [LoggerMessage(EventId = 406, Level = LogLevel.Debug, Message = "Key watch stream ended ({Reason}); resuming from the last resourceVersion")]
    private static partial void LogWatchResumed(ILogger logger, string reason);

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "Key watch error event: {Error}")]
    private static partial void LogWatchError(ILogger logger, string error);
}
