using CloudVpn.KeyStores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.KeyRotation;

/// <summary>
/// Follows rotations made elsewhere — a Kubernetes CronJob running <see cref="KeyRotationLoop.RunOnceAsync"/>, another
/// replica — by watching the store: when a newer version of a rotated key appears, every local participant learns it
/// (publish) and switches to it; after <see cref="KeyRotationOptions.Overlap"/> the previous version is retired. A
/// failed step is retried with backoff; until it succeeds the previous version stays in force.
/// </summary>
public sealed partial class KeyRotationFollower
{
    private readonly Func<string?, IKeyStore> _storeFor;
    private readonly IReadOnlyList<IKeyRotationParticipant> _participants;
    private readonly KeyRotationOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<RotatedKey, long> _inForce = [];
    private readonly Lock _lock = new();

    /// <summary>Creates the follower over the stores <paramref name="storeFor"/> resolves by name (null: the default store).</summary>
    public KeyRotationFollower(
        Func<string?, IKeyStore> storeFor,
        IEnumerable<IKeyRotationParticipant> participants,
        KeyRotationOptions options,
        TimeProvider? timeProvider = null,
        ILogger<KeyRotationFollower>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(storeFor);
        ArgumentNullException.ThrowIfNull(participants);
        ArgumentNullException.ThrowIfNull(options);
        var errors = KeyRotationOptionsValidator.Collect(options);
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, errors), nameof(options));
        }

        _storeFor = storeFor;
        _participants = [.. participants];
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The version each key's participants use (after the first read of the store).</summary>
    public IReadOnlyDictionary<RotatedKey, long> VersionsInForce
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<RotatedKey, long>(_inForce);
            }
        }
    }

    /// <summary>Watches every rotated key until <paramref name="cancellationToken"/> fires.</summary>
    public Task RunAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(_options.Keys.Select(key => FollowAsync(key, cancellationToken)));

    private async Task FollowAsync(RotatedKey key, CancellationToken cancellationToken)
    {
        var store = _storeFor(key.Store);
        try
        {
            // Watch first, then read: a version written in between is seen by the watch and skipped if not newer.
            await using var changes = store.WatchAsync(key.KeyId, cancellationToken).GetAsyncEnumerator(cancellationToken);
            var moveNext = changes.MoveNextAsync();
            var versions = await store.ListVersionsAsync(key.KeyId, cancellationToken);
            SetInForce(key, versions.Count == 0 ? 0 : versions[^1].Version);
            while (await moveNext)
            {
                var change = changes.Current;
                var current = InForce(key);
                if (change.Kind == KeyStoreChangeKind.Written && change.Version > current)
                {
                    await RollOutAsync(new KeyRotationStep(key, current, change.Version), cancellationToken);
                }

                moveNext = changes.MoveNextAsync();
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async Task RollOutAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        await RetryAsync(step, "publish+switch", async () =>
        {
            foreach (var participant in _participants)
            {
                await participant.PublishAsync(step, cancellationToken);
            }

            foreach (var participant in _participants)
            {
                await participant.SwitchAsync(step, cancellationToken);
            }
        }, cancellationToken);
        SetInForce(step.Key, step.NewVersion);
        LogSwitched(_logger, step.Key.KeyId, step.PreviousVersion, step.NewVersion);

        await Task.Delay(_options.Overlap, _time, cancellationToken);
        await RetryAsync(step, "retire", async () =>
        {
            foreach (var participant in _participants)
            {
                await participant.RetireAsync(step, cancellationToken);
            }
        }, cancellationToken);
        LogRetired(_logger, step.Key.KeyId, step.PreviousVersion);
    }

    private async Task RetryAsync(KeyRotationStep step, string what, Func<Task> action, CancellationToken cancellationToken)
    {
        var delay = _options.RetryDelay;
        while (true)
        {
            try
            {
                await action();
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                LogFailed(_logger, ex, step.Key.KeyId, what, step.NewVersion, step.PreviousVersion, delay);
                await Task.Delay(delay, _time, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(_options.MaxRetryDelay.Ticks, delay.Ticks * 2));
            }
        }
    }

    private long InForce(RotatedKey key)
    {
        lock (_lock)
        {
            return _inForce.TryGetValue(key, out var v) ? v : 0;
        }
    }

    private void SetInForce(RotatedKey key, long version)
    {
        lock (_lock)
        {
            _inForce[key] = version;
        }
    }

    [LoggerMessage(EventId = 520, Level = LogLevel.Information, Message = "Key {KeyId} rotated elsewhere: switched from version {Previous} to {Version}")]
    private static partial void LogSwitched(ILogger logger, string keyId, long previous, long version);

    [LoggerMessage(EventId = 521, Level = LogLevel.Information, Message = "Key {KeyId}: version {Previous} retired after the overlap")]
    private static partial void LogRetired(ILogger logger, string keyId, long previous);

    [LoggerMessage(EventId = 522, Level = LogLevel.Warning, Message = "Key {KeyId}: {Step} of version {Version} failed; version {Previous} stays in force; retrying in {Delay}")]
    private static partial void LogFailed(ILogger logger, Exception exception, string keyId, string step, long version, long previous, TimeSpan delay);
}
