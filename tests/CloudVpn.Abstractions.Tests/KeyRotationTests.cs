using CloudVpn.Testing;
using System.Net;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.Abstractions.Tests;

/// <summary>The key rotation loop with a fake clock, the real file key store and a fake tunnel driver.</summary>
public sealed class KeyRotationTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("cv-rot").FullName;
    private readonly TimerCountingTimeProvider _time = new(Start);
    private readonly RefusingStore _store;

    public KeyRotationTests()
    {
        _store = new RefusingStore(new FileKeyStore(new FileKeyStoreOptions { Directory = _dir }, _time));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_missing_key_is_created_once_and_not_rotated_before_it_is_due()
    {
        var tunnel = new KeyReadingTunnel(_store);
        using var loop = Loop([Participant(tunnel)]);

        Assert.Equal(0, await loop.TickAsync(Ct));
        Assert.Equal(1, loop.States[Psk].VersionInForce);
        _time.Advance(TimeSpan.FromMinutes(59));
        Assert.Equal(0, await loop.TickAsync(Ct));

        Assert.Equal([1L], (await _store.ListVersionsAsync("psk/site-a", Ct)).Select(v => v.Version));
        Assert.Equal(0, tunnel.Applies);
    }

    [Fact]
    public async Task A_due_key_is_written_switched_and_the_old_version_retired_only_after_the_overlap()
    {
        await _store.PutAsync("psk/site-a", new byte[32], cancellationToken: Ct);
        var tunnel = new KeyReadingTunnel(_store);
        var recorder = new RecordingParticipant();
        using var loop = Loop([recorder, Participant(tunnel)]);
        await loop.TickAsync(Ct);

        _time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(0, await loop.TickAsync(Ct)); // written, published, switched; not yet retired

        var state = loop.States[Psk];
        Assert.Equal(KeyRotationPhase.Switched, state.Phase);
        Assert.Equal(2, state.VersionInForce);
        Assert.Equal(["publish 1->2", "switch 1->2"], recorder.Calls);
        using (var v2 = await _store.GetAsync("psk/site-a", 2, Ct))
        {
            Assert.Equal(v2!.Value.ToArray(), tunnel.PresharedKeyInUse);
        }

        Assert.Equal(2, tunnel.Spec!.Peers[0].PresharedKey!.Version);
        Assert.NotNull(await _store.GetAsync("psk/site-a", 1, Ct)); // the previous version survives the overlap

        _time.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(0, await loop.TickAsync(Ct));
        Assert.DoesNotContain(recorder.Calls, c => c.StartsWith("retire", StringComparison.Ordinal));

        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(1, await loop.TickAsync(Ct));
        Assert.Equal("retire 1->2", recorder.Calls[^1]);
        Assert.Equal(("psk/site-a", 3), Assert.Single(_store.Prunes));
        Assert.Equal(KeyRotationPhase.Idle, loop.States[Psk].Phase);
        Assert.Equal(Start.AddHours(1), loop.States[Psk].InForceSince);
    }

    [Fact]
    public async Task A_refused_write_leaves_the_old_key_in_force_and_is_retried_with_backoff()
    {
        await _store.PutAsync("psk/site-a", new byte[] { 7 }, cancellationToken: Ct);
        var tunnel = new KeyReadingTunnel(_store);
        using var loop = Loop([Participant(tunnel)]);
        await loop.TickAsync(Ct);
        _time.Advance(TimeSpan.FromHours(1));

        _store.RefuseWrites = true;
        await loop.TickAsync(Ct);
        var failed = loop.States[Psk];
        Assert.Equal(KeyRotationPhase.Idle, failed.Phase);
        Assert.Equal(1, failed.VersionInForce);
        Assert.Equal(1, failed.ConsecutiveFailures);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(10), failed.NextAttemptAt);
        Assert.Equal(0, tunnel.Applies);

        _time.Advance(TimeSpan.FromSeconds(10));
        await loop.TickAsync(Ct);
        Assert.Equal(2, loop.States[Psk].ConsecutiveFailures);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(20), loop.States[Psk].NextAttemptAt); // doubled

        _store.RefuseWrites = false;
        _time.Advance(TimeSpan.FromSeconds(5));
        await loop.TickAsync(Ct);
        Assert.Equal(1, loop.States[Psk].VersionInForce); // not before the backoff ends
        _time.Advance(TimeSpan.FromSeconds(15));
        await loop.TickAsync(Ct);
        Assert.Equal(2, loop.States[Psk].VersionInForce);
        Assert.Equal(1, tunnel.Applies);
        Assert.Equal([1L, 2L], (await _store.ListVersionsAsync("psk/site-a", Ct)).Select(v => v.Version));
    }

    [Fact]
    public async Task A_participant_that_fails_to_switch_keeps_the_old_version_in_force_until_a_retry_succeeds()
    {
        await _store.PutAsync("psk/site-a", new byte[] { 7 }, cancellationToken: Ct);
        var tunnel = new KeyReadingTunnel(_store) { FailApplies = 1 };
        using var loop = Loop([Participant(tunnel)]);
        await loop.TickAsync(Ct);
        _time.Advance(TimeSpan.FromHours(1));

        await loop.TickAsync(Ct);
        Assert.Equal(KeyRotationPhase.Published, loop.States[Psk].Phase);
        Assert.Equal(1, loop.States[Psk].VersionInForce);
        Assert.Equal(2, loop.States[Psk].PendingVersion);

        _time.Advance(TimeSpan.FromSeconds(10));
        await loop.TickAsync(Ct);
        Assert.Equal(KeyRotationPhase.Switched, loop.States[Psk].Phase);
        Assert.Equal(2, loop.States[Psk].VersionInForce);
        Assert.Equal([1L, 2L], (await _store.ListVersionsAsync("psk/site-a", Ct)).Select(v => v.Version)); // no extra version
    }

    [Fact]
    public async Task A_version_written_by_another_rotator_is_rolled_out_instead_of_adding_one()
    {
        await _store.PutAsync("psk/site-a", new byte[] { 1 }, cancellationToken: Ct);
        var tunnel = new KeyReadingTunnel(_store);
        using var loop = Loop([Participant(tunnel)]);
        await loop.TickAsync(Ct);
        await _store.PutAsync("psk/site-a", new byte[] { 2 }, cancellationToken: Ct); // a CronJob, say
        _time.Advance(TimeSpan.FromHours(1));

        await loop.TickAsync(Ct);

        Assert.Equal(2, loop.States[Psk].VersionInForce);
        Assert.Equal([2], tunnel.PresharedKeyInUse);
        Assert.Equal(2, (await _store.ListVersionsAsync("psk/site-a", Ct)).Count);
    }

    [Fact]
    public async Task A_key_deleted_behind_the_loops_back_is_read_again_instead_of_failing_forever()
    {
        await _store.PutAsync("psk/site-a", new byte[] { 1 }, cancellationToken: Ct);
        await _store.PutAsync("psk/site-a", new byte[] { 2 }, cancellationToken: Ct);
        using var loop = Loop([Participant(new KeyReadingTunnel(_store))]);
        await loop.TickAsync(Ct);
        Assert.Equal(2, loop.States[Psk].VersionInForce);
        await _store.DeleteAsync("psk/site-a", Ct);
        await _store.PutAsync("psk/site-a", new byte[] { 9 }, cancellationToken: Ct); // re-created: version 1
        _time.Advance(TimeSpan.FromHours(1));

        await loop.TickAsync(Ct); // CAS on version 2 fails: the state is dropped
        Assert.False(loop.States.ContainsKey(Psk));
        await loop.TickAsync(Ct); // read again: version 1 (an hour old, so due) is rotated to 2 on top of it
        Assert.Equal(2, loop.States[Psk].VersionInForce);
        using var rotated = await _store.GetAsync("psk/site-a", cancellationToken: Ct);
        Assert.Equal(2, rotated!.Version);
        Assert.NotEqual([9], rotated.Value.ToArray());
    }

    [Fact]
    public async Task Rotations_are_counted_and_key_age_is_exported()
    {
        await _store.PutAsync("psk/site-a", new byte[] { 1 }, cancellationToken: Ct);
        using var loop = Loop([Participant(new KeyReadingTunnel(_store))], overlap: TimeSpan.Zero);
        using var rotations = new MetricCollector<long>(null, KeyRotationLoop.MeterName, "cloudvpn_key_rotations_total");
        using var age = new MetricCollector<double>(null, KeyRotationLoop.MeterName, "cloudvpn_key_age_seconds");
        await loop.TickAsync(Ct);
        _time.Advance(TimeSpan.FromMinutes(30));
        age.RecordObservableInstruments();
        Assert.Equal(1800, age.LastMeasurement!.Value);
        Assert.Equal("psk/site-a", age.LastMeasurement.Tags["key_id"]);

        _time.Advance(TimeSpan.FromMinutes(30));
        _store.RefuseWrites = true;
        await loop.TickAsync(Ct);
        _store.RefuseWrites = false;
        _time.Advance(TimeSpan.FromSeconds(10));
        await loop.TickAsync(Ct);

        var measurements = rotations.GetMeasurementSnapshot();
        Assert.Equal(1, measurements.Count(m => (string?)m.Tags["result"] == "failure"));
        Assert.Equal(1, measurements.Count(m => (string?)m.Tags["result"] == "success"));
        age.RecordObservableInstruments();
        Assert.Equal(0, age.LastMeasurement!.Value);
    }

    [Fact]
    public async Task The_one_shot_entry_point_rotates_waits_out_the_overlap_and_retires()
    {
        await _store.PutAsync("psk/site-a", new byte[] { 1 }, cancellationToken: Ct);
        var recorder = new RecordingParticipant();
        using var loop = Loop([recorder]);

        var timers = _time.TimersCreated;
        var run = loop.RunOnceAsync(force: true, Ct);
        await Eventually.HoldsAsync(
            () => loop.States.TryGetValue(Psk, out var state) && state.Phase == KeyRotationPhase.Switched && _time.TimersCreated > timers,
            "the switch, then the one-shot run waiting on the clock");
        Assert.False(run.IsCompleted); // waiting out the overlap
        _time.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(1, await run);
        Assert.Equal(["publish 1->2", "switch 1->2", "retire 1->2"], recorder.Calls);
    }

    [Fact]
    public async Task The_hosted_loop_rotates_on_schedule_and_both_ends_of_a_tunnel_always_agree_at_handshake_time()
    {
        // Two ends of one WireGuard tunnel share a preshared key. In WireGuard a changed PSK only matters at the next
        // handshake (every 2 minutes); the model handshakes every 2 minutes of fake time and fails if the ends disagree.
        await _store.PutAsync("psk/site-a", new byte[32], cancellationToken: Ct);
        var left = new KeyReadingTunnel(_store);
        var right = new KeyReadingTunnel(_store);
        await left.ApplyAsync(Spec(1), Ct);
        await right.ApplyAsync(Spec(1), Ct);
        using var loop = Loop([Participant(left, 1), Participant(right, 1)], checkInterval: TimeSpan.FromSeconds(30));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = loop.RunAsync(stop.Token);
        var handshakes = 0;
        var failedHandshakes = 0;
        for (var minute = 0; minute < 4 * 60; minute += 2)
        {
            for (var i = 0; i < 4; i++)
            {
                var timers = _time.TimersCreated;
                _time.Advance(TimeSpan.FromSeconds(30));
                await LetTheLoopRunAsync(timers);
            }

            handshakes++;
            if (!left.PresharedKeyInUse.AsSpan().SequenceEqual(right.PresharedKeyInUse))
            {
                failedHandshakes++;
            }
        }

        await stop.CancelAsync();
        await running;
        Assert.Equal(120, handshakes);
        Assert.Equal(0, failedHandshakes);
        Assert.True(loop.States[Psk].VersionInForce >= 4, $"version {loop.States[Psk].VersionInForce}");
    }

    [Fact]
    public void Options_validation_lists_every_problem()
    {
        var options = new KeyRotationOptions { Interval = TimeSpan.FromMinutes(5), Overlap = TimeSpan.FromMinutes(10), HistoryLength = 1, CheckInterval = TimeSpan.Zero };
        options.Keys.Add(Psk);
        options.Keys.Add(Psk);

        var errors = KeyRotationOptionsValidator.Collect(options);

        Assert.Contains(errors, e => e.StartsWith("CloudVpn:KeyRotation:Keys: key 'psk/site-a' is listed 2 times", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("CloudVpn:KeyRotation:Overlap:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("CloudVpn:KeyRotation:HistoryLength:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("CloudVpn:KeyRotation:CheckInterval:", StringComparison.Ordinal));
        Assert.Equal(4, errors.Count);
    }

    [Fact]
    public void Repointing_pins_only_references_to_the_rotated_key()
    {
        var spec = new TunnelSpec(
            new DeviceSpec("wg0", new KeyReference("gw/private"), 51820, [IPNetwork.Parse("10.8.0.1/24")]),
            [
                new PeerSpec("peerA", [IPNetwork.Parse("10.8.0.2/32")]) { PresharedKey = new KeyReference("psk/site-a") },
                new PeerSpec("peerB", [IPNetwork.Parse("10.8.0.3/32")]) { PresharedKey = new KeyReference("psk/site-b") },
                new PeerSpec("peerC", [IPNetwork.Parse("10.8.0.4/32")]) { PresharedKey = new KeyReference("psk/site-a", Store: "vault") },
            ]);

        var next = TunnelKeyRotationParticipant.Repoint(spec, new KeyRotationStep(Psk, 1, 5));

        Assert.Equal(5, next.Peers[0].PresharedKey!.Version);
        Assert.Null(next.Peers[1].PresharedKey!.Version);
        Assert.Null(next.Peers[2].PresharedKey!.Version); // same id, other store
        Assert.Null(next.Device.PrivateKey.Version);
        var gw = TunnelKeyRotationParticipant.Repoint(spec, new KeyRotationStep(new RotatedKey("gw/private", RotatedKeyKind.PrivateKey), 2, 3));
        Assert.Equal(3, gw.Device.PrivateKey.Version);
    }

    [Fact]
    public async Task A_private_key_rotation_adds_the_new_key_at_publish_swaps_at_switch_and_drops_the_old_at_retire()
    {
        var tunnel = new SpecRecordingTunnel();
        var participant = new TunnelKeyRotationParticipant(tunnel, Spec() with { Device = Spec().Device with { PrivateKey = new KeyReference("gw/private", Version: 2) } });
        var step = new KeyRotationStep(new RotatedKey("gw/private", RotatedKeyKind.PrivateKey), 2, 3);

        await participant.PublishAsync(step, Ct);
        Assert.Equal(new KeyReference("gw/private", Version: 2), tunnel.Applied[^1].Device.PrivateKey);
        Assert.Equal(new KeyReference("gw/private", Version: 3), tunnel.Applied[^1].Device.AdditionalPrivateKey);

        await participant.SwitchAsync(step, Ct);
        Assert.Equal(new KeyReference("gw/private", Version: 3), tunnel.Applied[^1].Device.PrivateKey);
        Assert.Equal(new KeyReference("gw/private", Version: 2), tunnel.Applied[^1].Device.AdditionalPrivateKey);

        await participant.RetireAsync(step, Ct);
        Assert.Equal(new KeyReference("gw/private", Version: 3), tunnel.Applied[^1].Device.PrivateKey);
        Assert.Null(tunnel.Applied[^1].Device.AdditionalPrivateKey);
        Assert.Equal(3, tunnel.Applied.Count);

        // a PSK rotation leaves the device keys alone: only the switch applies
        await participant.PublishAsync(new KeyRotationStep(Psk, 1, 2), Ct);
        await participant.RetireAsync(new KeyRotationStep(Psk, 1, 2), Ct);
        Assert.Equal(3, tunnel.Applied.Count);
        await participant.SwitchAsync(new KeyRotationStep(Psk, 1, 2), Ct);
        Assert.Null(tunnel.Applied[^1].Device.AdditionalPrivateKey);
        Assert.Equal(2, tunnel.Applied[^1].Peers[0].PresharedKey!.Version);
    }

    [Fact]
    public void Private_keys_are_clamped_and_preshared_keys_are_not()
    {
        var source = new RandomKeyMaterialSource();
        Span<byte> key = stackalloc byte[32];
        for (var i = 0; i < 50; i++)
        {
            source.Generate(RotatedKeyKind.PrivateKey, key);
            Assert.Equal(0, key[0] & 7);
            Assert.Equal(64, key[31] & 192);
        }

        var unclamped = false;
        for (var i = 0; i < 50 && !unclamped; i++)
        {
            source.Generate(RotatedKeyKind.PresharedKey, key);
            unclamped = (key[0] & 7) != 0 || (key[31] & 192) != 64;
        }

        Assert.True(unclamped);
    }

    private static readonly RotatedKey Psk = new("psk/site-a", RotatedKeyKind.PresharedKey);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static TunnelSpec Spec(long? version = null) => new(
        new DeviceSpec("wg0", new KeyReference("gw/private"), 51820, [IPNetwork.Parse("10.8.0.1/24")]),
        [new PeerSpec("peerA", [IPNetwork.Parse("10.8.0.2/32")]) { PresharedKey = new KeyReference("psk/site-a", Version: version) }]);

    private static TunnelKeyRotationParticipant Participant(KeyReadingTunnel tunnel, long? version = null) => new(tunnel, Spec(version));

    private Task LetTheLoopRunAsync(int timersBefore) =>
        // The fired timer runs the tick on the thread pool; RunAsync then registers its next delay on the fake clock:
        // once it has, the tick is done.
        Eventually.HoldsAsync(() => _time.TimersCreated > timersBefore, "the loop waiting on the clock again");

    /// <summary>A fake clock that counts the timers made on it (each wait of the loop makes one).</summary>
    private sealed class TimerCountingTimeProvider(DateTimeOffset start) : FakeTimeProvider(start)
    {
        private int _created;

        public int TimersCreated => Volatile.Read(ref _created);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _created);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    private KeyRotationLoop Loop(IEnumerable<IKeyRotationParticipant> participants, TimeSpan? overlap = null, TimeSpan? checkInterval = null)
    {
        var options = new KeyRotationOptions
        {
            Interval = TimeSpan.FromHours(1),
            Overlap = overlap ?? TimeSpan.FromMinutes(5),
            HistoryLength = 3,
            CheckInterval = checkInterval ?? TimeSpan.FromMinutes(1),
        };
        options.Keys.Add(Psk);
        return new KeyRotationLoop(_ => _store, participants, options, _time);
    }

    /// <summary>A fake tunnel that, like a real driver, reads the keys its spec points at from the store on apply.</summary>
    private sealed class KeyReadingTunnel(IKeyStore store) : ITunnel
    {
        public string Name => "fake0";

        public string DriverName => "fake";

        public TunnelSpec? Spec { get; private set; }

        public byte[] PresharedKeyInUse { get; private set; } = [];

        public int Applies { get; private set; }

        public int FailApplies { get; set; }

        public async ValueTask<TunnelApplyResult> ApplyAsync(TunnelSpec desired, CancellationToken cancellationToken = default)
        {
            if (FailApplies > 0)
            {
                FailApplies--;
                throw new InvalidOperationException("device busy");
            }

            var reference = desired.Peers[0].PresharedKey!;
            using var psk = await store.GetAsync(reference.KeyId, reference.Version, cancellationToken)
                ?? throw new KeyStoreException($"missing {reference}");
            PresharedKeyInUse = psk.CopyValue();
            Spec = desired;
            Applies++;
            return new TunnelApplyResult(false, [], [desired.Peers[0].PublicKey], []);
        }

        public ValueTask<TunnelStatus> GetStatusAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask CloseAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>A fake tunnel that records every spec applied.</summary>
    private sealed class SpecRecordingTunnel : ITunnel
    {
        public string Name => "fake0";

        public string DriverName => "fake";

        public List<TunnelSpec> Applied { get; } = [];

        public ValueTask<TunnelApplyResult> ApplyAsync(TunnelSpec desired, CancellationToken cancellationToken = default)
        {
            Applied.Add(desired);
            return ValueTask.FromResult(new TunnelApplyResult(true, [], [], []));
        }

        public ValueTask<TunnelStatus> GetStatusAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask CloseAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class RecordingParticipant : IKeyRotationParticipant
    {
        public List<string> Calls { get; } = [];

        public ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken) => Record("publish", step);

        public ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken) => Record("switch", step);

        public ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken) => Record("retire", step);

        private ValueTask Record(string what, KeyRotationStep step)
        {
            lock (Calls)
            {
                Calls.Add($"{what} {step.PreviousVersion}->{step.NewVersion}");
            }

            return ValueTask.CompletedTask;
        }
    }

    /// <summary>The file store with a switch that makes writes fail, and a record of prune calls.</summary>
    private sealed class RefusingStore(FileKeyStore inner) : IKeyStore, IKeyHistoryPruning
    {
        public bool RefuseWrites { get; set; }

        public List<(string Id, int Keep)> Prunes { get; } = [];

        public ValueTask<StoredSecret?> GetAsync(string id, long? version = null, CancellationToken cancellationToken = default) => inner.GetAsync(id, version, cancellationToken);

        public ValueTask<long> PutAsync(string id, ReadOnlyMemory<byte> value, long? expectedVersion = null, CancellationToken cancellationToken = default) =>
            RefuseWrites ? throw new KeyStoreException("store is read-only for this test") : inner.PutAsync(id, value, expectedVersion, cancellationToken);

        public ValueTask<IReadOnlyList<SecretVersionInfo>> ListVersionsAsync(string id, CancellationToken cancellationToken = default) => inner.ListVersionsAsync(id, cancellationToken);

        public ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken = default) => inner.DeleteAsync(id, cancellationToken);

        public IAsyncEnumerable<KeyStoreChange> WatchAsync(string? id = null, CancellationToken cancellationToken = default) => inner.WatchAsync(id, cancellationToken);

        public ValueTask<int> PruneAsync(string id, int keep, CancellationToken cancellationToken = default)
        {
            Prunes.Add((id, keep));
            return ValueTask.FromResult(0);
        }
    }
}

