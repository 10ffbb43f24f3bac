namespace CloudVpn.WireGuard.Device;

/// <summary>How to create a <see cref="WireGuardDevice"/>.</summary>
public sealed class WireGuardDeviceOptions
{
    /// <summary>Interface name (at most 15 characters).</summary>
    public required string Name { get; init; }

    /// <summary>Interface MTU; 1420 suits a 1500-byte underlay for IPv4 and IPv6, as wireguard-go's default.</summary>
    public int Mtu { get; init; } = 1420;

    /// <summary>UDP port to listen on; 0 picks a free one (wg shows the port actually bound).</summary>
    public int ListenPort { get; init; }

    /// <summary>Firewall mark for the device's UDP packets (0: none).</summary>
    public uint FirewallMark { get; init; }

    /// <summary>
    /// Where the userspace API socket <c>&lt;name&gt;.sock</c> is created so that <c>wg</c> can drive the device;
    /// null starts no socket (the device is then configured only through <see cref="WireGuardDevice.Engine"/>).
    /// </summary>
    public string? UapiSocketDirectory { get; init; } = "/var/run/wireguard";

    /// <summary>
    /// When true (the default) a socket that cannot be served (directory not writable, another live process serving the
    /// name) fails <see cref="WireGuardDevice.Create"/>; when false the device runs without it and logs a warning.
    /// </summary>
    public bool UapiSocketRequired { get; init; } = true;

    /// <summary>Bring the interface up once created (wireguard-go leaves that to <c>ip link set up</c>).</summary>
    public bool BringUp { get; init; }

    /// <summary>Data-path techniques (batching, offloads, crypto workers); all on by default.</summary>
    public WireGuardDataPathOptions DataPath { get; init; } = new();
}
