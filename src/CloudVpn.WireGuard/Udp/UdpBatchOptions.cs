namespace CloudVpn.WireGuard.Udp;

/// <summary>The batched I/O features of <see cref="UdpBind"/>; each can be switched off (a kernel that lacks one falls back on its own).</summary>
[Flags]
public enum UdpOffloads
{
    /// <summary>One datagram per system call.</summary>
    None = 0,

    /// <summary><c>recvmmsg</c>/<c>sendmmsg</c>: many datagrams per system call.</summary>
    Mmsg = 1,

    /// <summary>UDP GSO (<c>UDP_SEGMENT</c>): a run of equal-sized datagrams to one endpoint leaves as one send.</summary>
    Gso = 2,

    /// <summary>UDP GRO (<c>UDP_GRO</c>): the kernel hands over coalesced datagrams with their segment size.</summary>
    Gro = 4,
}

/// <summary>How <see cref="UdpBind"/> batches its system calls. Every feature is probed when the socket opens and falls back when missing.</summary>
public sealed record UdpBatchOptions
{
    /// <summary>The largest <see cref="BatchSize"/> (the kernel's UIO_MAXIOV, the limit of <c>sendmmsg</c>/<c>recvmmsg</c>).</summary>
    public const int MaxBatchSize = 1024;

    /// <summary>Use <c>recvmmsg</c>/<c>sendmmsg</c> (default true); false: <c>recvmsg</c>/<c>sendmsg</c>, one message per call.</summary>
    public bool UseMmsg { get; init; } = true;

    /// <summary>Send runs of equal-sized datagrams to one endpoint as one UDP GSO send (<c>UDP_SEGMENT</c>; default true).</summary>
    public bool UseGso { get; init; } = true;

    /// <summary>Let the kernel coalesce received datagrams (<c>UDP_GRO</c>; default true); only the batch receiver enables it.</summary>
    public bool UseGro { get; init; } = true;

    /// <summary>Messages per <c>recvmmsg</c>/<c>sendmmsg</c> call (default 64, 1..1024).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Smallest and largest <see cref="SocketBufferSize"/>.</summary>
    public const int MinSocketBufferSize = 64 << 10, MaxSocketBufferSize = 64 << 20;

    /// <summary>
    /// Kernel send and receive buffer of the socket, in bytes (default 512 KiB; forced past net.core.[rw]mem_max with
    /// CAP_NET_ADMIN). These buffers are queues in front of the tunnel: under a bulk TCP stream the receiver's one
    /// stays full, so its size is the queueing delay every other packet sees. With batching the device drains them
    /// fast, so a small one keeps the round trip under load short (ping beside an iperf3 stream, two of our devices:
    /// 7 MiB 4.0-5.6 ms, 1 MiB 2.4-6.0 ms, 512 KiB 2.0-3.0 ms, 256 KiB 1.3-2.0 ms, the same 2.5-3.5 Gbit/s; wireguard-go
    /// 3.0-3.8 ms), while a larger one absorbs longer stalls of the reader threads (a very loaded node) before the
    /// kernel drops: 512 KiB holds about 130 ms of a 20 Mbit/s stream.
    /// </summary>
    public int SocketBufferSize { get; init; } = 512 << 10;

    /// <summary>The defaults: every feature on, 64 messages per call.</summary>
    public static UdpBatchOptions Default { get; } = new();

    /// <summary>Test hook: features the probe treats as missing from the kernel (as if <c>ENOPROTOOPT</c>/<c>ENOSYS</c>).</summary>
    internal UdpOffloads SimulateUnsupported { get; init; }

    /// <summary>Checks every field.</summary>
    /// <exception cref="ArgumentException">A field is out of range; the message names it.</exception>
    public void Validate()
    {
        if (BatchSize is < 1 or > MaxBatchSize)
        {
            throw new ArgumentException($"UdpBatchOptions.BatchSize: {BatchSize} is outside 1..{MaxBatchSize}.", nameof(BatchSize));
        }

        if (SocketBufferSize is < MinSocketBufferSize or > MaxSocketBufferSize)
        {
            throw new ArgumentException($"UdpBatchOptions.SocketBufferSize: {SocketBufferSize} is outside {MinSocketBufferSize}..{MaxSocketBufferSize} bytes.", nameof(SocketBufferSize));
        }
    }
}
