using System.Runtime.InteropServices;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Interop;

namespace CloudVpn.WireGuard.Tun;

/// <summary>Receives one IP packet read from the TUN device; the span is only valid during the call.</summary>
/// <param name="packet">The IP packet (no packet-information header).</param>
public delegate void TunPacketHandler(ReadOnlySpan<byte> packet);

/// <summary>
/// A Linux TUN device (<c>/dev/net/tun</c>, <c>IFF_TUN | IFF_NO_PI</c>, with <c>IFF_VNET_HDR</c> and TSO/USO offloads
/// unless <see cref="TunOptions.Offloads"/> is off): layer-3 packets in and out. Reads happen on one dedicated thread
/// into pinned buffers it owns (no allocation per packet); super-packets the kernel hands over with offloads are split
/// into IP packets before any handler sees them. Writes go straight to the file descriptor and may come from any
/// thread. The interface disappears when the device is disposed.
/// </summary>
public sealed unsafe class TunDevice : IDisposable
{
    /// <summary>The largest packet a TUN device hands over (the IPv4/IPv6 limit).</summary>
    public const int MaxPacketSize = 65535;

    private readonly int _fd;
    private readonly int _wakeFd;
    private readonly int _controlFd;
    private readonly bool _vnetHeader;
    private readonly bool _coalesce;
    private readonly int _batchSize;
    private readonly byte[] _readBuffer = GC.AllocateArray<byte>(VirtioNetHeader.Size + MaxPacketSize, pinned: true);
    private Thread? _reader;
    private volatile bool _stopping;
    private int _disposed;

    [ThreadStatic]
    private static TcpCoalescer? t_coalescer;

    private TunDevice(int fd, int wakeFd, int controlFd, string name, TunOffloads offloads, TunOptions options)
    {
        _fd = fd;
        _wakeFd = wakeFd;
        _controlFd = controlFd;
        Name = name;
        ActiveOffloads = offloads;
        _vnetHeader = offloads != TunOffloads.None;
        _coalesce = options.Coalesce && (offloads & (TunOffloads.Tso4 | TunOffloads.Tso6)) != 0;
        _batchSize = options.BatchSize;
    }

    /// <summary>
    /// The offloads the kernel accepted: <see cref="TunOffloads.None"/> when <see cref="TunOptions.Offloads"/> was off
    /// or the kernel refused <c>IFF_VNET_HDR</c>/<c>TUNSETOFFLOAD</c> (plain IP packets then, as without offloads).
    /// </summary>
    public TunOffloads ActiveOffloads { get; }

    /// <summary>Why the requested offloads are not (all) active, or null.</summary>
    public string? OffloadFallbackReason { get; private init; }

    /// <summary>Whether <see cref="WriteBatch"/> merges TCP segments into super-packets (option on and TSO active).</summary>
    public bool Coalescing => _coalesce;

    /// <summary>Reads that returned a super-packet (GSO) split into segments by the reader.</summary>
    public long SuperPacketsRead => Interlocked.Read(ref _superPacketsRead);

    /// <summary>Reads dropped because the packet or its virtio_net_hdr was malformed.</summary>
    public long InvalidPacketsRead => Interlocked.Read(ref _invalidPacketsRead);

    /// <summary>Super-packets written by <see cref="WriteBatch"/> (each replacing two or more TCP segments).</summary>
    public long SuperPacketsWritten => Interlocked.Read(ref _superPacketsWritten);

    private long _superPacketsRead;
    private long _invalidPacketsRead;
    private long _superPacketsWritten;

    /// <summary>The interface name the kernel gave the device.</summary>
    public string Name { get; }

    /// <summary>Packets read from the device since it was opened.</summary>
    public long PacketsRead => Interlocked.Read(ref _packetsRead);

    /// <summary>Packets written to the device since it was opened.</summary>
    public long PacketsWritten => Interlocked.Read(ref _packetsWritten);

