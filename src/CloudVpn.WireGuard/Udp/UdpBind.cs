using CloudVpn.WireGuard.Buffers;
using System.Net;
using System.Net.Sockets;

namespace CloudVpn.WireGuard.Udp;

/// <summary>Receives one UDP datagram; the span is only valid during the call.</summary>
/// <param name="datagram">The payload.</param>
/// <param name="source">Where it came from (a cached object: do not mutate it).</param>
public delegate void UdpDatagramHandler(ReadOnlySpan<byte> datagram, IPEndPoint source);

/// <summary>
/// The device's UDP socket: one dual-stack IPv6 socket (IPv4 peers as mapped addresses) where the host has IPv6,
/// otherwise an IPv4 socket; large kernel buffers; a receive thread, either per datagram (allocation-free
/// <see cref="Socket.ReceiveFrom(Span{byte}, SocketFlags, SocketAddress)"/>) or per batch (<c>recvmmsg</c> with UDP GRO,
/// <see cref="StartReceivingBatches"/>); sends of one datagram or of a whole <see cref="PacketBatch"/> (<c>sendmmsg</c>
/// with UDP GSO, <see cref="SendBatch"/>) through a cached serialized address per endpoint. <see cref="Rebind"/> moves
/// to another port (as <c>wg set listen-port</c> does).
/// </summary>
public sealed partial class UdpBind : IDisposable
{
    /// <summary>wireguard-go's socket buffer size (7 MiB), for comparison; ours is <see cref="UdpBatchOptions.SocketBufferSize"/>.</summary>
    public const int WireGuardGoSocketBufferSize = 7 << 20;

    private const int MaxDatagram = 65535;

    private readonly Lock _gate = new();
    private readonly byte[] _receiveBuffer = GC.AllocateArray<byte>(MaxDatagram, pinned: true);
    private readonly UdpBatchOptions _options;
    private volatile Bound _bound;
    private Thread? _receiver;
    private UdpDatagramHandler? _handler;
    private Action<PacketBatch>? _batchHandler;
    private Action<Exception>? _onError;
    private bool _disposed;
    private long _sendErrors;
    private long _gsoFallbacks;
    private int _offloads;
    private uint _firewallMark;

    private UdpBind(Socket socket, UdpBatchOptions options)
    {
        _bound = new Bound(socket);
        _options = options;
        _offloads = (int)Probe(_bound, options);
    }

    /// <summary>The UDP port bound.</summary>
    public int Port => ((IPEndPoint)_bound.Socket.LocalEndPoint!).Port;

    /// <summary>True when the socket is dual-stack IPv6 (reaches IPv4 and IPv6 peers).</summary>
    public bool IsDualStack => _bound.Socket.AddressFamily == AddressFamily.InterNetworkV6;

    /// <summary>Datagrams the kernel refused to send (unreachable, no route, buffer full).</summary>
    public long SendErrors => Interlocked.Read(ref _sendErrors);

    /// <summary>UDP GSO sends the kernel refused (<c>EIO</c>, <c>EINVAL</c>); after the first, GSO stays off and runs go out one datagram each.</summary>
    public long GsoFallbacks => Interlocked.Read(ref _gsoFallbacks);

    /// <summary>
    /// The batching features in use: those asked for in <see cref="UdpBatchOptions"/> that the kernel offered, less those
    /// that failed since. <see cref="UdpOffloads.Gro"/> is dropped when the per-datagram receiver runs (it cannot split).
    /// </summary>
    public UdpOffloads ActiveOffloads => (UdpOffloads)Volatile.Read(ref _offloads);

    /// <summary>The current socket (tests set kernel options on it).</summary>
    internal Socket Socket => _bound.Socket;

    /// <summary>The batching options the socket was opened with.</summary>
    public UdpBatchOptions Options => _options;

