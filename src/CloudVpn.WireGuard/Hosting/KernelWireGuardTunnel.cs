using System.Net;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Netlink;
using Microsoft.Extensions.Logging;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>
/// A kernel WireGuard interface opened by <see cref="KernelWireGuardDriver"/>. Every apply reads the device back from
/// the kernel and sends only the difference (<see cref="WireGuardConfigDiff"/>), so a change to one peer of thousands
/// costs one small netlink message.
/// </summary>
internal sealed partial class KernelWireGuardTunnel : ITunnel
{
    private const int Enodev = 19;

    private readonly KernelTunnelSettings _settings;
    private readonly IKeyStoreProvider _keys;
    private readonly ILogger _logger;
    private readonly RtNetlink _rt;
    private readonly WireGuardNetlink _wg;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HashSet<IPNetwork> _routes = [];
    private Dictionary<WireGuardPublicKey, string> _names = [];
    private int _index;
    private bool _closed;

    private KernelWireGuardTunnel(string name, KernelTunnelSettings settings, IKeyStoreProvider keys, ILogger logger, RtNetlink rt, WireGuardNetlink wg, int index)
    {
        Name = name;
        _settings = settings;
        _keys = keys;
        _logger = logger;
        _rt = rt;
        _wg = wg;
        _index = index;
    }

    public string Name { get; }

    public string DriverName => KernelWireGuardDriver.DriverName;

    /// <summary>Generic netlink messages sent to set the device so far (one-peer changes should add one).</summary>
    internal long SetMessagesSent => _wg.SetMessagesSent;

    /// <summary>Opens the netlink sockets and creates the interface, or adopts an existing WireGuard interface of that name.</summary>
    public static KernelWireGuardTunnel Create(string name, KernelTunnelSettings settings, IKeyStoreProvider keys, ILogger logger)
    {
        var rt = settings.NetworkNamespace is { } ns ? RtNetlink.Open(ns) : RtNetlink.Open();
        WireGuardNetlink? wg = null;
        try
        {
            wg = WireGuardNetlink.Open(settings.NetworkNamespace);
            var index = rt.GetLinkIndex(name);
            if (index > 0)
            {
                // Adopt it only when it really is WireGuard: GET_DEVICE fails with EOPNOTSUPP on other kinds.
                try
                {
                    wg.GetDevice(name).Dispose();
                }
                catch (NetlinkException e)
                {
                    throw new InvalidOperationException($"Interface '{name}' exists but is not a WireGuard interface ({e.ErrorName}); remove it or choose another name.", e);
                }

                LogAdopted(logger, name, index);
            }
            else
            {
                index = rt.CreateLink(name, "wireguard");
                LogCreated(logger, name, index);
            }

            return new KernelWireGuardTunnel(name, settings, keys, logger, rt, wg, index);
        }
        catch
        {
            wg?.Dispose();
            rt.Dispose();
            throw;
        }
    }

