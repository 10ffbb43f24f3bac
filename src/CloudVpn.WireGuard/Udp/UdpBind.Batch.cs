using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CloudVpn.WireGuard.Buffers;
using static CloudVpn.WireGuard.Udp.UdpSyscalls;

namespace CloudVpn.WireGuard.Udp;

/// <content>Batched I/O: <c>recvmmsg</c> with UDP GRO on receive, <c>sendmmsg</c> with UDP GSO on send.</content>
public sealed partial class UdpBind
{
    /// <summary>Bytes of each received message's region: GRO coalesces up to 64 KiB.</summary>
    internal const int ReceiveRegion = 65536;

    /// <summary>Most datagrams the kernel coalesces into one GRO buffer or accepts in one GSO send (UDP_MAX_SEGMENTS).</summary>
    internal const int MaxSegments = 64;

    /// <summary>Most payload bytes of one GSO send (an IPv4 datagram's 65535 less its IP and UDP headers).</summary>
    internal const int MaxGsoBytes = 65507;

    // one spare per thread that may send at once (crypto workers, timers): beyond that a send allocates its scratch
    private readonly SendScratch?[] _spareScratch = new SendScratch?[Math.Max(4, Environment.ProcessorCount + 2)];

    /// <summary>
    /// Sends every entry of <paramref name="batch"/> whose <see cref="PacketBatch.Endpoints"/> entry is set, in order.
    /// Runs of consecutive entries to the same endpoint with the same length (the last may be shorter) leave as one UDP
    /// GSO send; all messages go through <c>sendmmsg</c>, <see cref="UdpBatchOptions.BatchSize"/> at a time.
    /// Thread-safe (with <see cref="Send"/>, other batches and <see cref="Rebind"/>); failures are counted in
    /// <see cref="SendErrors"/>, not thrown.
    /// </summary>
    /// <returns>How many entries the kernel took.</returns>
    public int SendBatch(PacketBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var bound = _bound;
        var added = false;
        try
        {
            bound.Handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            // closed by Rebind or Dispose: the batch is lost, as on a real port change
        }

        if (!added)
        {
            var skipped = 0;
            for (var i = 0; i < batch.Count; i++)
            {
                skipped += batch.Endpoints[i] is null ? 0 : 1;
            }

            Interlocked.Add(ref _sendErrors, skipped);
            return 0;
        }

        var scratch = RentScratch();
        try
        {
            return SendBatchCore((int)bound.Handle.DangerousGetHandle(), bound.Cache, batch, scratch);
        }
        finally
        {
            ReturnScratch(scratch);
            bound.Handle.DangerousRelease();
        }
    }

    private static unsafe UdpOffloads Probe(Bound bound, UdpBatchOptions options)
    {
        var active = UdpOffloads.None;
        var fd = (int)bound.Handle.DangerousGetHandle();
        if (options.UseMmsg && !options.SimulateUnsupported.HasFlag(UdpOffloads.Mmsg))
        {
            active |= UdpOffloads.Mmsg;

            // an empty sendmmsg (sends nothing, returns 0): the runtime binds an import at its first call and allocates
            // a little on the calling thread for it; this makes that call here, not on the first bulk send of a reader
            // (recvmmsg is bound by the receive loop's first call, before any packet)
            _ = SendMmsg(fd, null, 0, 0);
        }

        if (options.UseGso && !options.SimulateUnsupported.HasFlag(UdpOffloads.Gso) && SupportsGso(fd))
        {
            active |= UdpOffloads.Gso;
        }

        // GRO is switched on only by the batch receiver (a per-datagram reader could not split what it coalesces)
        if (options.UseGro && !options.SimulateUnsupported.HasFlag(UdpOffloads.Gro) && SetGro(fd, true))
        {
            SetGro(fd, false);
            active |= UdpOffloads.Gro;
        }

        return active;
    }

    private static unsafe bool SupportsGso(int fd)
    {
        int value = 0;
        uint length = sizeof(int);
        return GetSockOpt(fd, SolUdp, UdpSegment, &value, &length) == 0;
    }

    private static unsafe bool SetGro(int fd, bool on)
    {
        int value = on ? 1 : 0;
        return SetSockOpt(fd, SolUdp, UdpGro, &value, sizeof(int)) == 0;
    }

    private bool Has(UdpOffloads feature) => (Volatile.Read(ref _offloads) & (int)feature) != 0;

    private void Drop(UdpOffloads feature) => Interlocked.And(ref _offloads, ~(int)feature);