    /// <summary>Writes that failed (the kernel refused the packet or the interface was down).</summary>
    public long WriteErrors => Interlocked.Read(ref _writeErrors);

    private long _packetsRead;
    private long _packetsWritten;
    private long _writeErrors;

    /// <summary>Why this machine cannot create TUN devices, or null when it can (the device node exists and opens).</summary>
    public static string? ProbeUnavailableReason()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "TUN devices need Linux";
        }

        if (!File.Exists("/dev/net/tun"))
        {
            return "/dev/net/tun does not exist (mount it into the container, for example with a device plugin or hostPath /dev/net/tun)";
        }

        var fd = LinuxTun.Open("/dev/net/tun", LinuxTun.ORdwr | LinuxTun.OCloexec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return $"/dev/net/tun cannot be opened: {LinuxTun.Describe(errno)}";
        }

        _ = LinuxTun.Close(fd);
        return null;
    }

    /// <summary>
    /// Creates (or attaches to an existing persistent) TUN interface called <paramref name="name"/>; a name with
    /// <c>%d</c> lets the kernel number it. Needs CAP_NET_ADMIN. With <see cref="TunOptions.Offloads"/> (the default) the
    /// device asks for <c>IFF_VNET_HDR</c> and checksum/TSO/USO offloads and falls back to what the kernel accepts
    /// (<see cref="ActiveOffloads"/>, <see cref="OffloadFallbackReason"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty or longer than 15 characters, or an option is out of range.</exception>
    /// <exception cref="IOException">The kernel refused (the message says why).</exception>
    public static TunDevice Create(string name, TunOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Length > LinuxTun.IfNameSize - 1 || name.Contains('/', StringComparison.Ordinal) || name.Contains(':', StringComparison.Ordinal)
            || name.Any(char.IsWhiteSpace) || !System.Text.Ascii.IsValid(name) || name is "." or "..")
        {
            throw new ArgumentException($"Interface name '{name}' is invalid: 1 to 15 ASCII characters, no '/', ':' or white space.", nameof(name));
        }

        options ??= new TunOptions();
        if (options.BatchSize is < 1 or > 4096)
        {
            throw new ArgumentException($"TunOptions.BatchSize: {options.BatchSize} is outside 1..4096.", nameof(options));
        }

        var offloads = TunOffloads.None;
        string? fallback = null;
        int fd;
        var request = default(LinuxTun.IfReq);
        if (options.Offloads)
        {
            fd = OpenTun(name, vnetHeader: true, out request, out var errno);
            if (fd < 0 && errno == LinuxTun.EInval)
            {
                fallback = "the kernel refused IFF_VNET_HDR";
            }
            else if (fd < 0)
            {
                throw CreateError(name, errno);
            }
            else
            {
                offloads = NegotiateOffloads(fd, out fallback);
                if (offloads == TunOffloads.None)
                {
                    // Reopen without the header: nothing is configured yet, and plain packets are cheaper than a zero header.
                    _ = LinuxTun.Close(fd);
                    fd = -1;
                }
            }
        }
        else
        {
            fd = -1;
        }

        if (fd < 0)
        {
            fd = OpenTun(name, vnetHeader: false, out request, out var errno);
            if (fd < 0)
            {
                throw CreateError(name, errno);
            }
        }

        var wakeFd = LinuxTun.EventFd(0, LinuxTun.EfdCloexec | LinuxTun.EfdNonblock);
        if (wakeFd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            _ = LinuxTun.Close(fd);
            throw new IOException($"eventfd failed: {LinuxTun.Describe(errno)}.");
        }

        var controlFd = LinuxTun.OpenControlSocket();
        if (controlFd < 0)
        {
            _ = LinuxTun.Close(fd);
            _ = LinuxTun.Close(wakeFd);
            throw new IOException($"Cannot open a control socket: {LinuxTun.Describe(-controlFd)}.");
        }

        return new TunDevice(fd, wakeFd, controlFd, LinuxTun.GetName(ref request), offloads, options) { OffloadFallbackReason = fallback };
    }

    private static int OpenTun(string name, bool vnetHeader, out LinuxTun.IfReq request, out int errno)
    {
        request = default;
        errno = 0;
        var fd = LinuxTun.Open("/dev/net/tun", LinuxTun.ORdwr | LinuxTun.ONonblock | LinuxTun.OCloexec);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            throw new IOException($"Cannot open /dev/net/tun: {LinuxTun.Describe(errno)}.");
        }

        LinuxTun.SetName(ref request, name);
        request.Flags = (short)(LinuxTun.IffTun | LinuxTun.IffNoPi | (vnetHeader ? LinuxTun.IffVnetHdr : 0));
        fixed (LinuxTun.IfReq* p = &request)
        {
            if (LinuxTun.Ioctl(fd, LinuxTun.TunSetIff, p) < 0)
            {
                errno = Marshal.GetLastPInvokeError();
                _ = LinuxTun.Close(fd);
                return -1;
            }
        }

        return fd;
    }

    private static IOException CreateError(string name, int errno)
    {
        var hint = errno switch
        {
            LinuxTun.EPerm => " (CAP_NET_ADMIN is needed)",
            LinuxTun.EBusy => " (an interface of that name exists and is not a free TUN device, or its flags differ)",
            _ => string.Empty,
        };
        return new IOException($"Cannot create TUN interface '{name}': {LinuxTun.Describe(errno)}{hint}.");
    }

    private static TunOffloads NegotiateOffloads(int fd, out string? fallback)
    {
        fallback = null;
        var size = VirtioNetHeader.Size;
        if (LinuxTun.IoctlInt(fd, LinuxTun.TunSetVnetHdrSz, &size) < 0)
        {
            fallback = $"TUNSETVNETHDRSZ failed: {LinuxTun.Describe(Marshal.GetLastPInvokeError())}";
            return TunOffloads.None;
        }

        const uint Tso = LinuxTun.TunFCsum | LinuxTun.TunFTso4 | LinuxTun.TunFTso6;
        if (LinuxTun.IoctlValue(fd, LinuxTun.TunSetOffload, Tso | LinuxTun.TunFUso4 | LinuxTun.TunFUso6) == 0)
        {
            return TunOffloads.Checksum | TunOffloads.Tso4 | TunOffloads.Tso6 | TunOffloads.Uso;
        }

        var usoErrno = Marshal.GetLastPInvokeError();
        if (LinuxTun.IoctlValue(fd, LinuxTun.TunSetOffload, Tso) == 0)
        {
            fallback = $"the kernel refused TUN_F_USO4|TUN_F_USO6 ({LinuxTun.Describe(usoErrno)}; Linux 6.2 or later has them): TSO only";
            return TunOffloads.Checksum | TunOffloads.Tso4 | TunOffloads.Tso6;
        }

        fallback = $"the kernel refused TUNSETOFFLOAD TSO ({LinuxTun.Describe(Marshal.GetLastPInvokeError())}): no offloads";
        return TunOffloads.None;
    }

    /// <summary>The interface MTU as the kernel reports it (read in the device's own network namespace, from any thread).</summary>
    public int Mtu
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            var request = default(LinuxTun.IfReq);
            LinuxTun.SetName(ref request, Name);
            var errno = LinuxTun.InterfaceIoctl(_controlFd, LinuxTun.SiocGIfMtu, ref request);
            if (errno != 0)
            {
                throw new IOException($"Cannot read the MTU of '{Name}': {LinuxTun.Describe(errno)}.");
            }

            return MtuOf(ref request);
        }
    }

    /// <summary>Sets the interface MTU (SIOCSIFMTU).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside 576..65535 (IPv4 minimum to the largest packet).</exception>
    public void SetMtu(int mtu)
    {
        if (mtu is < 576 or > MaxPacketSize)
        {
            throw new ArgumentOutOfRangeException(nameof(mtu), mtu, "MTU must be between 576 and 65535.");
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var request = default(LinuxTun.IfReq);
        LinuxTun.SetName(ref request, Name);
        SetMtuOf(ref request, mtu);
        var errno = LinuxTun.InterfaceIoctl(_controlFd, LinuxTun.SiocSIfMtu, ref request);
        if (errno != 0)
        {
            throw new IOException($"Cannot set the MTU of '{Name}' to {mtu}: {LinuxTun.Describe(errno)}.");
        }
    }

    /// <summary>Brings the interface up or down (SIOCSIFFLAGS).</summary>
    public void SetUp(bool up)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var request = default(LinuxTun.IfReq);
        LinuxTun.SetName(ref request, Name);
        var errno = LinuxTun.InterfaceIoctl(_controlFd, LinuxTun.SiocGIfFlags, ref request);
        if (errno == 0)
        {
            request.Flags = up ? (short)(request.Flags | LinuxTun.IffUp) : (short)(request.Flags & ~LinuxTun.IffUp);
            errno = LinuxTun.InterfaceIoctl(_controlFd, LinuxTun.SiocSIfFlags, ref request);
        }

        if (errno != 0)
        {
            throw new IOException($"Cannot set '{Name}' {(up ? "up" : "down")}: {LinuxTun.Describe(errno)}.");
        }
    }

    /// <summary>Writes one IP packet to the device (to the host's stack). Thread-safe; a refused packet is counted, not thrown.</summary>
    /// <returns>True when the kernel took the packet.</returns>
    public bool Write(ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty || Volatile.Read(ref _disposed) != 0)
        {
            return false;
        }

        fixed (byte* p = packet)
        {
            if (WritePlain(p, packet.Length))
            {
                Interlocked.Increment(ref _packetsWritten);
                return true;
            }

            Interlocked.Increment(ref _writeErrors);
            return false;
        }
    }

    /// <summary>
    /// Writes every entry of <paramref name="batch"/> with a length above zero (IP packets, in order per flow). With
    /// <see cref="Coalescing"/>, consecutive TCP segments of one flow are merged into one super-packet (up to 64 KiB)
    /// written with a GSO virtio_net_hdr; everything else is written as it is. Thread-safe (each calling thread uses
    /// its own coalescing state). The entries' bytes are not changed. Refused packets are counted in
    /// <see cref="WriteErrors"/>, not thrown.
    /// </summary>
    /// <returns>How many of the batch's packets the kernel accepted.</returns>
    public int WriteBatch(PacketBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (Volatile.Read(ref _disposed) != 0)
        {
            return 0;
        }

        var accepted = 0;
        var failed = 0;
        if (_coalesce)
        {
            var coalescer = t_coalescer ??= new TcpCoalescer();
            coalescer.Plan(batch);
            var vectors = stackalloc LinuxTun.IoVec[TcpCoalescer.MaxVectors];
            var headers = stackalloc byte[TcpCoalescer.MaxHeaderBytes];
            fixed (byte* arena = batch.ArenaArray)
            {
                for (var item = 0; item < coalescer.ItemCount; item++)
                {
                    var packets = coalescer.PacketCount(item);
                    var count = coalescer.BuildVectors(item, batch, arena, new Span<byte>(headers, TcpCoalescer.MaxHeaderBytes), headers, vectors);
                    if (Writev(vectors, count))
                    {
                        accepted += packets;
                        if (packets > 1)
                        {
                            Interlocked.Increment(ref _superPacketsWritten);
                        }
                    }
                    else
                    {
                        failed += packets;
                    }
                }
            }
        }
        else
        {
            fixed (byte* arena = batch.ArenaArray)
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    var length = batch.Lengths[i];
                    if (length <= 0)
                    {
                        continue;
                    }

                    if (WritePlain(arena + batch.Offsets[i], length))
                    {
                        accepted++;
                    }
                    else
                    {
                        failed++;
                    }
                }
            }
        }

        if (accepted > 0)
        {
            Interlocked.Add(ref _packetsWritten, accepted);
        }

        if (failed > 0)
        {
            Interlocked.Add(ref _writeErrors, failed);
        }

        return accepted;
    }

    /// <summary>One IP packet, behind a zero virtio_net_hdr when the device has one.</summary>
    private bool WritePlain(byte* packet, int length)
    {
        if (!_vnetHeader)
        {
            while (true)
            {
                if (LinuxTun.Write(_fd, packet, (nuint)length) >= 0)
                {
                    return true;
                }

                if (Marshal.GetLastPInvokeError() != LinuxTun.EIntr)
                {
                    return false;
                }
            }
        }

        var header = stackalloc byte[VirtioNetHeader.Size];
        new Span<byte>(header, VirtioNetHeader.Size).Clear();
        var vectors = stackalloc LinuxTun.IoVec[2];
        vectors[0] = new LinuxTun.IoVec { Base = header, Length = VirtioNetHeader.Size };
        vectors[1] = new LinuxTun.IoVec { Base = packet, Length = (nuint)length };
        return Writev(vectors, 2);
    }

    private bool Writev(LinuxTun.IoVec* vectors, int count)
    {
        while (true)
        {
            if (LinuxTun.Writev(_fd, vectors, count) >= 0)
            {
                return true;
            }

            if (Marshal.GetLastPInvokeError() != LinuxTun.EIntr)
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Starts the reader thread: every IP packet the host routes into the interface is handed to
    /// <paramref name="handler"/> (on that one thread, in order; super-packets arrive split). Exceptions thrown by the
    /// handler stop nothing: they are passed to <paramref name="onError"/> and reading goes on.
    /// </summary>
    public void StartReader(TunPacketHandler handler, Action<Exception>? onError = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        StartReadThread(null, handler, onError);
    }

    /// <summary>
    /// Starts the reader thread in batch mode: it reads until the device is empty or the batch is full, splitting
    /// super-packets, and calls <paramref name="handler"/> once per batch (on that one thread). The batch is the
    /// reader's own and is reused: its entries are IP packets, each with <see cref="PacketBatch.Headroom"/> bytes before
    /// and <see cref="PacketBatch.Tailroom"/> after it that belong to it alone; the handler may change them in place
    /// (encrypt) but must be done with them when it returns. Exceptions thrown by the handler are passed to
    /// <paramref name="onError"/> and reading goes on.
    /// </summary>
    public void StartBatchReader(Action<PacketBatch> handler, Action<Exception>? onError = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        StartReadThread(handler, null, onError);
    }

    private void StartReadThread(Action<PacketBatch>? batchHandler, TunPacketHandler? packetHandler, Action<Exception>? onError)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_reader is not null)
        {
            throw new InvalidOperationException($"The reader of TUN device '{Name}' is already running.");
        }

        // Room for a full batch of MTU-sized packets plus one 64 KiB packet, so any packet fits an empty batch.
        var batch = new PacketBatch(_batchSize, (_batchSize * 2048) + MaxPacketSize + PacketBatch.Headroom + PacketBatch.Tailroom + 8);
        _reader = new Thread(() => ReadLoop(batch, batchHandler, packetHandler, onError))
        {
            IsBackground = true,
            Name = $"tun-read {Name}",
        };
        _reader.Start();
    }

    private void ReadLoop(PacketBatch batch, Action<PacketBatch>? batchHandler, TunPacketHandler? packetHandler, Action<Exception>? onError)
    {
        var fds = stackalloc LinuxTun.PollFd[2];
        var headerSize = _vnetHeader ? VirtioNetHeader.Size : 0;
        fixed (byte* buffer = _readBuffer)
        {
            while (!_stopping)
            {
                var n = LinuxTun.Read(_fd, buffer, (nuint)_readBuffer.Length);
                if (n > headerSize)
                {
                    var header = _vnetHeader ? VirtioNetHeader.Read(new ReadOnlySpan<byte>(buffer, VirtioNetHeader.Size)) : default;
                    var packet = new ReadOnlySpan<byte>(buffer + headerSize, (int)n - headerSize);
                    if (header.GsoType != VirtioNetHeader.GsoNone)
                    {
                        Interlocked.Increment(ref _superPacketsRead);
                    }

                    var segment = 0;
                    SplitResult result;
                    while ((result = GsoSplitter.Split(packet, header, batch, ref segment)) == SplitResult.BatchFull)
                    {
                        if (batch.Count == 0)
                        {
                            result = SplitResult.Invalid; // cannot happen with the arena sized above; never spin
                            break;
                        }

                        Deliver(batch, batchHandler, packetHandler, onError);
                    }

                    if (result == SplitResult.Invalid)
                    {
                        Interlocked.Increment(ref _invalidPacketsRead);
                    }

                    if (batch.Count == batch.Capacity)
                    {
                        Deliver(batch, batchHandler, packetHandler, onError);
                    }

                    continue;
                }

                if (n > 0)
                {
                    Interlocked.Increment(ref _invalidPacketsRead); // shorter than the virtio_net_hdr
                    continue;
                }

                var errno = n < 0 ? Marshal.GetLastPInvokeError() : LinuxTun.EAgain;

                if (errno == LinuxTun.EIntr)
                {
                    continue;
                }

                if (batch.Count > 0)
                {
                    Deliver(batch, batchHandler, packetHandler, onError);
                }

                if (errno != LinuxTun.EAgain)
                {
                    if (!_stopping)
                    {
                        onError?.Invoke(new IOException($"Reading TUN device '{Name}' failed: {LinuxTun.Describe(errno)}."));
                    }

                    return;
                }

                // Empty: sleep until the device is readable or Dispose rings the eventfd.
                fds[0] = new LinuxTun.PollFd { Fd = _fd, Events = LinuxTun.PollIn };
                fds[1] = new LinuxTun.PollFd { Fd = _wakeFd, Events = LinuxTun.PollIn };
                _ = LinuxTun.Poll(fds, 2, -1);
            }
        }
    }

    private void Deliver(PacketBatch batch, Action<PacketBatch>? batchHandler, TunPacketHandler? packetHandler, Action<Exception>? onError)
    {
        Interlocked.Add(ref _packetsRead, batch.Count);
        if (batchHandler is not null)
        {
            try
            {
                batchHandler(batch);
            }
#pragma warning disable CA1031 // the reader must survive a faulty handler; the error is reported
            catch (Exception ex)
#pragma warning restore CA1031
            {
                onError?.Invoke(ex);
            }
        }
        else
        {
            for (var i = 0; i < batch.Count; i++)
            {
                try
                {
                    packetHandler!(batch.Packet(i));
                }
#pragma warning disable CA1031 // the reader must survive a faulty handler; the error is reported
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    onError?.Invoke(ex);
                }
            }
        }

        batch.Clear();
    }

    /// <summary>Stops the reader and closes the device; the interface goes away with it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopping = true;
        ulong one = 1;
        _ = LinuxTun.Write(_wakeFd, (byte*)&one, sizeof(ulong));
        if (_reader is not null && _reader != Thread.CurrentThread)
        {
            _reader.Join(TimeSpan.FromSeconds(5));
        }

        _ = LinuxTun.Close(_fd);
        _ = LinuxTun.Close(_wakeFd);
        _ = LinuxTun.Close(_controlFd);
    }

    private static int MtuOf(ref LinuxTun.IfReq request)
    {
        fixed (LinuxTun.IfReq* p = &request)
        {
            return *(int*)((byte*)p + LinuxTun.IfNameSize);
        }
    }

    private static void SetMtuOf(ref LinuxTun.IfReq request, int mtu)
    {
        fixed (LinuxTun.IfReq* p = &request)
        {
            *(int*)((byte*)p + LinuxTun.IfNameSize) = mtu;
        }
    }
}
