using System.Net.Sockets;
using CloudVpn.WireGuard.Protocol;
using CloudVpn.WireGuard.Uapi;

namespace CloudVpn.WireGuard.Device;

/// <summary>
/// The userspace API view of a <see cref="WireGuardDevice"/>: <c>get=1</c> reads the engine's peers and the bound
/// port, <c>set=1</c> applies a request in wireguard-go's order (private key, listen port, fwmark, replace_peers,
/// then each peer section).
/// </summary>
internal sealed class EngineUapiDevice : IUapiDevice
{
    private readonly Func<WireGuardEngine> _engine;
    private readonly Func<int> _listenPort;
    private readonly Action<ushort> _setListenPort;
    private readonly Action<uint> _setFirewallMark;

    public EngineUapiDevice(WireGuardDevice device)
        : this(() => device.Engine, () => device.ListenPort, port => device.SetListenPort(port), device.SetFirewallMark)
    {
    }

    /// <summary>The same view over a bare engine and the socket operations of whatever owns the UDP socket (benchmarks use it without a TUN).</summary>
    public EngineUapiDevice(Func<WireGuardEngine> engine, Func<int> listenPort, Action<ushort> setListenPort, Action<uint> setFirewallMark)
    {
        _engine = engine;
        _listenPort = listenPort;
        _setListenPort = setListenPort;
        _setFirewallMark = setFirewallMark;
    }

    public UapiDeviceState Get()
    {
        var engine = _engine();
        var privateKey = engine.PrivateKey; // a copy: the state owns and zeroes it
        var peers = engine.GetPeers();
        return new UapiDeviceState
        {
            PrivateKey = privateKey,
            ListenPort = (ushort)_listenPort(),
            FirewallMark = engine.FirewallMark,
            Peers = [.. peers.Select(p => new UapiPeerState
            {
                PublicKey = p.PublicKey,
                PresharedKey = p.PresharedKey, // the snapshot's copy: the state owns and zeroes it
                Endpoint = p.Endpoint,
                LastHandshake = p.LastHandshake,
                ReceivedBytes = (ulong)p.RxBytes,
                TransmittedBytes = (ulong)p.TxBytes,
                PersistentKeepaliveInterval = p.PersistentKeepalive,
                AllowedIps = p.AllowedIps,
            })],
        };
    }

    public void Set(UapiSetRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var engine = _engine();
        if (request.PrivateKey is { } key)
        {
            engine.PrivateKey = key.IsZero ? null : key; // the engine keeps its own copy
        }

        if (request.ListenPort is { } port)
        {
            try
            {
                _setListenPort(port);
            }
            catch (SocketException ex)
            {
                throw new UapiException(UapiErrno.AddressInUse, $"Cannot listen on UDP port {port}: {ex.Message}");
            }
        }

        if (request.FirewallMark is { } mark)
        {
            try
            {
                _setFirewallMark(mark);
            }
            catch (SocketException ex)
            {
                throw new UapiException(UapiErrno.IO, $"Cannot set firewall mark {mark}: {ex.Message}");
            }
        }

        if (request.ReplacePeers)
        {
            engine.RemoveAllPeers();
        }

        foreach (var peer in request.Peers)
        {
            if (peer.Remove)
            {
                engine.RemovePeer(peer.PublicKey);
                continue;
            }

            engine.SetPeer(new WireGuardPeerConfig
            {
                PublicKey = peer.PublicKey,
                PresharedKey = peer.PresharedKey,
                Endpoint = peer.Endpoint,
                PersistentKeepalive = peer.PersistentKeepaliveInterval,
                AllowedIps = peer.ReplaceAllowedIps || peer.AllowedIps.Count > 0 ? peer.AllowedIps : null,
                ReplaceAllowedIps = peer.ReplaceAllowedIps,
                UpdateOnly = peer.UpdateOnly,
            });
        }
    }
}
