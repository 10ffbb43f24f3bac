using CloudVpn.Samples.Gateway;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.Samples.Tests;

public sealed class GatewayStateTests : IDisposable
{
    private const string KeyA = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    private const string KeyB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
    private readonly FakeLogCollector _logs = new();
    private readonly LoggerFactory _loggerFactory;
    private readonly GatewayOptions _options = TestOptions.Valid("/tmp/unused");
    private readonly GatewayState _state;

    public GatewayStateTests()
    {
        _loggerFactory = new LoggerFactory([new FakeLoggerProvider(_logs)]);
        _state = new GatewayState(new ConnectionEvents(_loggerFactory), TestOptions.Wrap(_options), _time);
        _state.PeersConfigured([new PeerEntry("alice", KeyA, []), new PeerEntry("bob", KeyB, [])]);
    }

    public void Dispose() => _loggerFactory.Dispose();

    private TunnelStatus Status(params PeerStatus[] peers) => new("cv0", "fake", true, 51820, null, 1420, peers);

    private IReadOnlyList<FakeLogRecord> Events(string name) =>
        [.. _logs.GetSnapshot().Where(r => r.Category == ConnectionEvents.Category && r.GetStructuredStateValue("Event") == name)];

    [Fact]
    public void A_first_handshake_connects_the_peer_and_a_stale_one_disconnects_it()
    {
        _state.Observe(Status(new PeerStatus(KeyA, null, null, 0, 0)));
        Assert.Empty(Events(ConnectionEvents.PeerConnectedEvent));

        _state.Observe(Status(new PeerStatus(KeyA, "198.51.100.2:40000", _time.GetUtcNow(), 100, 200)));
        var connected = Assert.Single(Events(ConnectionEvents.PeerConnectedEvent));
        Assert.Equal("alice", connected.GetStructuredStateValue("Peer"));
        Assert.Equal("198.51.100.2:40000", connected.GetStructuredStateValue("Endpoint"));
        Assert.Equal(1, _state.Snapshot().PeersActive);
        Assert.Equal(1, _state.Snapshot().HandshakesSucceeded);

        // the same handshake seen again is not a second one
        _state.Observe(Status(new PeerStatus(KeyA, "198.51.100.2:40000", _time.GetUtcNow(), 100, 200)));
        Assert.Equal(1, _state.Snapshot().HandshakesSucceeded);

        var handshake = _time.GetUtcNow();
        _time.Advance(_options.ActiveWindow + TimeSpan.FromSeconds(1));
        _state.Observe(Status(new PeerStatus(KeyA, "198.51.100.2:40000", handshake, 100, 200)));
        var disconnected = Assert.Single(Events(ConnectionEvents.PeerDisconnectedEvent));
        Assert.Equal("alice", disconnected.GetStructuredStateValue("Peer"));
        Assert.Equal("181", disconnected.GetStructuredStateValue("LastHandshakeAgeSeconds"));
        Assert.Equal(0, _state.Snapshot().PeersActive);
        Assert.Single(Events(ConnectionEvents.PeerConnectedEvent));
    }

    [Fact]
    public void Roaming_logs_endpoint_changed_with_both_endpoints()
    {
        _state.Observe(Status(new PeerStatus(KeyB, "198.51.100.2:40000", _time.GetUtcNow(), 0, 0)));
        _state.Observe(Status(new PeerStatus(KeyB, "203.0.113.9:1234", _time.GetUtcNow(), 0, 0)));

        var moved = Assert.Single(Events(ConnectionEvents.EndpointChangedEvent));
        Assert.Equal("bob", moved.GetStructuredStateValue("Peer"));
        Assert.Equal("198.51.100.2:40000", moved.GetStructuredStateValue("OldEndpoint"));
        Assert.Equal("203.0.113.9:1234", moved.GetStructuredStateValue("NewEndpoint"));
    }

