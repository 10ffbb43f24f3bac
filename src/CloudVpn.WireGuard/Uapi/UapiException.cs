namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// A userspace API request failed; <see cref="Errno"/> is the positive Linux errno that the server answers as
/// <c>errno=-N</c>, as wireguard-go does.
/// </summary>
public sealed class UapiException : Exception
{
    /// <summary>Creates the exception.</summary>
    public UapiException()
        : this(UapiErrno.Invalid, "Invalid userspace API request.")
    {
    }

    /// <summary>Creates the exception with <see cref="UapiErrno.Invalid"/>.</summary>
    public UapiException(string message)
        : this(UapiErrno.Invalid, message)
    {
    }

    /// <summary>Creates the exception with <see cref="UapiErrno.Invalid"/>.</summary>
    public UapiException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errno = UapiErrno.Invalid;
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="errno">Positive Linux errno (see <see cref="UapiErrno"/>).</param>
    /// <param name="message">What was wrong; never contains key material.</param>
    public UapiException(int errno, string message)
        : base(message)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(errno);
        Errno = errno;
    }

    /// <summary>Positive Linux errno.</summary>
    public int Errno { get; }
}

/// <summary>The errno values the userspace API answers (positive; the wire carries them negated).</summary>
public static class UapiErrno
{
    /// <summary>EIO: the device could not carry out the request.</summary>
    public const int IO = 5;

    /// <summary>EINVAL: a malformed line, an unknown key or a bad value.</summary>
    public const int Invalid = 22;

    /// <summary>EPROTO: the request does not follow the protocol.</summary>
    public const int Protocol = 71;

    /// <summary>EADDRINUSE: the listen port cannot be bound.</summary>
    public const int AddressInUse = 98;

    /// <summary>The code wireguard-go answers for an unexpected failure (its <c>ipcErrorUnknown</c>).</summary>
    public const int Unknown = 55;
}
