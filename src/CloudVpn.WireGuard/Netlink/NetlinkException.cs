using System.Runtime.InteropServices;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>
/// The kernel refused a netlink request (or a netlink system call failed). The message names the request, the
/// errno (symbolic and in words) and, when the kernel sent one, its extended-ACK explanation.
/// </summary>
public sealed class NetlinkException : Exception
{
    /// <summary>Creates the exception for <paramref name="operation"/> failing with <paramref name="errno"/> (positive).</summary>
    public NetlinkException(string operation, int errno, string? kernelMessage = null)
        : base(Describe(operation, errno, kernelMessage))
    {
        Operation = operation;
        Errno = errno;
        KernelMessage = kernelMessage;
    }

    /// <summary>What was being done, for example <c>RTM_NEWLINK wg0</c>.</summary>
    public string Operation { get; }

    /// <summary>The positive errno value (17 for EEXIST).</summary>
    public int Errno { get; }

    /// <summary>The symbolic errno name (EEXIST), or <c>errno N</c> for values without a name here.</summary>
    public string ErrorName => ErrnoName(Errno);

    /// <summary>The kernel's extended-ACK message, if it sent one.</summary>
    public string? KernelMessage { get; }

    internal static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        28 => "ENOSPC",
        34 => "ERANGE",
        90 => "EMSGSIZE",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        105 => "ENOBUFS",
        _ => $"errno {errno}",
    };

    private static string Describe(string operation, int errno, string? kernelMessage)
    {
        var words = Marshal.GetPInvokeErrorMessage(errno);
        var hint = errno switch
        {
            1 => " (CAP_NET_ADMIN is needed in this network namespace)",
            _ => string.Empty,
        };
        return string.IsNullOrEmpty(kernelMessage)
            ? $"{operation} failed: {ErrnoName(errno)} ({words}){hint}."
            : $"{operation} failed: {ErrnoName(errno)} ({words}){hint}: {kernelMessage}.";
    }
}

/// <summary>A netlink answer that does not parse (truncated message, attribute running past its container).</summary>
public sealed class NetlinkProtocolException(string message) : Exception(message);
