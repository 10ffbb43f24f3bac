using System.Net;
using System.Net.Sockets;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Device;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>
/// A tunnel opened by <see cref="UserspaceWireGuardDriver"/>: one <see cref="WireGuardDevice"/>, its addresses, MTU and
/// routes (through rtnetlink), and the peers last applied, so that <see cref="ApplyAsync"/> changes only what differs.
/// </summary>
internal sealed partial class UserspaceWireGuardTunnel : ITunnel
{
    private readonly WireGuardDevice _device;
    private readonly UserspaceTunnelSettings _settings;
    private readonly IKeyStoreProvider _keys;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<WireGuardPublicKey, DesiredPeer> _applied = [];
    private readonly HashSet<IPNetwork> _routes = [];
    private bool _closed;

    public UserspaceWireGuardTunnel(WireGuardDevice device, UserspaceTunnelSettings settings, IKeyStoreProvider keys, ILogger logger)
    {
        _device = device;
        _settings = settings;
        _keys = keys;
        _logger = logger;
    }

    public string Name => _device.Name;

    public string DriverName => UserspaceWireGuardDriver.DriverName;

    /// <summary>The device (for tests and hosts that want the engine's counters).</summary>
    internal WireGuardDevice Device => _device;

    public async ValueTask<TunnelApplyResult> ApplyAsync(TunnelSpec desired, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(desired);
        if (!string.Equals(desired.Device.Name, Name, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Device.Name: '{desired.Device.Name}' differs from the open tunnel '{Name}'; open a new tunnel to rename.", nameof(desired));
        }

        var settings = UserspaceTunnelSettings.From(desired);
        if (settings != _settings)
        {
            throw new ArgumentException("DriverSettings of wireguard-userspace cannot change on an open tunnel; close it and open a new one.", nameof(desired));
        }

        using var state = await DesiredState.ResolveAsync(desired, _keys, cancellationToken, withAdditionalKey: true);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            return Apply(state, initial: false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Brings the device to <paramref name="state"/>; the caller serializes calls.</summary>
    internal TunnelApplyResult Apply(DesiredState state, bool initial)
    {
        var engine = _device.Engine;
        var deviceChanged = false;

        using (var current = engine.PrivateKey)
        using (var additional = engine.AdditionalPrivateKey)
        {
            var sameAdditional = additional is null ? state.AdditionalPrivateKey is null : additional.Equals(state.AdditionalPrivateKey);
            if (current is null || !current.Equals(state.PrivateKey) || !sameAdditional)
            {
                // both keys in one step: a rotation's switch (new key in force, old one still answered) never
                // passes through a moment where either key is refused
                engine.SetPrivateKeys(state.PrivateKey, state.AdditionalPrivateKey);
                deviceChanged = true;
            }
        }

        if (state.Device.ListenPort != 0 && state.Device.ListenPort != _device.ListenPort)
        {
            try
            {
                _device.SetListenPort(state.Device.ListenPort);
            }
            catch (SocketException ex)
            {
                throw new InvalidOperationException($"Device.ListenPort: cannot listen on UDP port {state.Device.ListenPort}: {ex.Message}", ex);
            }

            deviceChanged = true;
        }

        if (state.Device.FirewallMark != engine.FirewallMark)
        {
            _device.SetFirewallMark(state.Device.FirewallMark);
            deviceChanged = true;
        }

        deviceChanged |= ApplyLink(state, initial);

        var added = new List<string>();
        var updated = new List<string>();
        var removed = new List<string>();
        var wanted = state.Peers.ToDictionary(p => p.PublicKey);
        foreach (var key in _applied.Keys.Where(k => !wanted.ContainsKey(k)).ToArray())
        {
            engine.RemovePeer(key);
            _applied[key].PresharedKey?.Dispose();
            _applied.Remove(key);
            removed.Add(key.ToBase64());
        }

        foreach (var peer in state.Peers)
        {
            if (_applied.TryGetValue(peer.PublicKey, out var before))
            {
                if (before.SameSettings(peer))
                {
                    continue;
                }

                engine.SetPeer(new WireGuardPeerConfig
                {
                    PublicKey = peer.PublicKey,
                    PresharedKey = SamePsk(before, peer) ? null : peer.PresharedKey ?? ZeroKey(),
                    Endpoint = Equals(before.Endpoint, peer.Endpoint) ? null : peer.Endpoint,
                    PersistentKeepalive = before.PersistentKeepalive == peer.PersistentKeepalive ? null : peer.PersistentKeepalive,
                    AllowedIps = before.SameAllowedIps(peer) ? null : peer.AllowedIps,
                    ReplaceAllowedIps = !before.SameAllowedIps(peer),
                });
                before.PresharedKey?.Dispose();
                updated.Add(peer.PublicKey.ToBase64());
            }
            else
            {
                engine.SetPeer(new WireGuardPeerConfig
                {
                    PublicKey = peer.PublicKey,
                    PresharedKey = peer.PresharedKey,
                    Endpoint = peer.Endpoint,
                    PersistentKeepalive = peer.PersistentKeepalive,
                    AllowedIps = peer.AllowedIps,
                    ReplaceAllowedIps = true,
                });
                added.Add(peer.PublicKey.ToBase64());
            }

            _applied[peer.PublicKey] = peer with { PresharedKey = peer.PresharedKey is null ? null : new WireGuardSecretKey(peer.PresharedKey.Bytes) };
        }

        if (_settings.InstallRoutes)
        {
            ApplyRoutes(state.Peers.SelectMany(p => p.AllowedIps).ToHashSet());
        }

        var result = new TunnelApplyResult(deviceChanged, added, updated, removed);
        if (!result.IsNoOp)
        {
            LogApplied(_logger, Name, deviceChanged, added.Count, updated.Count, removed.Count);
        }

        return result;
    }

    public async ValueTask<TunnelStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        Dictionary<WireGuardPublicKey, string> names;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            names = _applied.ToDictionary(p => p.Key, p => p.Value.DisplayName);
        }
        finally
        {
            _gate.Release();
        }

        var engine = _device.Engine;
        var isUp = false;
        using (var rt = OpenRtNetlink())
        {
            var index = rt.GetLinkIndex(Name);
            isUp = index > 0 && rt.GetLinkState(index) is { IsUp: true };
        }

        var peers = engine.GetPeers().Select(p =>
        {
            p.PresharedKey?.Dispose();
            return new PeerStatus(p.PublicKey.ToBase64(), p.Endpoint?.ToString(), p.LastHandshake, p.RxBytes, p.TxBytes)
            {
                Name = names.GetValueOrDefault(p.PublicKey),
                AllowedIps = p.AllowedIps,
                ReceivedPackets = p.RxPackets,
                TransmittedPackets = p.TxPackets,
            };
        }).ToArray();
        using var privateKey = engine.PrivateKey;
        var publicKey = privateKey?.GetPublicKey().ToBase64();
        var (failures, drops) = CountersByReason(engine.Counters);
        return new TunnelStatus(Name, DriverName, isUp, _device.ListenPort, publicKey, _device.Mtu, peers)
        {
            HandshakesCompleted = engine.Counters.HandshakesCompleted,
            HandshakeFailures = failures,
            Drops = drops,
        };
    }

    /// <summary>
    /// The engine's counters as the status model's labels: rejected handshake messages (and handshakes given up,
    /// <c>timeout</c>) by reason, and every other dropped packet by reason, in snake_case.
    /// </summary>
    internal static (Dictionary<string, long> HandshakeFailures, Dictionary<string, long> Drops) CountersByReason(WireGuardEngineCounters counters)
    {
        var failures = new Dictionary<string, long>(StringComparer.Ordinal) { ["timeout"] = counters.HandshakeGiveUps };
        var drops = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var reason in Enum.GetValues<WireGuardDropReason>())
        {
            var count = counters.Drops(reason);
            switch (reason)
            {
                case WireGuardDropReason.InvalidMac1:
                    failures["invalid_mac"] = count;
                    break;
                case WireGuardDropReason.HandshakeFailed:
                    failures["handshake_failed"] = count;
                    break;
                case WireGuardDropReason.HandshakeReplayed:
                    failures["replay"] = count;
                    break;
                case WireGuardDropReason.RateLimited:
                    failures["rate_limited"] = count;
                    break;
                case WireGuardDropReason.InvalidCookieReply:
                    failures["invalid_cookie_reply"] = count;
                    break;
                default:
                    drops[SnakeCase(reason.ToString())] = count;
                    break;
            }
        }

        return (failures, drops);
    }

