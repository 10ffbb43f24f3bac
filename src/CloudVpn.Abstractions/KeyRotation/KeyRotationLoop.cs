using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using CloudVpn.KeyStores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.KeyRotation;

/// <summary>Where a key is in its rotation.</summary>
public enum KeyRotationPhase
{
    /// <summary>One version in force; waiting until it is due.</summary>
    Idle,

    /// <summary>The new version is in the store; participants have not all learnt it yet.</summary>
    Written,

    /// <summary>Every participant knows the new version; not all have switched to it yet.</summary>
    Published,

    /// <summary>Every participant uses the new version; the previous one is still accepted until the overlap ends.</summary>
    Switched,
}

/// <summary>A snapshot of one key's rotation (no key material).</summary>
/// <param name="Phase">The phase.</param>
/// <param name="VersionInForce">The version participants use (the previous one until the switch).</param>
/// <param name="PendingVersion">The version being rolled out, or 0.</param>
/// <param name="InForceSince">When the version in force was created (drives the schedule and the age metric).</param>
/// <param name="ConsecutiveFailures">Failed attempts of the current step.</param>
/// <param name="NextAttemptAt">When the next attempt is allowed.</param>
public sealed record KeyRotationState(
    KeyRotationPhase Phase,
    long VersionInForce,
    long PendingVersion,
    DateTimeOffset InForceSince,
    int ConsecutiveFailures,
    DateTimeOffset NextAttemptAt)
{
    internal DateTimeOffset SwitchedAt { get; init; }

    internal long RetiringVersion { get; init; }
}

/// <summary>
/// The key rotation loop over the key store contract: for each key, when its version in force is older than
/// <see cref="KeyRotationOptions.Interval"/>, it writes the next version with compare-and-swap, lets every
/// <see cref="IKeyRotationParticipant"/> learn it (publish), switches all of them to it, and after
/// <see cref="KeyRotationOptions.Overlap"/> retires the previous one and prunes the history. A failure at any step
/// leaves the previous version in force and the step is retried with exponential backoff. Each rotation is logged and
/// counted (<c>cloudvpn_key_rotations_total</c>); key age is exported as <c>cloudvpn_key_age_seconds</c>.
/// </summary>
public sealed partial class KeyRotationLoop : IDisposable
{
    /// <summary>The meter name of the rotation metrics.</summary>
    public const string MeterName = "CloudVpn.KeyRotation";

    private readonly Func<string?, IKeyStore> _storeFor;
    private readonly IReadOnlyList<IKeyRotationParticipant> _participants;
    private readonly KeyRotationOptions _options;
    private readonly TimeProvider _time;
    private readonly IKeyMaterialSource _material;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _rotations;
    private readonly ConcurrentDictionary<RotatedKey, KeyRotationState> _states = new();
    private readonly SemaphoreSlim _tickGate = new(1, 1);

