using System.Net;
using System.Net.Sockets;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Protocol;
using CloudVpn.WireGuard.Tun;
using CloudVpn.WireGuard.Uapi;
using CloudVpn.WireGuard.Udp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Device;

/// <summary>
/// A userspace WireGuard interface: a TUN device, a UDP socket and a <see cref="WireGuardEngine"/> joined together,
/// plus (optionally) the userspace API socket so that <c>wg</c> drives it as it drives wireguard-go. Packets flow
/// TUN read -> engine (route, encrypt) -> UDP send and UDP receive -> engine (decrypt, check) -> TUN write, each
/// direction on its own reader thread, in batches (TUN super-packets split, recvmmsg/GRO), with the cryptography of a
/// batch spread over the crypto workers and the batch written on in order (sendmmsg/GSO, coalesced TUN writes).
/// </summary>
public sealed partial class WireGuardDevice : IAsyncDisposable
{
    private readonly TunDevice _tun;
    private readonly UdpBind _udp;
    private readonly ILogger _logger;
    private readonly ITimer _housekeeping;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _configGate = new();
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle? _netns;
    private readonly string? _netnsId;
    private UapiServer? _uapi;
    private int _disposed;

    private WireGuardDevice(TunDevice tun, UdpBind udp, WireGuardEngine engine, ILogger logger, TimeProvider time, int mtu)
    {
        _tun = tun;
        _udp = udp;
        Engine = engine;
        _logger = logger;
        Mtu = mtu;
        UapiDevice = new EngineUapiDevice(this);

        // Remember the network namespace the device was created in: a socket made later (a new listen port) must be
        // made there too, whichever thread asks for it.
        _netnsId = CurrentNetnsId();
        if (_netnsId is not null)
        {
            _netns = File.OpenHandle(ThreadNetnsPath);
        }
        _housekeeping = time.CreateTimer(_ => Housekeep(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>The interface name.</summary>
    public string Name => _tun.Name;

    /// <summary>The protocol engine (keys, peers, counters).</summary>
    public WireGuardEngine Engine { get; }

    /// <summary>The UDP port bound.</summary>
    public int ListenPort => _udp.Port;

    /// <summary>The MTU the engine pads to (followed when the interface MTU is changed with <c>ip link</c>).</summary>
    public int Mtu { get; private set; }

    /// <summary>The device as the userspace API sees it (what the socket serves).</summary>
    public IUapiDevice UapiDevice { get; }

    /// <summary>
    /// Completes when the device must stop on its own: its API socket file was removed (the way to stop wireguard-go),
    /// the interface was deleted or the TUN failed; <see cref="CloseReason"/> says which. Also completes on dispose.
    /// </summary>
    public Task Closed => _closed.Task;

    /// <summary>Why <see cref="Closed"/> completed; null while the device runs.</summary>
    public string? CloseReason { get; private set; }

    /// <summary>The data-path options the device was created with.</summary>
    public WireGuardDataPathOptions DataPath { get; private set; } = new();

    /// <summary>What the kernel accepted: TUN offloads and UDP batching features in force.</summary>
    public (TunOffloads Tun, UdpOffloads Udp) ActiveOffloads => (_tun.ActiveOffloads, _udp.ActiveOffloads);

    /// <summary>IP packets read from and written to the TUN device (segments, after splitting super-packets).</summary>
    public (long Read, long Written) TunPackets => (_tun.PacketsRead, _tun.PacketsWritten);

    /// <summary>TSO super-packets read from the TUN device (then split) and coalesced ones written to it.</summary>
    public (long Read, long Written) TunSuperPackets => (_tun.SuperPacketsRead, _tun.SuperPacketsWritten);

    /// <summary>Packets the kernel refused on the TUN, and datagrams it refused on UDP.</summary>
    public (long TunWriteErrors, long UdpSendErrors) IoErrors => (_tun.WriteErrors, _udp.SendErrors);

    /// <summary>Creates the interface, binds the socket, starts both reader threads and, when asked, the API socket.</summary>
    /// <exception cref="IOException">The TUN device cannot be created (the message says why).</exception>
    /// <exception cref="SocketException">The listen port cannot be bound.</exception>
    public static WireGuardDevice Create(WireGuardDeviceOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        loggerFactory ??= NullLoggerFactory.Instance;
        time ??= TimeProvider.System;
        var dataPath = options.DataPath ?? new WireGuardDataPathOptions();
        var tun = TunDevice.Create(options.Name, dataPath.Tun);
        UdpBind? udp = null;
        WireGuardEngine? engine = null;
        WireGuardDevice? device = null;
        try
        {
            tun.SetMtu(options.Mtu);
            udp = UdpBind.Open(options.ListenPort, options.FirewallMark, dataPath.Udp);
            var transport = new DeviceTransport(tun, udp);
            engine = new WireGuardEngine(transport, time, loggerFactory.CreateLogger<WireGuardEngine>())
            {
                Mtu = options.Mtu,
                ListenPort = (ushort)udp.Port,
                FirewallMark = options.FirewallMark,
            };
            if (dataPath.CryptoWorkers is { } workers)
            {
                engine.CryptoWorkers = workers;
            }

            device = new WireGuardDevice(tun, udp, engine, loggerFactory.CreateLogger<WireGuardDevice>(), time, options.Mtu);
            var e = engine;
            device.DataPath = dataPath;
            if (dataPath.Batching)
            {
                tun.StartBatchReader(e.HandleTunBatch, device.OnTunError);
                udp.StartReceivingBatches(e.HandleDatagramBatch, device.OnUdpHandlerError);
            }
            else
            {
                tun.StartReader(e.HandleTunPacket, device.OnTunError);
                udp.StartReceiving(e.HandleDatagram, device.OnUdpHandlerError);
            }
            if (options.BringUp)
            {
                tun.SetUp(true);
            }

            if (options.UapiSocketDirectory is not null)
            {
                try
                {
                    device._uapi = UapiServer.Start(tun.Name, device.UapiDevice, loggerFactory.CreateLogger<UapiServer>(), options.UapiSocketDirectory);
                }
                catch (Exception ex) when (!options.UapiSocketRequired && ex is IOException or UnauthorizedAccessException or SocketException)
                {
                    LogNoUapi(device._logger, tun.Name, options.UapiSocketDirectory, ex.Message);
                }
            }

            if (device._uapi is not null)
            {
                device._uapi.SocketRemoved.ContinueWith(
                    t => device.OnSocketRemoved(t.IsCompletedSuccessfully),
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }

            LogCreated(device._logger, tun.Name, udp.Port, options.Mtu, udp.IsDualStack);
            LogDataPath(device._logger, tun.Name, dataPath.Batching, engine.CryptoWorkers, tun.ActiveOffloads, udp.ActiveOffloads);
            return device;
        }
        catch
        {
            device?._housekeeping.Dispose();
            device?._netns?.Dispose();
            engine?.Dispose();
            udp?.Dispose();
            tun.Dispose();
            throw;
        }
    }

    /// <summary>Moves the UDP socket to <paramref name="port"/> (0: a free port), as <c>wg set listen-port</c> does.</summary>
    /// <exception cref="SocketException">The port is taken; the old one stays bound.</exception>
    public void SetListenPort(int port)
    {
        lock (_configGate)
        {
            if (_netns is not null && !string.Equals(CurrentNetnsId(), _netnsId, StringComparison.Ordinal))
            {
                NetworkNamespace.Run($"/proc/self/fd/{_netns.DangerousGetHandle()}", () =>
                {
                    _udp.Rebind(port);
                    return 0;
                });
            }
            else
            {
                _udp.Rebind(port);
            }

            Engine.ListenPort = (ushort)_udp.Port;
        }
    }

    private const string ThreadNetnsPath = "/proc/thread-self/ns/net";

    private static string? CurrentNetnsId()
    {
        try
        {
            return File.ResolveLinkTarget(ThreadNetnsPath, returnFinalTarget: false)?.FullName is { } target ? Path.GetFileName(target) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Sets the firewall mark of the device's UDP packets (0 removes it).</summary>
    public void SetFirewallMark(uint mark)
    {
        lock (_configGate)
        {
            if (mark == Engine.FirewallMark)
            {
                return;
            }

            _udp.SetFirewallMark(mark);
            Engine.FirewallMark = mark;
        }
    }

    /// <summary>Sets the interface MTU (and the engine's padding limit).</summary>
    public void SetMtu(int mtu)
    {
        _tun.SetMtu(mtu);
        Mtu = mtu;
        Engine.Mtu = mtu;
    }

    /// <summary>Brings the interface up or down.</summary>
    public void SetUp(bool up) => _tun.SetUp(up);

    /// <summary>Stops the API socket, both readers and the engine, and deletes the interface.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _housekeeping.DisposeAsync();
        if (_uapi is not null)
        {
            await _uapi.DisposeAsync();
        }

        _udp.Dispose();
        _tun.Dispose();
        Engine.Dispose();
        _netns?.Dispose();
        Close("disposed");
    }

    private void Close(string reason)
    {
        lock (_configGate)
        {
            CloseReason ??= reason;
        }

        _closed.TrySetResult();
    }

    private void OnSocketRemoved(bool removed)
    {
        if (removed)
        {
            LogTunGone(_logger, Name, "its API socket file was removed");
            Close("the API socket file was removed");
        }
    }

    private void Housekeep()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            // wireguard-go follows MTU changes made with `ip link set mtu`; so do we.
            var mtu = _tun.Mtu;
            if (mtu != Mtu)
            {
                Mtu = mtu;
                Engine.Mtu = mtu;
            }
        }
        catch (IOException)
        {
            // the interface is gone: the TUN reader reports it
        }
        catch (ObjectDisposedException)
        {
            // disposed while this tick ran
        }
    }

    private void OnTunError(Exception error)
    {
        if (error is IOException)
        {
            LogTunGone(_logger, Name, error.Message);
            Close($"the TUN device failed: {error.Message}");
        }
        else
        {
            LogHandlerError(_logger, "TUN", error);
        }
    }

    private void OnUdpHandlerError(Exception error) => LogHandlerError(_logger, "UDP", error);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "WireGuard device {Name} up: UDP port {Port}, MTU {Mtu}, dual-stack {DualStack}")]
    private static partial void LogCreated(ILogger logger, string name, int port, int mtu, bool dualStack);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "WireGuard device {Name} data path: batching {Batching}, crypto workers {Workers}, TUN offloads {TunOffloads}, UDP {UdpOffloads}")]
    private static partial void LogDataPath(ILogger logger, string name, bool batching, int workers, TunOffloads tunOffloads, UdpOffloads udpOffloads);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "WireGuard device {Name} stopped: {Reason}")]
    private static partial void LogTunGone(ILogger logger, string name, string reason);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "WireGuard device {Name} runs without the wg socket in {Directory}: {Reason}")]
    private static partial void LogNoUapi(ILogger logger, string name, string directory, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "The engine threw on the {Path} path (the packet was dropped)")]
    private static partial void LogHandlerError(ILogger logger, string path, Exception error);

    private sealed class DeviceTransport(TunDevice tun, UdpBind udp) : IWireGuardTransport
    {
        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination) => udp.Send(datagram, destination);

        public void WriteToTun(ReadOnlySpan<byte> ipPacket) => tun.Write(ipPacket);

        public void SendDatagrams(PacketBatch batch) => udp.SendBatch(batch);

        public void WriteToTun(PacketBatch batch) => tun.WriteBatch(batch);
    }
}
