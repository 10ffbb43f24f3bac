using System.Runtime.InteropServices;

namespace CloudVpn.WireGuard.Interop;

/// <summary>
/// The libc calls the userspace device needs and .NET does not expose: the TUN character device
/// (open, ioctl TUNSETIFF, non-blocking read/write), poll with an eventfd for wake-up, and the interface ioctls
/// for MTU and flags. Linux x86-64 and arm64 layouts.
/// </summary>
internal static unsafe partial class LinuxTun
{
    public const int ORdwr = 0x2;
    public const int ONonblock = 0x800;
    public const int OCloexec = 0x80000;

    public const uint TunSetIff = 0x400454ca;
    public const short IffTun = 0x0001;
    public const short IffNoPi = 0x1000;
    public const short IffVnetHdr = 0x4000;

    /// <summary><c>_IOW('T', 208, unsigned int)</c>: the offloads the reader accepts (the argument is the value).</summary>
    public const uint TunSetOffload = 0x400454d0;

    /// <summary><c>_IOW('T', 216, int)</c>: the size of the virtio_net_hdr before every packet.</summary>
    public const uint TunSetVnetHdrSz = 0x400454d8;

    public const uint TunFCsum = 0x01;
    public const uint TunFTso4 = 0x02;
    public const uint TunFTso6 = 0x04;
    public const uint TunFUso4 = 0x20;
    public const uint TunFUso6 = 0x40;
    public const short IffUp = 0x0001;
    public const short IffRunning = 0x0040;

    public const uint SiocGIfFlags = 0x8913;
    public const uint SiocSIfFlags = 0x8914;
    public const uint SiocGIfMtu = 0x8921;
    public const uint SiocSIfMtu = 0x8922;

    public const short PollIn = 0x001;
    public const int EfdCloexec = 0x80000;
    public const int EfdNonblock = 0x800;

    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int ENoent = 2;
    public const int EPerm = 1;
    public const int EBusy = 16;
    public const int EInval = 22;

    public const int IfNameSize = 16;

    /// <summary><c>struct ifreq</c>: a 16-byte name and a 24-byte union (flags, MTU, ...).</summary>
    [StructLayout(LayoutKind.Sequential, Size = 40)]
    public struct IfReq
    {
        public fixed byte Name[IfNameSize];
        public short Flags; // also the low half of ifr_mtu (int) on little-endian
        public short Pad;
    }

    /// <summary><c>struct iovec</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, IfReq* argument);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int IoctlValue(int fd, nuint request, nuint argument);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int IoctlInt(int fd, nuint request, int* argument);

    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    public static partial nint Writev(int fd, IoVec* vectors, int count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initialValue, int flags);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    /// <summary>
    /// Writes <paramref name="name"/> (NUL-terminated, at most 15 bytes) into an ifreq, allocating nothing (the
    /// device's once-a-second MTU check calls it).
    /// </summary>
    public static void SetName(ref IfReq request, string name)
    {
        if (System.Text.Encoding.ASCII.GetByteCount(name) >= IfNameSize)
        {
            throw new ArgumentException($"Interface name '{name}' is longer than {IfNameSize - 1} characters.", nameof(name));
        }

        fixed (byte* p = request.Name)
        {
            var span = new Span<byte>(p, IfNameSize);
            span.Clear();
            System.Text.Encoding.ASCII.GetBytes(name, span);
        }
    }

    /// <summary>Reads the NUL-terminated name out of an ifreq.</summary>
    public static string GetName(ref IfReq request)
    {
        fixed (byte* p = request.Name)
        {
            var span = new ReadOnlySpan<byte>(p, IfNameSize);
            var end = span.IndexOf((byte)0);
            return System.Text.Encoding.ASCII.GetString(end < 0 ? span : span[..end]);
        }
    }

    /// <summary>
    /// An AF_INET datagram socket for interface ioctls (SIOC*). It belongs to the network namespace of the thread that
    /// opened it, so a device created inside another namespace keeps one to configure itself from any thread.
    /// </summary>
    /// <returns>The descriptor, or a negative errno.</returns>
    public static int OpenControlSocket()
    {
        const int AfInet = 2;
        const int SockDgram = 2;
        const int SockCloexec = 0x80000;
        var fd = Socket(AfInet, SockDgram | SockCloexec, 0);
        return fd < 0 ? -Marshal.GetLastPInvokeError() : fd;
    }

    /// <summary>Runs an interface ioctl (SIOC*) on <paramref name="controlFd"/>; returns 0 or the errno.</summary>
    public static int InterfaceIoctl(int controlFd, uint request, ref IfReq ifreq)
    {
        fixed (IfReq* p = &ifreq)
        {
            return Ioctl(controlFd, request, p) < 0 ? Marshal.GetLastPInvokeError() : 0;
        }
    }

    /// <summary>The message of an errno value, for exceptions.</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