    private SendScratch RentScratch()
    {
        for (var i = 0; i < _spareScratch.Length; i++)
        {
            var spare = Interlocked.Exchange(ref _spareScratch[i], null);
            if (spare is not null)
            {
                return spare;
            }
        }

        return new SendScratch(_options.BatchSize);
    }

    private void ReturnScratch(SendScratch scratch)
    {
        for (var i = 0; i < _spareScratch.Length; i++)
        {
            if (Interlocked.CompareExchange(ref _spareScratch[i], scratch, null) is null)
            {
                return;
            }
        }
    }

    private static bool SameEndPoint(IPEndPoint a, IPEndPoint? b) => ReferenceEquals(a, b) || a.Equals(b);

    /// <summary>True when entry <paramref name="index"/> lies inside the arena and fits a UDP datagram (never hand the kernel memory past it).</summary>
    private static bool InArena(PacketBatch batch, int index)
    {
        var offset = batch.Offsets[index];
        var length = batch.Lengths[index];
        return offset >= 0 && length is >= 0 and <= PacketBatch.MaxPacket && (long)offset + length <= batch.ArenaArray.Length;
    }

    private unsafe int SendBatchCore(int fd, UdpEndpointCache cache, PacketBatch batch, SendScratch scratch)
    {
        var sent = 0;
        var messages = 0;
        var iovs = 0;
        var count = batch.Count;
        var gso = Has(UdpOffloads.Gso);
        IPEndPoint? lastEndPoint = null;
        SocketAddress? lastAddress = null;
        fixed (byte* arena = batch.ArenaArray)
        {
            var i = 0;
            while (i < count)
            {
                var endPoint = batch.Endpoints[i];
                if (endPoint is null)
                {
                    i++;
                    continue;
                }

                if (!ReferenceEquals(endPoint, lastEndPoint))
                {
                    lastAddress = cache.ToSocketAddress(endPoint);
                    lastEndPoint = endPoint;
                }

                if (lastAddress is null || !InArena(batch, i))
                {
                    // the socket cannot reach that family (IPv6 peer on an IPv4-only host), or the entry is not a datagram
                    Interlocked.Increment(ref _sendErrors);
                    i++;
                    continue;
                }

                if (messages == scratch.Capacity || iovs + MaxSegments > scratch.IovCapacity)
                {
                    sent += Flush(fd, scratch, messages);
                    messages = 0;
                    iovs = 0;
                }

                // the run: entries of the first one's length to the same endpoint, the last of them possibly shorter
                var segment = batch.Lengths[i];
                var segments = 1;
                var bytes = segment;
                if (gso && segment > 0)
                {
                    while (i + segments < count && segments < MaxSegments)
                    {
                        var next = i + segments;
                        var length = batch.Lengths[next];
                        if (length > segment || length == 0 || bytes + length > MaxGsoBytes || !SameEndPoint(endPoint, batch.Endpoints[next]) || !InArena(batch, next))
                        {
                            break;
                        }

                        segments++;
                        bytes += length;
                        if (length < segment)
                        {
                            break;
                        }
                    }
                }

                var message = &scratch.Headers[messages];
                var name = scratch.Names + (messages * NameSize);
                var addressSize = lastAddress.Size;
                lastAddress.Buffer.Span[..addressSize].CopyTo(new Span<byte>(name, NameSize));
                var iov = scratch.Iovs + iovs;
                for (var k = 0; k < segments; k++)
                {
                    iov[k].Base = arena + batch.Offsets[i + k];
                    iov[k].Length = (nuint)batch.Lengths[i + k];
                }

                message->Header.Name = name;
                message->Header.NameLength = (uint)addressSize;
                message->Header.Iov = iov;
                message->Header.IovLength = (nuint)segments;
                message->Header.Flags = 0;
                message->Length = 0;
                if (segments > 1)
                {
                    var control = scratch.Control + (messages * scratch.ControlSize);
                    *(nuint*)control = (nuint)CmsgLen(sizeof(ushort));
                    *(int*)(control + nint.Size) = SolUdp;
                    *(int*)(control + nint.Size + 4) = UdpSegment;
                    *(ushort*)(control + CmsgHeaderSize) = (ushort)segment;
                    message->Header.Control = control;
                    message->Header.ControlLength = (nuint)scratch.ControlSize;
                }
                else
                {
                    message->Header.Control = null;
                    message->Header.ControlLength = 0;
                }

                scratch.Segments[messages] = segments;
                messages++;
                iovs += segments;
                i += segments;
            }

            if (messages > 0)
            {
                sent += Flush(fd, scratch, messages);
            }
        }

        return sent;
    }

