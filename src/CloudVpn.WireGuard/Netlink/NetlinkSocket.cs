using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>Handles one message of a dump; the span data is only valid during the call.</summary>
internal delegate void NetlinkMessageHandler(in NetlinkMessage message);

/// <summary>
/// A blocking AF_NETLINK socket that sends requests and waits for their answer: an ACK (or errno, turned into a
/// <see cref="NetlinkException"/> carrying the kernel's extended-ACK text) for changes, the NLM_F_MULTI parts up to
/// NLMSG_DONE for dumps. One request at a time (calls are serialised); messages of other sequence numbers are skipped.
/// </summary>
internal sealed class NetlinkSocket : IDisposable
{
    public const int NetlinkRoute = 0;
    public const int NetlinkGeneric = 16;

    public const ushort NlmsgNoop = 1;
    public const ushort NlmsgError = 2;
    public const ushort NlmsgDone = 3;
    public const ushort NlmsgOverrun = 4;

    public const ushort FlagRequest = 0x1;
    public const ushort FlagMulti = 0x2;
    public const ushort FlagAck = 0x4;
    public const ushort FlagDumpInterrupted = 0x10;
    public const ushort FlagDump = 0x300;
    public const ushort FlagReplace = 0x100;
    public const ushort FlagExclusive = 0x200;
    public const ushort FlagCreate = 0x400;
    public const ushort FlagAppend = 0x800;
    public const ushort FlagAckCapped = 0x100;
    public const ushort FlagAckTlvs = 0x200;

    private const ushort ExtAckMessage = 1;

    private readonly Lock _lock = new();
    private int _fd;
    private uint _sequence;
    private byte[] _receiveBuffer = GC.AllocateArray<byte>(64 * 1024, pinned: true);

    private NetlinkSocket(int fd, uint portId)
    {
        _fd = fd;
        PortId = portId;
        _sequence = (uint)Environment.TickCount;
    }

    /// <summary>The port id the kernel assigned to this socket.</summary>
    public uint PortId { get; }