    /// <summary>Binds <paramref name="port"/> (0: a free port) on every address.</summary>
    /// <param name="port">The UDP port, 0 for any free one.</param>
    /// <param name="firewallMark">SO_MARK of the packets sent (0: none).</param>
    /// <param name="options">Batching options (null: <see cref="UdpBatchOptions.Default"/>).</param>
    /// <exception cref="SocketException">The port is taken or the socket cannot be created.</exception>
    /// <exception cref="ArgumentException">An option is out of range (the message names it).</exception>
    public static UdpBind Open(int port, uint firewallMark = 0, UdpBatchOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        options ??= UdpBatchOptions.Default;
        options.Validate();
        var bind = new UdpBind(CreateSocket(port, firewallMark, options.SocketBufferSize), options) { _firewallMark = firewallMark };
        return bind;
    }

    /// <summary>Starts the receive thread; each datagram goes to <paramref name="handler"/>, errors of the handler to <paramref name="onError"/>.</summary>
    public void StartReceiving(UdpDatagramHandler handler, Action<Exception>? onError = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfReceiving();
            _handler = handler;
            _onError = onError;
            Interlocked.And(ref _offloads, ~(int)UdpOffloads.Gro);
            StartThread(_bound);
        }
    }

    /// <summary>
    /// Starts the batch receive thread: it reads up to <see cref="UdpBatchOptions.BatchSize"/> messages per call into 64 KiB
    /// regions of a batch it owns, splits GRO-coalesced messages by their segment size, fills
    /// <see cref="PacketBatch.Sources"/>, and calls <paramref name="handler"/> once per batch on that thread. The handler
    /// may rewrite entries in place and is done with the batch when it returns. Errors of the handler go to
    /// <paramref name="onError"/> (the batch is dropped, receiving goes on).
    /// </summary>
    /// <exception cref="InvalidOperationException">A receiver already runs.</exception>
    public void StartReceivingBatches(Action<PacketBatch> handler, Action<Exception>? onError = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfReceiving();
            _batchHandler = handler;
            _onError = onError;
            StartThread(_bound);
        }
    }

    /// <summary>The endpoint of a received source address (as in <see cref="PacketBatch.Sources"/>), cached: IPv4-mapped sources come back as plain IPv4.</summary>
    public IPEndPoint EndPointOf(SocketAddress source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return _bound.Cache.FromSocketAddress(source);
    }

    /// <summary>Sends one datagram. Thread-safe; failures are counted, not thrown (UDP is lossy anyway).</summary>
    /// <returns>True when the kernel took it.</returns>
    public bool Send(ReadOnlySpan<byte> datagram, IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var bound = _bound;
        var address = bound.Cache.ToSocketAddress(destination);
        if (address is null)
        {
            Interlocked.Increment(ref _sendErrors);
            return false;
        }

        try
        {
            bound.Socket.SendTo(datagram, SocketFlags.None, address);
            return true;
        }
        catch (SocketException)
        {
            Interlocked.Increment(ref _sendErrors);
            return false;
        }
        catch (ObjectDisposedException)
        {
            // a rebind swapped the socket under us: the datagram is lost, as on a real port change
            Interlocked.Increment(ref _sendErrors);
            return false;
        }
    }

    /// <summary>Sets the firewall mark (SO_MARK) of the packets sent from now on; 0 removes it.</summary>
    /// <exception cref="SocketException">The kernel refused (CAP_NET_ADMIN is needed).</exception>
    public void SetFirewallMark(uint mark)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _bound.Socket.SetRawSocketOption(SolSocket, SoMark, BitConverter.GetBytes(mark));
            _firewallMark = mark;
        }
    }

    /// <summary>Moves to another port (0: a free one): binds the new socket first, then retires the old one.</summary>
    /// <exception cref="SocketException">The new port is taken; the old socket stays in use.</exception>
    public void Rebind(int port)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var mark = _firewallMark;
            if (port != 0 && port == Port)
            {
                return;
            }

            var fresh = new Bound(CreateSocket(port, mark, _options.SocketBufferSize));
            var old = _bound;
            _bound = fresh;
            if (_handler is not null || _batchHandler is not null)
            {
                StartThread(fresh);
            }

            old.Socket.Dispose();
        }
    }

    /// <summary>Closes the socket; the receive thread ends.</summary>
    public void Dispose()
    {
        Thread? receiver;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            receiver = _receiver;
            _bound.Socket.Dispose();
        }

        if (receiver is not null && receiver != Thread.CurrentThread)
        {
            receiver.Join(TimeSpan.FromSeconds(5));
        }
    }

    private void ThrowIfReceiving()
    {
        if (_handler is not null || _batchHandler is not null)
        {
            throw new InvalidOperationException("The UDP receiver is already running.");
        }
    }

    private void StartThread(Bound bound)
    {
        var batches = _batchHandler is not null;
        _receiver = new Thread(() =>
        {
            if (batches)
            {
                ReceiveBatchLoop(bound);
            }
            else
            {
                ReceiveLoop(bound);
            }
        })
        {
            IsBackground = true,
            Name = $"udp-recv {((IPEndPoint)bound.Socket.LocalEndPoint!).Port}",
        };
        _receiver.Start();
    }

    private void ReceiveLoop(Bound bound)
    {
        var socket = bound.Socket;
        var cache = bound.Cache;
        var handler = _handler!;
        var from = new SocketAddress(socket.AddressFamily);
        var buffer = _receiveBuffer.AsSpan();
        while (true)
        {
            int received;
            try
            {
                received = socket.ReceiveFrom(buffer, SocketFlags.None, from);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize or SocketError.Interrupted)
            {
                continue; // ICMP errors of earlier sends, oversized datagrams: not fatal
            }
            catch (SocketException)
            {
                return; // closed by Rebind or Dispose
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            try
            {
                handler(buffer[..received], cache.FromSocketAddress(from));
            }
#pragma warning disable CA1031 // the receiver must survive a faulty handler; the error is reported
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _onError?.Invoke(ex);
            }
        }
    }

    /// <summary>A socket with what belongs to it alone; swapped as a whole by <see cref="Rebind"/>.</summary>
    private sealed class Bound(Socket socket)
    {
        public Socket Socket { get; } = socket;

        public SafeSocketHandle Handle { get; } = socket.SafeHandle;

        public UdpEndpointCache Cache { get; } = new(socket.AddressFamily);
    }

    private static Socket CreateSocket(int port, uint firewallMark, int bufferSize)
    {
        Socket socket;
        if (Socket.OSSupportsIPv6 && TryCreateDualStack(port, out var dual))
        {
            socket = dual;
        }
        else
        {
            socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                socket.Bind(new IPEndPoint(IPAddress.Any, port));
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        SetBufferSizes(socket, bufferSize);
        if (firewallMark != 0)
        {
            socket.SetRawSocketOption(SolSocket, SoMark, BitConverter.GetBytes(firewallMark));
        }

        return socket;
    }

    private const int SolSocket = 1;
    private const int SoSndBufForce = 32;
    private const int SoRcvBufForce = 33;
    private const int SoMark = 36;

    // With CAP_NET_ADMIN the *FORCE options lift the net.core.[rw]mem_max cap, as wireguard-go does; without it the
    // plain options give what the sysctl allows.
    private static void SetBufferSizes(Socket socket, int bufferSize)
    {
        var size = BitConverter.GetBytes(bufferSize);
        try
        {
            socket.SetRawSocketOption(SolSocket, SoRcvBufForce, size);
            socket.SetRawSocketOption(SolSocket, SoSndBufForce, size);
        }
        catch (SocketException)
        {
            socket.ReceiveBufferSize = bufferSize;
            socket.SendBufferSize = bufferSize;
        }
    }

    private static bool TryCreateDualStack(int port, out Socket socket)
    {
        socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.DualMode = true;
            socket.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
            return true;
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressFamilyNotSupported or SocketError.AddressNotAvailable or SocketError.ProtocolNotSupported)
        {
            socket.Dispose();
            return false;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
