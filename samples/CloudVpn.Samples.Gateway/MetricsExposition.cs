using System.Globalization;
using System.Reflection;
using System.Text;

namespace CloudVpn.Samples.Gateway;

/// <summary>
/// Writes the gateway's metrics in the Prometheus text exposition format (version 0.0.4). Every family is
/// announced with HELP and TYPE on every scrape, even when it has no sample yet, so the set is stable; the
/// documented list is docs/metrics.md.
/// </summary>
internal static class MetricsExposition
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>The gateway's version as reported in <c>cloudvpn_gateway_info</c>.</summary>
    public static string Version { get; } =
        typeof(MetricsExposition).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static string Write(GatewaySnapshot s, bool ready)
    {
        var w = new Writer();
        w.Family("cloudvpn_gateway_info", "gauge", "Always 1; labels name the gateway version, the tunnel driver in use and its family, and the interface.");
        if (s.DriverName is not null)
        {
            w.Sample("cloudvpn_gateway_info", 1, ("version", Version), ("driver", s.DriverName), ("family", s.DriverFamily ?? string.Empty), ("interface", s.Interface));
        }

        w.Family("cloudvpn_gateway_ready", "gauge", "1 when /readyz answers ready (key loaded, tunnel up, data plane answering), else 0.");
        w.Sample("cloudvpn_gateway_ready", ready ? 1 : 0);
        w.Family("cloudvpn_tunnel_up", "gauge", "1 when the tunnel device is open and reports up.");
        w.Sample("cloudvpn_tunnel_up", s.TunnelUp ? 1 : 0);
        w.Family("cloudvpn_tunnel_mtu_bytes", "gauge", "MTU of the tunnel device.");
        if (s.TunnelOpen)
        {
            w.Sample("cloudvpn_tunnel_mtu_bytes", s.Mtu);
        }

        w.Family("cloudvpn_status_age_seconds", "gauge", "Seconds since the driver's status was last read successfully.");
        if (s.LastStatusAt is { } at)
        {
            w.Sample("cloudvpn_status_age_seconds", (s.Now - at).TotalSeconds);
        }

        w.Family("cloudvpn_configured_peers", "gauge", "Peers in the gateway's configuration (peers.json).");
        w.Sample("cloudvpn_configured_peers", s.PeersConfigured);
        w.Family("cloudvpn_active_peers", "gauge", "Peers whose last handshake is younger than the active window (3 minutes by default).");
        w.Sample("cloudvpn_active_peers", s.PeersActive);

        w.Family("cloudvpn_handshakes_total", "counter", "Handshakes by result: success (a session was established) or failure (a handshake message was rejected).");
        w.Sample("cloudvpn_handshakes_total", s.HandshakesSucceeded, ("result", "success"));
        w.Sample("cloudvpn_handshakes_total", s.HandshakeFailures.Values.Sum(), ("result", "failure"));
        w.Family("cloudvpn_handshake_failures_total", "counter", "Rejected handshake messages by reason, as the driver reports them.");
        foreach (var (reason, count) in s.HandshakeFailures.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            w.Sample("cloudvpn_handshake_failures_total", count, ("reason", reason));
        }

        w.Family("cloudvpn_drops_total", "counter", "Packets dropped by the data plane, by reason, as the driver reports them.");
        foreach (var (reason, count) in s.Drops.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            w.Sample("cloudvpn_drops_total", count, ("reason", reason));
        }

        var peers = s.Peers.OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        w.Family("cloudvpn_peer_receive_bytes_total", "counter", "Bytes received from the peer through the tunnel.");
        peers.ForEach(p => w.Sample("cloudvpn_peer_receive_bytes_total", p.ReceivedBytes, ("peer", p.Name)));
        w.Family("cloudvpn_peer_transmit_bytes_total", "counter", "Bytes sent to the peer through the tunnel.");
        peers.ForEach(p => w.Sample("cloudvpn_peer_transmit_bytes_total", p.TransmittedBytes, ("peer", p.Name)));
        w.Family("cloudvpn_peer_receive_packets_total", "counter", "Packets received from the peer (only when the driver counts packets).");
        peers.Where(p => p.ReceivedPackets is not null).ToList().ForEach(p => w.Sample("cloudvpn_peer_receive_packets_total", p.ReceivedPackets!.Value, ("peer", p.Name)));
        w.Family("cloudvpn_peer_transmit_packets_total", "counter", "Packets sent to the peer (only when the driver counts packets).");
        peers.Where(p => p.TransmittedPackets is not null).ToList().ForEach(p => w.Sample("cloudvpn_peer_transmit_packets_total", p.TransmittedPackets!.Value, ("peer", p.Name)));
        w.Family("cloudvpn_peer_last_handshake_age_seconds", "gauge", "Seconds since the peer's last completed handshake (no sample before its first).");
        peers.Where(p => p.LastHandshake is not null).ToList().ForEach(p => w.Sample("cloudvpn_peer_last_handshake_age_seconds", Math.Max(0, (s.Now - p.LastHandshake!.Value).TotalSeconds), ("peer", p.Name)));
        w.Family("cloudvpn_peer_connected", "gauge", "1 while the peer counts as connected (handshake within the active window).");
        peers.ForEach(p => w.Sample("cloudvpn_peer_connected", p.Connected ? 1 : 0, ("peer", p.Name)));

        w.Family("cloudvpn_key_version", "gauge", "Key store version of the gateway key in use.");
        if (s.Key is { } key)
        {
            w.Sample("cloudvpn_key_version", key.Version);
        }

        w.Family("cloudvpn_key_age_seconds", "gauge", "Seconds since the gateway key in use was written to the key store.");
        if (s.Key is { } k)
        {
            w.Sample("cloudvpn_key_age_seconds", Math.Max(0, (s.Now - k.CreatedAt).TotalSeconds));
        }

        w.Family("cloudvpn_key_rotations_total", "counter", "Gateway key rotations taken into use since the process started.");
        w.Sample("cloudvpn_key_rotations_total", s.KeyRotations);

        w.Family("cloudvpn_connection_events_total", "counter", "Connection events logged, by event.");
        foreach (var e in new[] { ConnectionEvents.PeerConnectedEvent, ConnectionEvents.PeerDisconnectedEvent, ConnectionEvents.HandshakeFailedEvent, ConnectionEvents.EndpointChangedEvent, ConnectionEvents.KeyRotatedEvent })
        {
            w.Sample("cloudvpn_connection_events_total", s.Events.GetValueOrDefault(e), ("event", e));
        }

        w.Family("cloudvpn_peers_file_reloads_total", "counter", "Loads of peers.json by result (error: the file did not parse and the previous peers stay).");
        w.Sample("cloudvpn_peers_file_reloads_total", s.PeersFileReloads, ("result", "success"));
        w.Sample("cloudvpn_peers_file_reloads_total", s.PeersFileErrors, ("result", "error"));
        return w.ToString();
    }

    private sealed class Writer
    {
        private readonly StringBuilder _text = new();

        public void Family(string name, string type, string help) =>
            _text.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n')
                 .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

        public void Sample(string name, double value, params (string Name, string Value)[] labels)
        {
            _text.Append(name);
            if (labels.Length > 0)
            {
                _text.Append('{');
                for (var i = 0; i < labels.Length; i++)
                {
                    if (i > 0)
                    {
                        _text.Append(',');
                    }

                    _text.Append(labels[i].Name).Append("=\"").Append(Escape(labels[i].Value)).Append('"');
                }

                _text.Append('}');
            }

            _text.Append(' ').Append(Format(value)).Append('\n');
        }

        public override string ToString() => _text.ToString();

        private static string Escape(string value) =>
            value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

        private static string Format(double value) => value switch
        {
            double.NaN => "NaN",
            double.PositiveInfinity => "+Inf",
            double.NegativeInfinity => "-Inf",
            _ => value.ToString("R", CultureInfo.InvariantCulture),
        };
    }
}
