using Microsoft.Extensions.Logging;

namespace CloudVpn.Samples.Gateway;

/// <summary>
/// Connection events as structured log lines. With the JSON console formatter each is one JSON object whose
/// <c>State</c> carries <c>Event</c> (a stable snake_case name) and the fields of the event, ready for Loki,
/// Elasticsearch or a SIEM. The logger category is <c>CloudVpn.Gateway.Events</c>.
/// </summary>
internal sealed partial class ConnectionEvents(ILoggerFactory loggerFactory)
{
    public const string Category = "CloudVpn.Gateway.Events";
    public const string PeerConnectedEvent = "peer_connected";
    public const string PeerDisconnectedEvent = "peer_disconnected";
    public const string HandshakeFailedEvent = "handshake_failed";
    public const string EndpointChangedEvent = "endpoint_changed";
    public const string KeyRotatedEvent = "key_rotated";

    private readonly ILogger _logger = loggerFactory.CreateLogger(Category);

    public void PeerConnected(string peer, string publicKey, string? endpoint) => LogPeerConnected(_logger, PeerConnectedEvent, peer, publicKey, endpoint ?? "unknown");

    public void PeerDisconnected(string peer, string publicKey, string reason, double? lastHandshakeAgeSeconds) =>
        LogPeerDisconnected(_logger, PeerDisconnectedEvent, peer, publicKey, reason, lastHandshakeAgeSeconds ?? -1);

    public void HandshakeFailed(string reason, long count) => LogHandshakeFailed(_logger, HandshakeFailedEvent, reason, count);

    public void EndpointChanged(string peer, string publicKey, string? oldEndpoint, string newEndpoint) =>
        LogEndpointChanged(_logger, EndpointChangedEvent, peer, publicKey, oldEndpoint ?? "none", newEndpoint);

    public void KeyRotated(long oldVersion, long newVersion, string newPublicKey) => LogKeyRotated(_logger, KeyRotatedEvent, oldVersion, newVersion, newPublicKey);

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "{Event}: peer {Peer} ({PublicKey}) connected from {Endpoint}")]
    private static partial void LogPeerConnected(ILogger logger, string Event, string peer, string publicKey, string endpoint);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "{Event}: peer {Peer} ({PublicKey}) disconnected: {Reason}; last handshake {LastHandshakeAgeSeconds} s ago (-1: never)")]
    private static partial void LogPeerDisconnected(ILogger logger, string Event, string peer, string publicKey, string reason, double lastHandshakeAgeSeconds);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "{Event}: {Count} handshake message(s) rejected: {Reason}")]
    private static partial void LogHandshakeFailed(ILogger logger, string Event, string reason, long count);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "{Event}: peer {Peer} ({PublicKey}) moved from {OldEndpoint} to {NewEndpoint}")]
    private static partial void LogEndpointChanged(ILogger logger, string Event, string peer, string publicKey, string oldEndpoint, string newEndpoint);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "{Event}: gateway key version {OldVersion} replaced by {NewVersion} (public key {PublicKey})")]
    private static partial void LogKeyRotated(ILogger logger, string Event, long oldVersion, long newVersion, string publicKey);
}
