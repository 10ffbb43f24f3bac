namespace CloudVpn.WireGuard.Tun;

/// <summary>How a <see cref="TunDevice"/> is opened.</summary>
public sealed class TunOptions
{
    /// <summary>
    /// Open with <c>IFF_VNET_HDR</c> and ask for checksum, TSO and (where the kernel has it) USO offloads, so one read
    /// may return a 64 KiB super-packet (split by the reader) and a write may pass a coalesced one. When the kernel
    /// refuses, the device falls back (see <see cref="TunDevice.ActiveOffloads"/>). Default true.
    /// </summary>
    public bool Offloads { get; init; } = true;

    /// <summary>Merge consecutive TCP segments of a flow into one super-packet in <see cref="TunDevice.WriteBatch"/>
    /// (GRO-like; needs the TSO offloads to be active). Default true.</summary>
    public bool Coalesce { get; init; } = true;

    /// <summary>Entries in the batch the batch reader fills (1..4096). Default 128.</summary>
    public int BatchSize { get; init; } = 128;
}

/// <summary>The offloads the kernel accepted for a TUN device.</summary>
[Flags]
public enum TunOffloads
{
    /// <summary>No virtio_net_hdr: plain IP packets.</summary>
    None = 0,

    /// <summary><c>IFF_VNET_HDR</c> with <c>TUN_F_CSUM</c>: packets may carry a partial checksum to complete.</summary>
    Checksum = 1,

    /// <summary><c>TUN_F_TSO4</c>: TCP/IPv4 super-packets both ways.</summary>
    Tso4 = 2,

    /// <summary><c>TUN_F_TSO6</c>: TCP/IPv6 super-packets both ways.</summary>
    Tso6 = 4,

    /// <summary><c>TUN_F_USO4 | TUN_F_USO6</c>: UDP super-packets (Linux 6.2 and later).</summary>
    Uso = 8,
}