    /// <summary>Sends the prepared messages, going past refused ones; returns the datagrams the kernel took.</summary>
    private unsafe int Flush(int fd, SendScratch scratch, int messages) => SendMessages(fd, scratch.Headers, scratch.Segments, messages);

    private unsafe int SendMessages(int fd, MMsgHdr* headers, int[] segments, int messages)
    {
        var sent = 0;
        var at = 0;
        while (at < messages)
        {
            int done;
            if (Has(UdpOffloads.Mmsg))
            {
                done = SendMmsg(fd, headers + at, (uint)(messages - at), 0);
            }
            else
            {
                done = SendMsg(fd, &headers[at].Header, 0) >= 0 ? 1 : -1;
            }

            if (done > 0)
            {
                for (var k = 0; k < done; k++)
                {
                    sent += segments[at + k];
                }

                at += done;
                continue;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == Eintr)
            {
                continue;
            }

            if (errno == Enosys && Has(UdpOffloads.Mmsg))
            {
                Drop(UdpOffloads.Mmsg);
                continue;
            }

            if (segments[at] > 1 && errno is Eio or Einval or Enoprotoopt)
            {
                // the kernel or the route refused the GSO send (no checksum offload, segment over the MTU, old kernel):
                // GSO stays off from now on, and this run leaves one datagram per message
                Drop(UdpOffloads.Gso);
                Interlocked.Increment(ref _gsoFallbacks);
                sent += SendSplit(fd, &headers[at].Header, segments[at]);
                at++;
                continue;
            }

            Interlocked.Add(ref _sendErrors, segments[at]);
            at++;
        }

        return sent;
    }

    [SkipLocalsInit]
    private unsafe int SendSplit(int fd, MsgHdr* run, int count)
    {
        var singles = stackalloc MMsgHdr[MaxSegments];
        for (var k = 0; k < count; k++)
        {
            singles[k] = default;
            singles[k].Header.Name = run->Name;
            singles[k].Header.NameLength = run->NameLength;
            singles[k].Header.Iov = run->Iov + k;
            singles[k].Header.IovLength = 1;
        }

        return SendMessages(fd, singles, s_ones, count);
    }

    private static readonly int[] s_ones = Enumerable.Repeat(1, MaxSegments).ToArray();