    private static string SnakeCase(string name)
    {
        var sb = new System.Text.StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c) && i > 0)
            {
                sb.Append('_');
            }

            sb.Append(char.ToLowerInvariant(c));
        }

        return sb.ToString();
    }

    public async ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            await _device.DisposeAsync(); // the interface goes, and its addresses and routes with it
            foreach (var peer in _applied.Values)
            {
                peer.PresharedKey?.Dispose();
            }

            _applied.Clear();
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await CloseAsync(CancellationToken.None);
        _gate.Dispose();
    }

    private static bool SamePsk(DesiredPeer a, DesiredPeer b) => a.PresharedKey is null ? b.PresharedKey is null : a.PresharedKey.Equals(b.PresharedKey);

    private static WireGuardSecretKey ZeroKey() => new(new byte[WireGuardSecretKey.Length]);

    private RtNetlink OpenRtNetlink() => _settings.NetworkNamespace is { } ns ? RtNetlink.Open(ns) : RtNetlink.Open();

    private bool ApplyLink(DesiredState state, bool initial)
    {
        var changed = false;
        using var rt = OpenRtNetlink();
        var index = rt.GetLinkIndex(Name);
        if (index <= 0)
        {
            throw new InvalidOperationException($"The interface '{Name}' has disappeared.");
        }

        var device = state.Device;
        if (device.Mtu != _device.Mtu)
        {
            rt.SetLinkMtu(index, device.Mtu);
            _device.SetMtu(device.Mtu);
            changed = true;
        }

        var wanted = state.Addresses;
        var present = rt.GetAddresses(index).Where(a => !a.Address.IsIPv6LinkLocal).ToHashSet();
        foreach (var (address, prefix) in present.Where(a => !wanted.Contains(a)))
        {
            rt.DeleteAddress(index, address, prefix);
            changed = true;
        }

        foreach (var (address, prefix) in wanted.Where(a => !present.Contains(a)))
        {
            rt.AddAddress(index, address, prefix);
            changed = true;
        }

        if (initial)
        {
            rt.SetLinkUp(index, true);
        }

        return changed;
    }

    private void ApplyRoutes(HashSet<IPNetwork> wanted)
    {
        // A default route through the tunnel would also capture the tunnel's own UDP traffic; full-tunnel routing
        // needs policy rules (as wg-quick sets with fwmark) and stays the host's decision.
        foreach (var network in wanted.Where(n => n.PrefixLength == 0).ToArray())
        {
            wanted.Remove(network);
            LogDefaultRouteSkipped(_logger, Name, network.ToString());
        }

        if (wanted.SetEquals(_routes))
        {
            return;
        }

        using var rt = OpenRtNetlink();
        var index = rt.GetLinkIndex(Name);
        foreach (var network in _routes.Where(n => !wanted.Contains(n)).ToArray())
        {
            rt.TryDeleteRoute(index, network);
            _routes.Remove(network);
        }

        foreach (var network in wanted.Where(n => !_routes.Contains(n)).ToArray())
        {
            rt.ReplaceRoute(index, network);
            _routes.Add(network);
        }
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Tunnel {Name} applied: device changed {DeviceChanged}, peers +{Added} ~{Updated} -{Removed}")]
    private static partial void LogApplied(ILogger logger, string name, bool deviceChanged, int added, int updated, int removed);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Tunnel {Name}: no route installed for {Network}; a default route through the tunnel needs policy routing set by the host")]
    private static partial void LogDefaultRouteSkipped(ILogger logger, string name, string network);
}
