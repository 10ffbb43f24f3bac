using System.Runtime.InteropServices;
using CloudVpn.WireGuard.Interop;

namespace CloudVpn.WireGuard.Tun;

/// <summary>Receives one IP packet read from the TUN device; the span is only valid during the call.</summary>
/// <param name="packet">The IP packet (no packet-information header).</param>
public delegate void TunPacketHandler(ReadOnlySpan<byte> packet);

/// <summary>
/// A Linux TUN device (<c>/dev/net/tun</c>, <c>IFF_TUN | IFF_NO_PI</c>): layer-3 packets in and out. Reads happen on one
/// dedicated thread into a pinned buffer it owns (no allocation per packet); writes go straight to the file descriptor
/// and may come from any thread. The interface disappears when the device is disposed.
/// </summary>
public sealed unsafe class TunDevice : IDisposable
{
    /// <summary>The largest packet a TUN device hands over (the IPv4/IPv6 limit).</summary>
    public const int MaxPacketSize = 65535;

    private readonly int _fd;
    private readonly int _wakeFd;
    private readonly int _controlFd;
    private readonly byte[] _readBuffer = GC.AllocateArray<byte>(MaxPacketSize, pinned: true);
    private Thread? _reader;
    private volatile bool _stopping;
    private int _disposed;

    private TunDevice(int fd, int wakeFd, int controlFd, string name)
    {
        _fd = fd;
        _wakeFd = wakeFd;
        _controlFd = controlFd;
        Name = name;
    }

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
    /// <c>%d</c> lets the kernel number it. Needs CAP_NET_ADMIN.
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty or longer than 15 characters.</exception>
    /// <exception cref="IOException">The kernel refused (the message says why).</exception>
    public static TunDevice Create(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Length > LinuxTun.IfNameSize - 1 || name.Contains('/', StringComparison.Ordinal) || name.Contains(':', StringComparison.Ordinal)
            || name.Any(char.IsWhiteSpace) || !System.Text.Ascii.IsValid(name) || name is "." or "..")
        {
            throw new ArgumentException($"Interface name '{name}' is invalid: 1 to 15 ASCII characters, no '/', ':' or white space.", nameof(name));
        }

        var fd = LinuxTun.Open("/dev/net/tun", LinuxTun.ORdwr | LinuxTun.ONonblock | LinuxTun.OCloexec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"Cannot open /dev/net/tun: {LinuxTun.Describe(errno)}.");
        }

        var request = default(LinuxTun.IfReq);
        LinuxTun.SetName(ref request, name);
        request.Flags = LinuxTun.IffTun | LinuxTun.IffNoPi;
        if (LinuxTun.Ioctl(fd, LinuxTun.TunSetIff, &request) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            _ = LinuxTun.Close(fd);
            var hint = errno switch
            {
                LinuxTun.EPerm => " (CAP_NET_ADMIN is needed)",
                LinuxTun.EBusy => " (an interface of that name exists and is not a free TUN device)",
                _ => string.Empty,
            };
            throw new IOException($"Cannot create TUN interface '{name}': {LinuxTun.Describe(errno)}{hint}.");
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

        return new TunDevice(fd, wakeFd, controlFd, LinuxTun.GetName(ref request));
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
            while (true)
            {
                var n = LinuxTun.Write(_fd, p, (nuint)packet.Length);
                if (n >= 0)
                {
                    Interlocked.Increment(ref _packetsWritten);
                    return true;
                }

                if (Marshal.GetLastPInvokeError() != LinuxTun.EIntr)
                {
                    Interlocked.Increment(ref _writeErrors);
                    return false;
                }
            }
        }
    }

    /// <summary>
    /// Starts the reader thread: every packet the host routes into the interface is handed to
    /// <paramref name="handler"/> (on that one thread, in order). Exceptions thrown by the handler stop nothing: they
    /// are passed to <paramref name="onError"/> and reading goes on.
    /// </summary>
    public void StartReader(TunPacketHandler handler, Action<Exception>? onError = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_reader is not null)
        {
            throw new InvalidOperationException($"The reader of TUN device '{Name}' is already running.");
        }

        _reader = new Thread(() => ReadLoop(handler, onError))
        {
            IsBackground = true,
            Name = $"tun-read {Name}",
        };
        _reader.Start();
    }

    private void ReadLoop(TunPacketHandler handler, Action<Exception>? onError)
    {
        var fds = stackalloc LinuxTun.PollFd[2];
        fixed (byte* buffer = _readBuffer)
        {
            while (!_stopping)
            {
                var n = LinuxTun.Read(_fd, buffer, (nuint)_readBuffer.Length);
                if (n > 0)
                {
                    Interlocked.Increment(ref _packetsRead);
                    try
                    {
                        handler(new ReadOnlySpan<byte>(buffer, (int)n));
                    }
#pragma warning disable CA1031 // the reader must survive a faulty handler; the error is reported
                    catch (Exception ex)
#pragma warning restore CA1031
                    {
                        onError?.Invoke(ex);
                    }

                    continue;
                }

                var errno = n < 0 ? Marshal.GetLastPInvokeError() : LinuxTun.EAgain;
                if (errno == LinuxTun.EIntr)
                {
                    continue;
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
