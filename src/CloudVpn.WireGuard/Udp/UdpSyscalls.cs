using System.Runtime.InteropServices;

namespace CloudVpn.WireGuard.Udp;

/// <summary>
/// The libc calls and Linux structures behind batched UDP I/O (recvmmsg/sendmmsg, UDP_SEGMENT, UDP_GRO), which .NET's
/// <see cref="System.Net.Sockets.Socket"/> does not expose. Layouts follow glibc/musl on LP64 and ILP32 (pointer-sized
/// lengths, natural alignment).
/// </summary>
internal static unsafe partial class UdpSyscalls
{
    public const int SolSocket = 1;
    public const int SolUdp = 17;
    public const int SoNoCheck = 11;
    public const int UdpSegment = 103;
    public const int UdpGro = 104;

    public const int MsgTrunc = 0x20;
    public const int MsgDontWait = 0x40;
    public const int MsgWaitForOne = 0x10000;

    public const short PollIn = 0x1;

    public const int Eintr = 4;
    public const int Eio = 5;
    public const int Eagain = 11;
    public const int Einval = 22;
    public const int Enosys = 38;
    public const int Enoprotoopt = 92;
    public const int Enomem = 12;
    public const int Enobufs = 105;
    public const int Enetunreach = 101;
    public const int Econnrefused = 111;
    public const int Ehostunreach = 113;

    /// <summary>Room for any socket address the socket can return (sockaddr_in6 is 28 bytes).</summary>
    public const int NameSize = 32;

    /// <summary>Size of struct cmsghdr (cmsg_len is size_t, then two ints), aligned.</summary>
    public static readonly int CmsgHeaderSize = Align(nint.Size + 8);

    /// <summary>CMSG_ALIGN: cmsg data and headers are aligned to size_t.</summary>
    public static int Align(int length) => (length + nint.Size - 1) & ~(nint.Size - 1);

    /// <summary>CMSG_SPACE(length).</summary>
    public static int CmsgSpace(int length) => CmsgHeaderSize + Align(length);

    /// <summary>CMSG_LEN(length).</summary>
    public static int CmsgLen(int length) => CmsgHeaderSize + length;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public byte* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public byte* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MMsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "sendmmsg", SetLastError = true)]
    public static partial int SendMmsg(int fd, MMsgHdr* messages, uint count, int flags);

    [LibraryImport("libc", EntryPoint = "recvmmsg", SetLastError = true)]
    public static partial int RecvMmsg(int fd, MMsgHdr* messages, uint count, int flags, void* timeout);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, int* value, uint length);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, int* value, uint* length);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);
}