    [SkipLocalsInit]
    private unsafe void ReceiveBatchLoop(Bound bound)
    {
        var handler = _batchHandler!;
        var handle = bound.Handle;
        var gro = Has(UdpOffloads.Gro) && SetGro((int)handle.DangerousGetHandle(), true);
        if (!gro)
        {
            Drop(UdpOffloads.Gro);
        }

        var size = _options.BatchSize;
        var controlSize = CmsgSpace(sizeof(int)) * 2;
        var batch = new PacketBatch(size * (gro ? MaxSegments : 1), size * ReceiveRegion);
        var headers = GC.AllocateArray<MMsgHdr>(size, pinned: true);
        var iovs = GC.AllocateArray<IoVec>(size, pinned: true);
        var names = GC.AllocateArray<byte>(size * NameSize, pinned: true);
        var control = GC.AllocateArray<byte>(size * controlSize, pinned: true);
        fixed (MMsgHdr* h = headers)
        fixed (IoVec* v = iovs)
        fixed (byte* arena = batch.ArenaArray, n = names, c = control)
        {
            for (var m = 0; m < size; m++)
            {
                v[m].Base = arena + ((long)m * ReceiveRegion);
                v[m].Length = ReceiveRegion;
                h[m].Header.Iov = v + m;
                h[m].Header.IovLength = 1;
                h[m].Header.Name = n + (m * NameSize);
                h[m].Header.Control = c + (m * controlSize);
            }

            while (true)
            {
                for (var m = 0; m < size; m++)
                {
                    h[m].Header.NameLength = NameSize;
                    h[m].Header.ControlLength = (nuint)controlSize;
                    h[m].Header.Flags = 0;
                    h[m].Length = 0;
                }

                var added = false;
                int received;
                int errno = 0;
                try
                {
                    handle.DangerousAddRef(ref added);
                }
                catch (ObjectDisposedException)
                {
                    return; // closed by Rebind or Dispose
                }

                try
                {
                    var fd = (int)handle.DangerousGetHandle();
                    if (Has(UdpOffloads.Mmsg))
                    {
                        received = RecvMmsg(fd, h, (uint)size, MsgWaitForOne, null);
                    }
                    else
                    {
                        var bytes = RecvMsg(fd, &h[0].Header, 0);
                        h[0].Length = (uint)Math.Max(bytes, 0);
                        received = bytes >= 0 ? 1 : -1;
                    }

                    if (received < 0)
                    {
                        errno = Marshal.GetLastPInvokeError();
                    }
                }
                finally
                {
                    handle.DangerousRelease();
                }

                if (handle.IsClosed)
                {
                    return; // shut down under the call by Rebind or Dispose
                }

                if (received < 0)
                {
                    if (errno == Enosys && Has(UdpOffloads.Mmsg))
                    {
                        Drop(UdpOffloads.Mmsg);
                    }
                    else if (errno == Eagain)
                    {
                        // a non-blocking descriptor: wait for data (a shutdown wakes the poll too)
                        var poll = new PollFd { Fd = (int)handle.DangerousGetHandle(), Events = PollIn };
                        _ = Poll(&poll, 1, 1000);
                    }
                    else if (errno is not (Eintr or Econnrefused or Enomem or Enobufs or Ehostunreach or Enetunreach))
                    {
                        // not an error of one datagram: report it and do not spin on it
                        _onError?.Invoke(new IOException($"UDP receive failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})"));
                        Thread.Sleep(10);
                    }

                    // EINTR, ICMP errors of earlier sends (ECONNREFUSED ...), ENOMEM: not fatal
                    continue;
                }

                batch.Clear();
                for (var m = 0; m < received; m++)
                {
                    var nameLength = (int)h[m].Header.NameLength;
                    if (nameLength == 0 || (h[m].Header.Flags & MsgTrunc) != 0)
                    {
                        continue; // no sender (the socket shut down) or a datagram over 64 KiB
                    }

                    var length = (int)h[m].Length;
                    var segment = GroSegment(&h[m].Header);
                    if (segment <= 0 || segment > length)
                    {
                        segment = Math.Max(length, 1);
                    }

                    var start = m * ReceiveRegion;
                    var name = new ReadOnlySpan<byte>(n + (m * NameSize), nameLength);
                    for (var at = 0; at < length || (length == 0 && at == 0); at += segment)
                    {
                        if (!batch.TryAdd(start + at, Math.Min(segment, length - at)))
                        {
                            break;
                        }

                        var source = batch.Sources[batch.Count - 1];
                        name.CopyTo(source.Buffer.Span);
                        source.Size = nameLength;
                        if (length == 0)
                        {
                            break;
                        }
                    }
                }

                if (batch.Count == 0)
                {
                    continue;
                }

                try
                {
                    handler(batch);
                }
#pragma warning disable CA1031 // the receiver must survive a faulty handler; the error is reported
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    _onError?.Invoke(ex);
                }
            }
        }
    }

    /// <summary>The segment size of a GRO-coalesced message (its UDP_GRO control message), 0 when there is none.</summary>
    private static unsafe int GroSegment(MsgHdr* header)
    {
        var control = header->Control;
        var end = control + header->ControlLength;
        var at = control;
        while (at + CmsgHeaderSize <= end)
        {
            var length = (int)*(nuint*)at;
            if (length < CmsgHeaderSize || at + length > end)
            {
                break;
            }

            if (*(int*)(at + nint.Size) == SolUdp && *(int*)(at + nint.Size + 4) == UdpGro && length >= CmsgLen(sizeof(int)))
            {
                return *(int*)(at + CmsgHeaderSize);
            }

            at += Align(length);
        }

        return 0;
    }

    /// <summary>The pinned message, iovec, address and control arrays of one <see cref="SendBatch"/> call.</summary>
    private sealed unsafe class SendScratch
    {
        private readonly MMsgHdr[] _headers;
        private readonly IoVec[] _iovs;
        private readonly byte[] _names;
        private readonly byte[] _control;

        public SendScratch(int capacity)
        {
            Capacity = capacity;
            IovCapacity = Math.Max(capacity, Math.Min(capacity * MaxSegments, 4096));
            ControlSize = CmsgSpace(sizeof(ushort));
            _headers = GC.AllocateArray<MMsgHdr>(capacity, pinned: true);
            _iovs = GC.AllocateArray<IoVec>(IovCapacity, pinned: true);
            _names = GC.AllocateArray<byte>(capacity * NameSize, pinned: true);
            _control = GC.AllocateArray<byte>(capacity * ControlSize, pinned: true);
            Segments = new int[capacity];
        }

        public int Capacity { get; }

        public int IovCapacity { get; }

        public int ControlSize { get; }

        public int[] Segments { get; }

        // the arrays are pinned for the object's life, so their addresses stay valid
        public MMsgHdr* Headers => (MMsgHdr*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_headers));

        public IoVec* Iovs => (IoVec*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_iovs));

        public byte* Names => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_names));

        public byte* Control => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_control));
    }
}
