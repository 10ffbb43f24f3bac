using CloudVpn.Tunnels;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Gateway;

/// <summary>One peer as the metrics see it.</summary>
internal sealed record PeerMetrics(
    string Name,
    DateTimeOffset? LastHandshake,
    long ReceivedBytes,
    long TransmittedBytes,
    long? ReceivedPackets,
    long? TransmittedPackets,
    bool Connected);

/// <summary>An immutable view of the gateway for one scrape or one readiness answer.</summary>
internal sealed record GatewaySnapshot(
    DateTimeOffset Now,
    string Interface,
    GatewayKeyInfo? Key,
    long KeyRotations,
    string? DriverName,
    string? DriverFamily,
    bool TunnelOpen,
    bool TunnelUp,
    int Mtu,
    DateTimeOffset? LastStatusAt,
    string? LastStatusError,
    int PeersConfigured,
    IReadOnlyList<PeerMetrics> Peers,
    long HandshakesSucceeded,
    IReadOnlyDictionary<string, long> HandshakeFailures,
    IReadOnlyDictionary<string, long> Drops,
    IReadOnlyDictionary<string, long> Events,
    long PeersFileReloads,
    long PeersFileErrors,
    TimeSpan ActiveWindow)
{
    public int PeersActive => Peers.Count(p => p.LastHandshake is { } h && Now - h <= ActiveWindow);
}

/// <summary>The outcome of the readiness checks, each with why.</summary>
internal sealed record Readiness(bool IsReady, IReadOnlyDictionary<string, string> Checks);