    public async ValueTask<TunnelApplyResult> ApplyAsync(TunnelSpec desired, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(desired);
        if (!string.Equals(desired.Device.Name, Name, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Device.Name: '{desired.Device.Name}' differs from the open tunnel '{Name}'; open a new tunnel to rename.", nameof(desired));
        }

        if (KernelTunnelSettings.From(desired) != _settings)
        {
            throw new ArgumentException("DriverSettings of wireguard-kernel cannot change on an open tunnel; close it and open a new one.", nameof(desired));
        }

        using var state = await DesiredState.ResolveAsync(desired, _keys, cancellationToken);
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

    /// <summary>Brings link and device to <paramref name="state"/>; the caller serializes calls.</summary>
    internal TunnelApplyResult Apply(DesiredState state, bool initial)
    {
        if (state.Device.AdditionalPrivateKey is { } additional)
        {
            // The kernel module holds one static key: a rotation of it switches peers and device at the switch phase.
            LogAdditionalKeyIgnored(_logger, Name, additional.ToString());
        }

        var linkChanged = ApplyLink(state.Device, state.Addresses);

        var config = new WireGuardInterfaceConfig
        {
            PrivateKey = state.PrivateKey,
            ListenPort = (ushort)state.Device.ListenPort,
            FirewallMark = state.Device.FirewallMark,
        };
        foreach (var peer in state.Peers)
        {
            var wanted = new WireGuardInterfacePeer(peer.PublicKey)
            {
                PresharedKey = peer.PresharedKey,
                Endpoint = peer.Endpoint,
                PersistentKeepaliveInterval = peer.PersistentKeepalive,
            };
            wanted.AllowedIps.AddRange(peer.AllowedIps);
            config.Peers.Add(wanted);
        }

        WireGuardDiff diff;
        using (var current = _wg.GetDevice(Name))
        {
            diff = WireGuardConfigDiff.Compute(current, config);
        }

        var messages = diff.Update.IsEmpty ? 0 : _wg.SetDevice(Name, diff.Update);
        if (initial)
        {
            _rt.SetLinkUp(_index, true);
        }

        if (_settings.InstallRoutes)
        {
            ApplyRoutes(state.Peers.SelectMany(p => p.AllowedIps).ToHashSet());
        }

        _names = state.Peers.ToDictionary(p => p.PublicKey, p => p.DisplayName);
        var result = new TunnelApplyResult(
            linkChanged || diff.DeviceChanged,
            [.. diff.Added.Select(k => k.ToBase64())],
            [.. diff.Updated.Select(k => k.ToBase64())],
            [.. diff.Removed.Select(k => k.ToBase64())]);
        if (!result.IsNoOp)
        {
            LogApplied(_logger, Name, result.DeviceChanged, result.PeersAdded.Count, result.PeersUpdated.Count, result.PeersRemoved.Count, messages);
        }

        return result;
    }

    public async ValueTask<TunnelStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            var link = _rt.GetLinkState(_index);
            using var device = _wg.GetDevice(Name);
            var peers = device.Peers.Select(p => new PeerStatus(
                p.PublicKey.ToBase64(),
                p.Endpoint?.ToString(),
                p.LastHandshake,
                (long)p.ReceivedBytes,
                (long)p.TransmittedBytes)
            {
                Name = _names.GetValueOrDefault(p.PublicKey),
                AllowedIps = [.. p.AllowedIps],
            }).ToArray();
            return new TunnelStatus(Name, DriverName, link is { IsUp: true }, device.ListenPort, device.PublicKey?.ToBase64(), link?.Mtu ?? 0, peers);
        }
        finally
        {
            _gate.Release();
        }
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
            if (!_settings.KeepInterface)
            {
                try
                {
                    _rt.DeleteLink(_index); // addresses and routes go with the interface
                }
                catch (NetlinkException e) when (e.Errno == Enodev)
                {
                }
            }

            _wg.Dispose();
            _rt.Dispose();
            LogClosed(_logger, Name, _settings.KeepInterface ? "left running (keep-interface)" : "deleted");
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

    private bool ApplyLink(DeviceSpec device, IReadOnlySet<(IPAddress Address, int PrefixLength)> addresses)
    {
        var changed = false;
        var state = _rt.GetLinkState(_index);
        if (state is null)
        {
            // Someone deleted the interface; a stale index would configure nothing.
            var index = _rt.GetLinkIndex(Name);
            _index = index > 0 ? index : throw new InvalidOperationException($"The interface '{Name}' has disappeared.");
            state = _rt.GetLinkState(_index);
        }

        if (state is { } s && s.Mtu != device.Mtu)
        {
            _rt.SetLinkMtu(_index, device.Mtu);
            changed = true;
        }

        // the effective interface addresses (DeviceSpec.InterfaceAddresses and exact /32, /128 Addresses), host bits kept
        var wanted = addresses.ToHashSet();
        var present = _rt.GetAddresses(_index).Where(a => !a.Address.IsIPv6LinkLocal).ToHashSet();
        foreach (var (address, prefix) in present.Where(a => !wanted.Contains(a)))
        {
            _rt.DeleteAddress(_index, address, prefix);
            changed = true;
        }

        foreach (var (address, prefix) in wanted.Where(a => !present.Contains(a)))
        {
            _rt.AddAddress(_index, address, prefix);
            changed = true;
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

        foreach (var network in _routes.Where(n => !wanted.Contains(n)).ToArray())
        {
            _rt.TryDeleteRoute(_index, network);
            _routes.Remove(network);
        }

        foreach (var network in wanted.Where(n => !_routes.Contains(n)).ToArray())
        {
            _rt.ReplaceRoute(_index, network);
            _routes.Add(network);
        }
    }

    [LoggerMessage(EventId = 25, Level = LogLevel.Information, Message = "Tunnel {Name}: Device.AdditionalPrivateKey ({Key}) ignored: the kernel's WireGuard answers handshakes under one private key only; peers move at the rotation's switch")]
    private static partial void LogAdditionalKeyIgnored(ILogger logger, string name, string key);

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Kernel WireGuard interface {Name} created (index {Index})")]
    private static partial void LogCreated(ILogger logger, string name, int index);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Kernel WireGuard interface {Name} already exists (index {Index}); adopting it")]
    private static partial void LogAdopted(ILogger logger, string name, int index);

    [LoggerMessage(EventId = 22, Level = LogLevel.Information, Message = "Tunnel {Name} applied: device changed {DeviceChanged}, peers +{Added} ~{Updated} -{Removed} in {Messages} netlink message(s)")]
    private static partial void LogApplied(ILogger logger, string name, bool deviceChanged, int added, int updated, int removed, int messages);

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "Tunnel {Name}: no route installed for {Network}; a default route through the tunnel needs policy routing set by the host")]
    private static partial void LogDefaultRouteSkipped(ILogger logger, string name, string network);

    [LoggerMessage(EventId = 24, Level = LogLevel.Information, Message = "Tunnel {Name} closed; kernel interface {Outcome}")]
    private static partial void LogClosed(ILogger logger, string name, string outcome);
}