    [Fact]
    public void Handshake_failures_are_logged_once_per_increase_with_their_reason()
    {
        _state.Observe(Status() with { HandshakeFailures = new Dictionary<string, long> { ["invalid_mac"] = 2 } });
        _state.Observe(Status() with { HandshakeFailures = new Dictionary<string, long> { ["invalid_mac"] = 2 } });
        _state.Observe(Status() with { HandshakeFailures = new Dictionary<string, long> { ["invalid_mac"] = 5, ["unknown_peer"] = 1 } });

        var failures = Events(ConnectionEvents.HandshakeFailedEvent);
        Assert.True(failures.Count > 0, string.Join("\n", _logs.GetSnapshot().Select(r => $"{r.Category} {string.Join(",", r.StructuredState!.Select(kv => kv.Key + "=" + kv.Value))}")));
        Assert.Equal(["invalid_mac:2", "invalid_mac:3", "unknown_peer:1"], failures.Select(f => $"{f.GetStructuredStateValue("Reason")}:{f.GetStructuredStateValue("Count")}").Order());
        Assert.All(failures, f => Assert.Equal(LogLevel.Warning, f.Level));
        Assert.Equal(6, _state.Snapshot().HandshakeFailures.Values.Sum());
        Assert.Equal(6, _state.Snapshot().Events[ConnectionEvents.HandshakeFailedEvent]);
    }

    [Fact]
    public void A_connected_peer_removed_from_the_configuration_is_disconnected()
    {
        _state.Observe(Status(new PeerStatus(KeyA, "198.51.100.2:40000", _time.GetUtcNow(), 0, 0)));
        _state.Observe(Status());
        var e = Assert.Single(Events(ConnectionEvents.PeerDisconnectedEvent));
        Assert.Contains("removed from the configuration", e.Message, StringComparison.Ordinal);
        Assert.Empty(_state.Snapshot().Peers);
    }

    [Fact]
    public void Key_rotation_is_counted_and_logged_without_secret_material()
    {
        _state.KeyLoaded(new GatewayKeyInfo(KeyA, 1, _time.GetUtcNow(), true));
        _state.KeyRotated(new GatewayKeyInfo(KeyB, 2, _time.GetUtcNow(), false));

        var e = Assert.Single(Events(ConnectionEvents.KeyRotatedEvent));
        Assert.Equal("1", e.GetStructuredStateValue("OldVersion"));
        Assert.Equal("2", e.GetStructuredStateValue("NewVersion"));
        Assert.Equal(KeyB, e.GetStructuredStateValue("PublicKey"));
        Assert.Equal(1, _state.Snapshot().KeyRotations);
    }

    [Fact]
    public void Readiness_needs_the_key_the_tunnel_and_a_fresh_status()
    {
        var r = _state.GetReadiness();
        Assert.False(r.IsReady);
        Assert.StartsWith("failing: the gateway key is not loaded", r.Checks["key"], StringComparison.Ordinal);

        _state.KeyLoaded(new GatewayKeyInfo(KeyA, 1, _time.GetUtcNow(), true));
        Assert.False(_state.GetReadiness().IsReady);
        Assert.StartsWith("failing: the tunnel is not open", _state.GetReadiness().Checks["tunnel"], StringComparison.Ordinal);

        _state.TunnelOpened("fake", "wireguard");
        _state.Observe(Status());
        Assert.True(_state.GetReadiness().IsReady, string.Join("; ", _state.GetReadiness().Checks.Values));

        // the driver stops answering: readiness follows once the last answer is too old
        _state.StatusFailed("device gone");
        _time.Advance(_options.Readiness.StatusMaxAge + TimeSpan.FromSeconds(1));
        r = _state.GetReadiness();
        Assert.False(r.IsReady);
        Assert.Contains("device gone", r.Checks["dataPlane"], StringComparison.Ordinal);

        _state.Observe(Status() with { IsUp = false });
        Assert.False(_state.GetReadiness().IsReady);
        Assert.StartsWith("failing: cloudvpn0 reports down", _state.GetReadiness().Checks["tunnel"], StringComparison.Ordinal);
    }

    [Fact]
    public void Readiness_can_also_require_a_recent_handshake()
    {
        _options.Readiness.RequireHandshake = true;
        _state.KeyLoaded(new GatewayKeyInfo(KeyA, 1, _time.GetUtcNow(), true));
        _state.TunnelOpened("fake", "wireguard");
        _state.Observe(Status(new PeerStatus(KeyA, null, null, 0, 0)));
        Assert.False(_state.GetReadiness().IsReady);

        _state.Observe(Status(new PeerStatus(KeyA, "198.51.100.2:1", _time.GetUtcNow(), 0, 0)));
        Assert.True(_state.GetReadiness().IsReady);
    }
}