    /// <summary>
    /// Opens a socket of <paramref name="protocol"/> (NETLINK_ROUTE, NETLINK_GENERIC) in the caller's network
    /// namespace or, with <paramref name="networkNamespacePath"/> (e.g. <c>/run/netns/blue</c>), in that one: a
    /// socket stays bound to the namespace it was created in.
    /// </summary>
    public static NetlinkSocket Open(int protocol, string? networkNamespacePath = null)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("Netlink exists only on Linux.");
        }

        var fd = networkNamespacePath is null
            ? CreateSocket(protocol)
            : NetworkNamespace.Run(networkNamespacePath, () => CreateSocket(protocol));
        try
        {
            var option = 1;
            // Best effort: older kernels lack these; errors then come without the kernel's text.
            _ = NetlinkSyscalls.SetSockOpt(fd, NetlinkSyscalls.SolNetlink, NetlinkSyscalls.NetlinkExtAck, in option, sizeof(int));
            _ = NetlinkSyscalls.SetSockOpt(fd, NetlinkSyscalls.SolNetlink, NetlinkSyscalls.NetlinkCapAck, in option, sizeof(int));
            var buffer = 1 << 20;
            _ = NetlinkSyscalls.SetSockOpt(fd, NetlinkSyscalls.SolSocket, NetlinkSyscalls.SoRcvbuf, in buffer, sizeof(int));
            _ = NetlinkSyscalls.SetSockOpt(fd, NetlinkSyscalls.SolSocket, NetlinkSyscalls.SoSndbuf, in buffer, sizeof(int));

            var address = new NetlinkSyscalls.SockaddrNl { Family = NetlinkSyscalls.AfNetlink };
            if (NetlinkSyscalls.Bind(fd, in address, Marshal.SizeOf<NetlinkSyscalls.SockaddrNl>()) != 0)
            {
                throw new NetlinkException("bind(AF_NETLINK)", Marshal.GetLastPInvokeError());
            }

            var length = Marshal.SizeOf<NetlinkSyscalls.SockaddrNl>();
            if (NetlinkSyscalls.GetSockName(fd, out var bound, ref length) != 0)
            {
                throw new NetlinkException("getsockname(AF_NETLINK)", Marshal.GetLastPInvokeError());
            }

            return new NetlinkSocket(fd, bound.PortId);
        }
        catch
        {
            _ = NetlinkSyscalls.Close(fd);
            throw;
        }
    }

    /// <summary>Sends a request with NLM_F_ACK and waits for the ACK; a negative answer throws <see cref="NetlinkException"/>.</summary>
    public void Request(NetlinkMessageBuilder message, string operation)
    {
        lock (_lock)
        {
            message.Flags |= FlagRequest | FlagAck;
            var sequence = NextSequence();
            SendLocked(message.Finish(sequence), operation);
            while (true)
            {
                var received = ReceiveLocked(operation);
                foreach (var reply in new NetlinkMessageEnumerator(received))
                {
                    if (reply.Sequence != sequence || reply.Type != NlmsgError)
                    {
                        continue;
                    }

                    ThrowIfError(reply, operation);
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Sends a dump request and hands every reply message to <paramref name="handler"/> until NLMSG_DONE. Returns
    /// false when the kernel flagged the dump as interrupted (the data changed meanwhile; the caller should retry).
    /// </summary>
    public bool Dump(NetlinkMessageBuilder message, string operation, NetlinkMessageHandler handler)
    {
        lock (_lock)
        {
            message.Flags |= FlagRequest | FlagDump;
            var sequence = NextSequence();
            SendLocked(message.Finish(sequence), operation);
            var consistent = true;
            while (true)
            {
                var received = ReceiveLocked(operation);
                foreach (var reply in new NetlinkMessageEnumerator(received))
                {
                    if (reply.Sequence != sequence)
                    {
                        continue;
                    }

                    if ((reply.Flags & FlagDumpInterrupted) != 0)
                    {
                        consistent = false;
                    }

                    switch (reply.Type)
                    {
                        case NlmsgError:
                            ThrowIfError(reply, operation);
                            return consistent;
                        case NlmsgDone:
                            if (reply.Payload.Length >= 4 && BinaryPrimitives.ReadInt32LittleEndian(reply.Payload) is var status and < 0)
                            {
                                throw new NetlinkException(operation, -status, ExtAckText(reply.Payload[4..]));
                            }

                            return consistent;
                        case NlmsgNoop:
                            break;
                        case NlmsgOverrun:
                            throw new NetlinkException(operation, 105, "netlink receive buffer overrun");
                        default:
                            handler(reply);
                            break;
                    }
                }
            }
        }
    }

    /// <summary>Sends one request that answers with a single message (not a dump) and hands it to <paramref name="handler"/>.</summary>
    public void Query(NetlinkMessageBuilder message, string operation, NetlinkMessageHandler handler)
    {
        lock (_lock)
        {
            message.Flags |= FlagRequest;
            var sequence = NextSequence();
            SendLocked(message.Finish(sequence), operation);
            while (true)
            {
                var received = ReceiveLocked(operation);
                foreach (var reply in new NetlinkMessageEnumerator(received))
                {
                    if (reply.Sequence != sequence)
                    {
                        continue;
                    }

                    if (reply.Type == NlmsgError)
                    {
                        ThrowIfError(reply, operation);
                        throw new NetlinkProtocolException($"{operation}: the kernel acknowledged without an answer.");
                    }

                    handler(reply);
                    return;
                }
            }
        }
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            _ = NetlinkSyscalls.Close(fd);
        }
    }

    /// <summary>Throws for an NLMSG_ERROR with a non-zero code (zero is the ACK).</summary>
    internal static void ThrowIfError(in NetlinkMessage reply, string operation)
    {
        var payload = reply.Payload;
        if (payload.Length < 4)
        {
            throw new NetlinkProtocolException($"{operation}: NLMSG_ERROR of {payload.Length} bytes.");
        }

        var code = BinaryPrimitives.ReadInt32LittleEndian(payload);
        if (code == 0)
        {
            return;
        }

        string? text = null;
        if ((reply.Flags & FlagAckTlvs) != 0 && payload.Length >= 4 + NetlinkMessageBuilder.HeaderLength)
        {
            // The original request follows the code: its header only when capped, else all of it.
            var originalLength = (reply.Flags & FlagAckCapped) != 0
                ? NetlinkMessageBuilder.HeaderLength
                : (int)BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]);
            var start = 4 + NetlinkMessageBuilder.Align(originalLength);
            if (start <= payload.Length)
            {
                text = ExtAckText(payload[start..]);
            }
        }

        throw new NetlinkException(operation, -code, text);
    }

    private static string? ExtAckText(ReadOnlySpan<byte> tlvs)
    {
        foreach (var attribute in new NetlinkAttributes(tlvs))
        {
            if (attribute.Type == ExtAckMessage)
            {
                return attribute.String;
            }
        }

        return null;
    }

    private static int CreateSocket(int protocol)
    {
        var fd = NetlinkSyscalls.Socket(NetlinkSyscalls.AfNetlink, NetlinkSyscalls.SockRaw | NetlinkSyscalls.SockCloexec, protocol);
        return fd >= 0 ? fd : throw new NetlinkException($"socket(AF_NETLINK, {protocol})", Marshal.GetLastPInvokeError());
    }

    private uint NextSequence()
    {
        _sequence++;
        if (_sequence == 0)
        {
            _sequence = 1;
        }

        return _sequence;
    }

    private unsafe void SendLocked(ReadOnlySpan<byte> message, string operation)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        fixed (byte* p = message)
        {
            while (true)
            {
                var sent = NetlinkSyscalls.Send(_fd, p, (nuint)message.Length, 0);
                if (sent >= 0)
                {
                    return;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != NetlinkSyscalls.Eintr)
                {
                    throw new NetlinkException($"{operation}: send", errno);
                }
            }
        }
    }

    private unsafe ReadOnlySpan<byte> ReceiveLocked(string operation)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        while (true)
        {
            nint length;
            fixed (byte* p = _receiveBuffer)
            {
                // Peek with MSG_TRUNC first: it returns the datagram's full size, so a large one is never cut.
                length = NetlinkSyscalls.Recv(_fd, p, (nuint)_receiveBuffer.Length, NetlinkSyscalls.MsgPeek | NetlinkSyscalls.MsgTrunc);
            }

            if (length < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == NetlinkSyscalls.Eintr)
                {
                    continue;
                }

                throw new NetlinkException($"{operation}: recv", errno);
            }

            if (length > _receiveBuffer.Length)
            {
                _receiveBuffer = GC.AllocateArray<byte>((int)length, pinned: true);
            }

            fixed (byte* p = _receiveBuffer)
            {
                length = NetlinkSyscalls.Recv(_fd, p, (nuint)_receiveBuffer.Length, 0);
            }

            if (length < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == NetlinkSyscalls.Eintr)
                {
                    continue;
                }

                throw new NetlinkException($"{operation}: recv", errno);
            }

            return _receiveBuffer.AsSpan(0, (int)length);
        }
    }
}