/// <summary>History pruning of the file key store (used by the rotation loop).</summary>
public sealed class FileKeyStorePruningTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cv-prune").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Prune_keeps_the_newest_versions_only()
    {
        var store = new FileKeyStore(new FileKeyStoreOptions { Directory = _dir });
        var ct = TestContext.Current.CancellationToken;
        for (byte i = 1; i <= 5; i++)
        {
            await store.PutAsync("k", new[] { i }, cancellationToken: ct);
        }

        Assert.Equal(3, await store.PruneAsync("k", 2, ct));
        Assert.Equal([4L, 5L], (await store.ListVersionsAsync("k", ct)).Select(v => v.Version));
        Assert.Equal(0, await store.PruneAsync("k", 2, ct));
        Assert.Equal(0, await store.PruneAsync("absent", 2, ct));
        Assert.Equal(6, await store.PutAsync("k", new byte[] { 6 }, expectedVersion: 5, ct));
    }
}

/// <summary>The follower: rotations made by a CronJob (the one-shot entry point) reach a gateway's participants through the store's watch.</summary>
public sealed class KeyRotationFollowerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cv-follow").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_rotation_by_the_one_shot_entry_point_is_switched_to_and_retired_on_the_follower()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = new FileKeyStore(new FileKeyStoreOptions { Directory = _dir, PollInterval = TimeSpan.FromMilliseconds(50) });
        await store.PutAsync("psk/site-a", new byte[32], cancellationToken: ct);
        var options = Options();
        var gateway = new CallLog { FailSwitches = 1 };
        var follower = new KeyRotationFollower(_ => store, [gateway], options);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var following = follower.RunAsync(stop.Token);
        await WaitAsync(() => follower.VersionsInForce.Count == 1, ct);
        Assert.Equal(1, follower.VersionsInForce.Values.Single());

        // The CronJob: its own loop, with no participants of its own.
        using var cronJob = new KeyRotationLoop(_ => new FileKeyStore(new FileKeyStoreOptions { Directory = _dir }), [], options);
        Assert.Equal(1, await cronJob.RunOnceAsync(force: true, ct));

        await WaitAsync(() => gateway.Calls.Contains("retire 1->2"), ct);
        await stop.CancelAsync();
        await following;

        // The first switch failed: the old version stayed in force, the retry succeeded, retire came after the overlap.
        Assert.Equal(["publish 1->2", "switch 1->2 failed", "publish 1->2", "switch 1->2", "retire 1->2"], gateway.Calls);
        Assert.Equal(2, follower.VersionsInForce.Values.Single());
    }

    private static KeyRotationOptions Options()
    {
        var options = new KeyRotationOptions
        {
            Interval = TimeSpan.FromHours(1),
            Overlap = TimeSpan.FromMilliseconds(100),
            RetryDelay = TimeSpan.FromMilliseconds(50),
            MaxRetryDelay = TimeSpan.FromMilliseconds(200),
        };
        options.Keys.Add(new RotatedKey("psk/site-a", RotatedKeyKind.PresharedKey));
        return options;
    }

    private static Task WaitAsync(Func<bool> condition, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        return Eventually.HoldsAsync(condition, "the rotation step", timeoutMs: 20_000);
    }

    private sealed class CallLog : IKeyRotationParticipant
    {
        private readonly List<string> _calls = [];

        public int FailSwitches { get; set; }

        public IReadOnlyList<string> Calls
        {
            get
            {
                lock (_calls)
                {
                    return [.. _calls];
                }
            }
        }

        public ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken) => Add($"publish {step.PreviousVersion}->{step.NewVersion}");

        public ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken)
        {
            if (FailSwitches > 0)
            {
                FailSwitches--;
                Add($"switch {step.PreviousVersion}->{step.NewVersion} failed");
                throw new InvalidOperationException("tunnel busy");
            }

            return Add($"switch {step.PreviousVersion}->{step.NewVersion}");
        }

        public ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken) => Add($"retire {step.PreviousVersion}->{step.NewVersion}");

        private ValueTask Add(string call)
        {
            lock (_calls)
            {
                _calls.Add(call);
            }

            return ValueTask.CompletedTask;
        }
    }
}