    /// <summary>Creates the loop over the stores <paramref name="storeFor"/> resolves by name (null: the default store).</summary>
    public KeyRotationLoop(
        Func<string?, IKeyStore> storeFor,
        IEnumerable<IKeyRotationParticipant> participants,
        KeyRotationOptions options,
        TimeProvider? timeProvider = null,
        IKeyMaterialSource? material = null,
        ILogger<KeyRotationLoop>? logger = null,
        IMeterFactory? meterFactory = null)
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
        _material = material ?? new RandomKeyMaterialSource();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _rotations = _meter.CreateCounter<long>("cloudvpn_key_rotations_total", description: "Key rotations, by key and result (success, failure).");
        _meter.CreateObservableGauge("cloudvpn_key_age_seconds", ObserveAges, unit: "s", description: "Age of the key version in force, by key.");
    }

    /// <summary>The state of every key seen so far.</summary>
    public IReadOnlyDictionary<RotatedKey, KeyRotationState> States => _states;

    /// <summary>Runs until <paramref name="cancellationToken"/> fires: a tick every <see cref="KeyRotationOptions.CheckInterval"/>.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await TickAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            try
            {
                await Task.Delay(_options.CheckInterval, _time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// The one-shot entry point (a Kubernetes CronJob): rotates every due key (every key with <paramref name="force"/>)
    /// through all phases, waiting out the overlap. Returns the number of keys rotated; throws when a key could not be.
    /// </summary>
    public async Task<int> RunOnceAsync(bool force = false, CancellationToken cancellationToken = default)
    {
        var rotated = 0;
        foreach (var key in _options.Keys)
        {
            var state = await EnsureStateAsync(key, cancellationToken);
            if (state.Phase != KeyRotationPhase.Idle)
            {
                await FinishAsync(key, cancellationToken); // a rotation left half-way (by a failure or a stop) first
            }

            if (!force && !IsDue(_states[key]))
            {
                continue;
            }

            await AdvanceAsync(key, force: true, throwOnFailure: true, cancellationToken);
            await FinishAsync(key, cancellationToken);
            rotated++;
        }

        return rotated;
    }

    /// <summary>Drives <paramref name="key"/> back to <see cref="KeyRotationPhase.Idle"/>, waiting out backoff and overlap.</summary>
    private async Task FinishAsync(RotatedKey key, CancellationToken cancellationToken)
    {
        while (_states[key] is { Phase: not KeyRotationPhase.Idle } state)
        {
            var now = _time.GetUtcNow();
            var notBefore = state.Phase == KeyRotationPhase.Switched ? state.SwitchedAt + _options.Overlap : state.NextAttemptAt;
            if (state.NextAttemptAt > notBefore)
            {
                notBefore = state.NextAttemptAt;
            }

            if (notBefore > now)
            {
                // Timers may fire a little early against the clock: wait until the clock says so, not just the timer.
                await Task.Delay(notBefore - now + TimeSpan.FromMilliseconds(1), _time, cancellationToken);
                continue;
            }

            await AdvanceAsync(key, force: false, throwOnFailure: true, cancellationToken);
        }
    }

    /// <summary>Advances every key as far as it can go now. Returns how many rotations completed (retired) in this tick.</summary>
    public async Task<int> TickAsync(CancellationToken cancellationToken = default)
    {
        await _tickGate.WaitAsync(cancellationToken);
        try
        {
            var completed = 0;
            foreach (var key in _options.Keys)
            {
                try
                {
                    await EnsureStateAsync(key, cancellationToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogLoadFailed(_logger, key.KeyId, ex.Message);
                    continue;
                }

                if (await AdvanceAsync(key, force: false, throwOnFailure: false, cancellationToken))
                {
                    completed++;
                }
            }

            return completed;
        }
        finally
        {
            _tickGate.Release();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }

        _tickGate.Dispose();
    }

    private bool IsDue(KeyRotationState state) => _time.GetUtcNow() >= state.InForceSince + _options.Interval;

    private async Task<KeyRotationState> EnsureStateAsync(RotatedKey key, CancellationToken cancellationToken)
    {
        if (_states.TryGetValue(key, out var known))
        {
            return known;
        }

        var store = _storeFor(key.Store);
        var versions = await store.ListVersionsAsync(key.KeyId, cancellationToken);
        KeyRotationState state;
        if (versions.Count == 0)
        {
            // A key that does not exist yet is created, so that it survives restarts instead of being made up each time.
            var buffer = GC.AllocateArray<byte>(32, pinned: true);
            try
            {
                _material.Generate(key.Kind, buffer);
                long version;
                try
                {
                    version = await store.PutAsync(key.KeyId, buffer, expectedVersion: 0, cancellationToken);
                }
                catch (KeyStoreConflictException ex)
                {
                    version = ex.ActualVersion; // another instance created it first
                }

                LogCreated(_logger, key.KeyId, version);
                state = new KeyRotationState(KeyRotationPhase.Idle, version, 0, _time.GetUtcNow(), 0, DateTimeOffset.MinValue);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(buffer);
            }
        }
        else
        {
            var latest = versions[^1];
            state = new KeyRotationState(KeyRotationPhase.Idle, latest.Version, 0, latest.CreatedAt, 0, DateTimeOffset.MinValue);
        }

        _states[key] = state;
        return state;
    }

    /// <summary>Runs the steps that are due for <paramref name="key"/>; true when a rotation completed (retired).</summary>
    private async Task<bool> AdvanceAsync(RotatedKey key, bool force, bool throwOnFailure, CancellationToken cancellationToken)
    {
        var state = _states[key];
        var now = _time.GetUtcNow();
        if (now < state.NextAttemptAt)
        {
            return false;
        }

        var phase = state.Phase;
        try
        {
            if (phase == KeyRotationPhase.Idle)
            {
                if (!force && !IsDue(state))
                {
                    return false;
                }

                state = await WriteNextAsync(key, state, cancellationToken);
                phase = KeyRotationPhase.Written;
            }

            var step = new KeyRotationStep(key, state.VersionInForce, state.PendingVersion);
            if (phase == KeyRotationPhase.Written)
            {
                foreach (var participant in _participants)
                {
                    await participant.PublishAsync(step, cancellationToken);
                }

                state = Set(key, state with { Phase = KeyRotationPhase.Published, ConsecutiveFailures = 0 });
                phase = KeyRotationPhase.Published;
                LogPublished(_logger, key.KeyId, step.NewVersion);
            }

            if (phase == KeyRotationPhase.Published)
            {
                foreach (var participant in _participants)
                {
                    await participant.SwitchAsync(step, cancellationToken);
                }

                var created = await CreatedAtAsync(key, state.PendingVersion, cancellationToken);
                state = Set(key, state with
                {
                    Phase = KeyRotationPhase.Switched,
                    VersionInForce = state.PendingVersion,
                    PendingVersion = 0,
                    InForceSince = created,
                    RetiringVersion = state.VersionInForce,
                    SwitchedAt = _time.GetUtcNow(),
                    ConsecutiveFailures = 0,
                });
                phase = KeyRotationPhase.Switched;
                LogSwitched(_logger, key.KeyId, state.RetiringVersion, state.VersionInForce, _options.Overlap);
            }

            if (phase == KeyRotationPhase.Switched)
            {
                if (_time.GetUtcNow() < state.SwitchedAt + _options.Overlap)
                {
                    return false;
                }

                var retire = new KeyRotationStep(key, state.RetiringVersion, state.VersionInForce);
                foreach (var participant in _participants)
                {
                    await participant.RetireAsync(retire, cancellationToken);
                }

                if (_storeFor(key.Store) is IKeyHistoryPruning pruning)
                {
                    await pruning.PruneAsync(key.KeyId, _options.HistoryLength, cancellationToken);
                }

                Set(key, state with { Phase = KeyRotationPhase.Idle, RetiringVersion = 0, ConsecutiveFailures = 0 });
                _rotations.Add(1, new TagList { { "key_id", key.KeyId }, { "result", "success" } });
                LogRotated(_logger, key.KeyId, retire.PreviousVersion, retire.NewVersion);
                return true;
            }

            return false;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var current = _states[key];
            if (ex is KeyStoreConflictException && current.Phase == KeyRotationPhase.Idle)
            {
                // The store holds an older version than the one in force (deleted and re-created, restored from a
                // backup): forget what we knew and read the store again at the next attempt.
                _states.TryRemove(key, out _);
                _rotations.Add(1, new TagList { { "key_id", key.KeyId }, { "result", "failure" } });
                LogStateReloaded(_logger, key.KeyId, ex.Message);
                if (throwOnFailure)
                {
                    throw;
                }

                return false;
            }

            var failures = current.ConsecutiveFailures + 1;
            var delay = TimeSpan.FromTicks(Math.Min(_options.MaxRetryDelay.Ticks, _options.RetryDelay.Ticks * (1L << Math.Min(failures - 1, 20))));
            Set(key, current with { ConsecutiveFailures = failures, NextAttemptAt = _time.GetUtcNow() + delay });
            _rotations.Add(1, new TagList { { "key_id", key.KeyId }, { "result", "failure" } });
            LogStepFailed(_logger, ex, key.KeyId, current.Phase, current.VersionInForce, delay);
            if (throwOnFailure)
            {
                throw;
            }

            return false;
        }
    }

    private async Task<KeyRotationState> WriteNextAsync(RotatedKey key, KeyRotationState state, CancellationToken cancellationToken)
    {
        var store = _storeFor(key.Store);
        var buffer = GC.AllocateArray<byte>(32, pinned: true);
        long written;
        try
        {
            _material.Generate(key.Kind, buffer);
            try
            {
                written = await store.PutAsync(key.KeyId, buffer, expectedVersion: state.VersionInForce, cancellationToken);
                LogWritten(_logger, key.KeyId, written);
            }
            catch (KeyStoreConflictException ex) when (ex.ActualVersion > state.VersionInForce)
            {
                // Another rotator (a second replica, a CronJob) wrote first: roll out its version instead of adding one more.
                written = ex.ActualVersion;
                LogAdopted(_logger, key.KeyId, written);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }

        return Set(key, state with { Phase = KeyRotationPhase.Written, PendingVersion = written, ConsecutiveFailures = 0 });
    }

    private async Task<DateTimeOffset> CreatedAtAsync(RotatedKey key, long version, CancellationToken cancellationToken)
    {
        var versions = await _storeFor(key.Store).ListVersionsAsync(key.KeyId, cancellationToken);
        return versions.FirstOrDefault(v => v.Version == version)?.CreatedAt ?? _time.GetUtcNow();
    }

    private KeyRotationState Set(RotatedKey key, KeyRotationState state)
    {
        _states[key] = state;
        return state;
    }

    private IEnumerable<Measurement<double>> ObserveAges()
    {
        var now = _time.GetUtcNow();
        foreach (var (key, state) in _states)
        {
            yield return new Measurement<double>((now - state.InForceSince).TotalSeconds, new KeyValuePair<string, object?>("key_id", key.KeyId));
        }
    }

    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Key {KeyId} did not exist; created version {Version}")]
    private static partial void LogCreated(ILogger logger, string keyId, long version);

    [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "Key rotation {KeyId}: version {Version} written")]
    private static partial void LogWritten(ILogger logger, string keyId, long version);

    [LoggerMessage(EventId = 502, Level = LogLevel.Information, Message = "Key rotation {KeyId}: another rotator wrote version {Version} first; rolling it out")]
    private static partial void LogAdopted(ILogger logger, string keyId, long version);

    [LoggerMessage(EventId = 503, Level = LogLevel.Information, Message = "Key rotation {KeyId}: version {Version} published to every participant")]
    private static partial void LogPublished(ILogger logger, string keyId, long version);

    [LoggerMessage(EventId = 504, Level = LogLevel.Information, Message = "Key rotation {KeyId}: switched from version {Previous} to {Version}; previous kept for {Overlap}")]
    private static partial void LogSwitched(ILogger logger, string keyId, long previous, long version, TimeSpan overlap);

    [LoggerMessage(EventId = 505, Level = LogLevel.Information, Message = "Key rotated: {KeyId} version {Previous} retired, version {Version} in force")]
    private static partial void LogRotated(ILogger logger, string keyId, long previous, long version);

    [LoggerMessage(EventId = 506, Level = LogLevel.Warning, Message = "Key rotation {KeyId} failed in phase {Phase}; version {VersionInForce} stays in force; retrying in {Delay}")]
    private static partial void LogStepFailed(ILogger logger, Exception exception, string keyId, KeyRotationPhase phase, long versionInForce, TimeSpan delay);

    [LoggerMessage(EventId = 508, Level = LogLevel.Warning, Message = "Key rotation {KeyId}: the store no longer matches what was in force ({Error}); re-reading it")]
    private static partial void LogStateReloaded(ILogger logger, string keyId, string error);

    [LoggerMessage(EventId = 507, Level = LogLevel.Warning, Message = "Key rotation {KeyId}: cannot read the key store: {Error}")]
    private static partial void LogLoadFailed(ILogger logger, string keyId, string error);
}