/// <summary>
/// What the gateway knows about itself: key, driver, the last status read from the tunnel, counters. Turning status
/// changes into connection events happens here, in <see cref="Observe"/>, so the rules are testable without a device.
/// </summary>
internal sealed class GatewayState(ConnectionEvents events, IOptions<GatewayOptions> options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, PeerTrack> _peers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _events = new(StringComparer.Ordinal);
    private Dictionary<string, long> _failures = new(StringComparer.Ordinal);
    private IReadOnlyDictionary<string, long> _drops = new Dictionary<string, long>();
    private Dictionary<string, string> _configuredNames = new(StringComparer.Ordinal);
    private GatewayKeyInfo? _key;
    private long _keyRotations;
    private string? _driverName;
    private string? _driverFamily;
    private bool _tunnelOpen;
    private TunnelStatus? _status;
    private DateTimeOffset? _statusAt;
    private string? _statusError;
    private long _observedHandshakes;
    private long? _driverHandshakes;
    private long _reloads;
    private long _reloadErrors;

    private TimeSpan ActiveWindow => options.Value.ActiveWindow;

    public GatewayKeyInfo? Key
    {
        get
        {
            lock (_lock)
            {
                return _key;
            }
        }
    }

    public void KeyLoaded(GatewayKeyInfo key)
    {
        lock (_lock)
        {
            _key = key;
        }
    }

    /// <summary>A new key version took effect.</summary>
    public void KeyRotated(GatewayKeyInfo key)
    {
        lock (_lock)
        {
            var old = _key;
            _key = key;
            _keyRotations++;
            Count(ConnectionEvents.KeyRotatedEvent);
            events.KeyRotated(old?.Version ?? 0, key.Version, key.PublicKey);
        }
    }

    public void TunnelOpened(string driverName, string driverFamily)
    {
        lock (_lock)
        {
            _driverName = driverName;
            _driverFamily = driverFamily;
            _tunnelOpen = true;
        }
    }

    public void TunnelClosed()
    {
        lock (_lock)
        {
            _tunnelOpen = false;
        }
    }

    public void PeersConfigured(IReadOnlyList<PeerEntry> peers)
    {
        lock (_lock)
        {
            _configuredNames = peers.ToDictionary(p => p.PublicKey, p => p.Name, StringComparer.Ordinal);
            _reloads++;
        }
    }

    public void PeersFileRejected()
    {
        lock (_lock)
        {
            _reloadErrors++;
        }
    }

    public void StatusFailed(string error)
    {
        lock (_lock)
        {
            _statusError = error;
        }
    }

    /// <summary>Takes a fresh status from the tunnel: updates counters and raises connection events.</summary>
    public void Observe(TunnelStatus status)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            _status = status;
            _statusAt = now;
            _statusError = null;
            _drops = status.Drops;
            _driverHandshakes = status.HandshakesCompleted;

            foreach (var (reason, total) in status.HandshakeFailures)
            {
                var before = _failures.GetValueOrDefault(reason);
                if (total > before)
                {
                    Count(ConnectionEvents.HandshakeFailedEvent, total - before);
                    events.HandshakeFailed(reason, total - before);
                }
            }

            _failures = new Dictionary<string, long>(status.HandshakeFailures, StringComparer.Ordinal);

            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var peer in status.Peers)
            {
                seen.Add(peer.PublicKey);
                var name = NameOf(peer.PublicKey, peer.Name);
                if (!_peers.TryGetValue(peer.PublicKey, out var track))
                {
                    track = new PeerTrack();
                    _peers[peer.PublicKey] = track;
                }

                track.Name = name;
                track.Status = peer;
                if (peer.LastHandshake is { } handshake && (track.LastHandshake is not { } previous || handshake > previous))
                {
                    _observedHandshakes++;
                }

                track.LastHandshake = peer.LastHandshake;
                var fresh = peer.LastHandshake is { } h && now - h <= ActiveWindow;
                if (fresh && !track.Connected)
                {
                    track.Connected = true;
                    Count(ConnectionEvents.PeerConnectedEvent);
                    events.PeerConnected(name, peer.PublicKey, peer.Endpoint);
                }
                else if (!fresh && track.Connected)
                {
                    track.Connected = false;
                    var age = peer.LastHandshake is { } last ? Math.Round((now - last).TotalSeconds, 1) : (double?)null;
                    Count(ConnectionEvents.PeerDisconnectedEvent);
                    events.PeerDisconnected(name, peer.PublicKey, $"no handshake for more than {ActiveWindow.TotalSeconds:0} s", age);
                }

                if (peer.Endpoint is not null && track.Endpoint is not null && peer.Endpoint != track.Endpoint)
                {
                    Count(ConnectionEvents.EndpointChangedEvent);
                    events.EndpointChanged(name, peer.PublicKey, track.Endpoint, peer.Endpoint);
                }

                track.Endpoint = peer.Endpoint ?? track.Endpoint;
            }

            foreach (var gone in _peers.Where(p => !seen.Contains(p.Key)).ToList())
            {
                if (gone.Value.Connected)
                {
                    Count(ConnectionEvents.PeerDisconnectedEvent);
                    events.PeerDisconnected(gone.Value.Name, gone.Key, "removed from the configuration", gone.Value.LastHandshake is { } l ? Math.Round((now - l).TotalSeconds, 1) : null);
                }

                _peers.Remove(gone.Key);
            }
        }
    }

    public GatewaySnapshot Snapshot()
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            return new GatewaySnapshot(
                now,
                options.Value.Interface,
                _key,
                _keyRotations,
                _driverName,
                _driverFamily,
                _tunnelOpen,
                _tunnelOpen && _status?.IsUp == true,
                _status?.Mtu ?? 0,
                _statusAt,
                _statusError,
                _configuredNames.Count,
                [.. _peers.Values.Select(p => new PeerMetrics(p.Name, p.LastHandshake, p.Status.ReceivedBytes, p.Status.TransmittedBytes, p.Status.ReceivedPackets, p.Status.TransmittedPackets, p.Connected))],
                _driverHandshakes ?? _observedHandshakes,
                new Dictionary<string, long>(_failures, StringComparer.Ordinal),
                _drops,
                new Dictionary<string, long>(_events, StringComparer.Ordinal),
                _reloads,
                _reloadErrors,
                ActiveWindow);
        }
    }

    /// <summary>Ready when the key is loaded, the tunnel is up and its status was read recently (and, if required, a handshake is recent).</summary>
    public Readiness GetReadiness()
    {
        var s = Snapshot();
        var o = options.Value;
        var checks = new Dictionary<string, string>(StringComparer.Ordinal);
        var ready = true;
        void Check(string name, bool ok, string good, string bad)
        {
            checks[name] = ok ? $"ok: {good}" : $"failing: {bad}";
            ready &= ok;
        }

        Check("key", s.Key is not null, $"version {s.Key?.Version} loaded", "the gateway key is not loaded yet");
        Check("tunnel", s.TunnelUp, $"{s.Interface} is up ({s.DriverName})", s.TunnelOpen ? $"{s.Interface} reports down" : "the tunnel is not open");
        var age = s.LastStatusAt is { } at ? s.Now - at : (TimeSpan?)null;
        Check(
            "dataPlane",
            age is { } a && a <= o.Readiness.StatusMaxAge,
            $"driver status read {age?.TotalSeconds:0.0} s ago",
            age is null
                ? $"no status read from the driver yet{(s.LastStatusError is null ? string.Empty : $" ({s.LastStatusError})")}"
                : $"last driver status is {age.Value.TotalSeconds:0.0} s old (limit {o.Readiness.StatusMaxAge.TotalSeconds:0} s){(s.LastStatusError is null ? string.Empty : $": {s.LastStatusError}")}");
        if (o.Readiness.RequireHandshake)
        {
            Check("handshake", s.PeersActive > 0, $"{s.PeersActive} peer(s) with a handshake in the last {s.ActiveWindow.TotalSeconds:0} s", $"no handshake in the last {s.ActiveWindow.TotalSeconds:0} s");
        }

        return new Readiness(ready, checks);
    }

    private string NameOf(string publicKey, string? reported) =>
        reported ?? _configuredNames.GetValueOrDefault(publicKey) ?? (publicKey.Length > 8 ? publicKey[..8] : publicKey);

    private void Count(string @event, long by = 1) => _events[@event] = _events.GetValueOrDefault(@event) + by;

    private sealed class PeerTrack
    {
        public string Name { get; set; } = string.Empty;

        public DateTimeOffset? LastHandshake { get; set; }

        public string? Endpoint { get; set; }

        public bool Connected { get; set; }

        public PeerStatus Status { get; set; } = new(string.Empty, null, null, 0, 0);
    }
}
