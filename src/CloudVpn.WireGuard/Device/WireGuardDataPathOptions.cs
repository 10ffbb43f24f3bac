using CloudVpn.WireGuard.Tun;
using CloudVpn.WireGuard.Udp;

namespace CloudVpn.WireGuard.Device;

/// <summary>
/// The data-path techniques of a <see cref="WireGuardDevice"/>, each of which can be turned off (for a kernel that lacks
/// a feature, and to measure what each one gains). The defaults turn everything on; a feature the kernel refuses falls
/// back by itself (see <see cref="WireGuardDevice.DataPath"/>).
/// </summary>
public sealed record WireGuardDataPathOptions
{
    /// <summary>
    /// Batches from the TUN and UDP readers through the engine (true, the default), or one packet at a time from read
    /// to write (false).
    /// </summary>
    public bool Batching { get; init; } = true;

    /// <summary>Threads that help the readers with the cryptography of a batch; null: processors minus one.</summary>
    public int? CryptoWorkers { get; init; }

    /// <summary>TUN offloads (IFF_VNET_HDR, TSO/USO super-packets on read, TCP coalescing on write) and batch size.</summary>
    public TunOptions Tun { get; init; } = new();

    /// <summary>UDP batching (recvmmsg/sendmmsg), GSO on send, GRO on receive, and batch size.</summary>
    public UdpBatchOptions Udp { get; init; } = UdpBatchOptions.Default;

    /// <summary>Equal when every switch and size is equal (<see cref="TunOptions"/> compared by value too).</summary>
    public bool Equals(WireGuardDataPathOptions? other) =>
        other is not null && Batching == other.Batching && CryptoWorkers == other.CryptoWorkers &&
        Tun.Offloads == other.Tun.Offloads && Tun.Coalesce == other.Tun.Coalesce && Tun.BatchSize == other.Tun.BatchSize &&
        Udp == other.Udp;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Batching, CryptoWorkers, Tun.Offloads, Tun.Coalesce, Tun.BatchSize, Udp);

    /// <summary>
    /// The options from environment variables, as the drop-in and the benchmarks use them: <c>CLOUDVPN_WG_BATCHING</c>,
    /// <c>CLOUDVPN_WG_CRYPTO_WORKERS</c>, <c>CLOUDVPN_WG_TUN_OFFLOADS</c>, <c>CLOUDVPN_WG_TUN_COALESCE</c>,
    /// <c>CLOUDVPN_WG_UDP_MMSG</c>, <c>CLOUDVPN_WG_UDP_GSO</c>, <c>CLOUDVPN_WG_UDP_GRO</c> (<c>0</c>/<c>1</c>, or a
    /// number of workers) and <c>CLOUDVPN_WG_UDP_BUFFER</c> (socket buffer bytes); unset variables keep the defaults.
    /// </summary>
    /// <exception cref="ArgumentException">A variable holds something else; the message names it.</exception>
    public static WireGuardDataPathOptions FromEnvironment(Func<string, string?>? read = null)
    {
        read ??= Environment.GetEnvironmentVariable;
        var defaults = new WireGuardDataPathOptions();
        bool Flag(string name, bool fallback) => read(name) switch
        {
            null or "" => fallback,
            "1" or "true" or "on" => true,
            "0" or "false" or "off" => false,
            var other => throw new ArgumentException($"{name}: '{other}' is not 0 or 1."),
        };

        int? workers = read("CLOUDVPN_WG_CRYPTO_WORKERS") switch
        {
            null or "" => null,
            var text when int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n <= 256 => n,
            var other => throw new ArgumentException($"CLOUDVPN_WG_CRYPTO_WORKERS: '{other}' is not a number of threads from 0 to 256."),
        };

        var buffer = read("CLOUDVPN_WG_UDP_BUFFER") switch
        {
            null or "" => defaults.Udp.SocketBufferSize,
            var text when int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) &&
                n is >= UdpBatchOptions.MinSocketBufferSize and <= UdpBatchOptions.MaxSocketBufferSize => n,
            var other => throw new ArgumentException($"CLOUDVPN_WG_UDP_BUFFER: '{other}' is not a byte count from {UdpBatchOptions.MinSocketBufferSize} to {UdpBatchOptions.MaxSocketBufferSize}."),
        };

        return new WireGuardDataPathOptions
        {
            Batching = Flag("CLOUDVPN_WG_BATCHING", defaults.Batching),
            CryptoWorkers = workers,
            Tun = new TunOptions
            {
                Offloads = Flag("CLOUDVPN_WG_TUN_OFFLOADS", defaults.Tun.Offloads),
                Coalesce = Flag("CLOUDVPN_WG_TUN_COALESCE", defaults.Tun.Coalesce),
                BatchSize = defaults.Tun.BatchSize,
            },
            Udp = defaults.Udp with
            {
                UseMmsg = Flag("CLOUDVPN_WG_UDP_MMSG", defaults.Udp.UseMmsg),
                UseGso = Flag("CLOUDVPN_WG_UDP_GSO", defaults.Udp.UseGso),
                UseGro = Flag("CLOUDVPN_WG_UDP_GRO", defaults.Udp.UseGro),
                SocketBufferSize = buffer,
            },
        };
    }
}
