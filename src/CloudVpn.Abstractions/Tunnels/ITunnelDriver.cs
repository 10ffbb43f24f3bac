namespace CloudVpn.Tunnels;

/// <summary>
/// A tunnel backend (kernel WireGuard, userspace WireGuard, OpenVPN, ...): probes whether it can run on
/// this machine and opens tunnels from a <see cref="TunnelSpec"/>.
/// </summary>
public interface ITunnelDriver
{
    /// <summary>Unique driver name, for example <c>wireguard-kernel</c> or <c>wireguard-userspace</c>.</summary>
    string Name { get; }

    /// <summary>Protocol family the driver implements, for example <c>wireguard</c> or <c>openvpn</c>.</summary>
    string Family { get; }

    /// <summary>Preference inside the family: the selector tries higher values first.</summary>
    int Priority { get; }

    /// <summary>Checks whether the driver can run here; when it cannot, the result says why in words a user can act on.</summary>
    ValueTask<DriverProbeResult> ProbeAsync(CancellationToken cancellationToken = default);

    /// <summary>Creates the device described by <paramref name="spec"/> and applies its peers.</summary>
    ValueTask<ITunnel> OpenAsync(TunnelSpec spec, CancellationToken cancellationToken = default);
}

/// <summary>An open tunnel device.</summary>
public interface ITunnel : IAsyncDisposable
{
    /// <summary>Interface name of the device.</summary>
    string Name { get; }

    /// <summary>The driver that opened this tunnel.</summary>
    string DriverName { get; }

    /// <summary>
    /// Brings the device to <paramref name="desired"/> by changing only what differs (idempotent: applying the
    /// same spec twice changes nothing the second time).
    /// </summary>
    ValueTask<TunnelApplyResult> ApplyAsync(TunnelSpec desired, CancellationToken cancellationToken = default);

    /// <summary>Reads the live state of the device and its peers.</summary>
    ValueTask<TunnelStatus> GetStatusAsync(CancellationToken cancellationToken = default);

    /// <summary>Tears the device down. Calling it twice is harmless.</summary>
    ValueTask CloseAsync(CancellationToken cancellationToken = default);
}

/// <summary>Outcome of a driver probe.</summary>
/// <param name="IsAvailable">Whether the driver can run here.</param>
/// <param name="Reason">Why it can or cannot run, for logs and for the user.</param>
/// <param name="Details">Optional facts found by the probe (versions, capabilities).</param>
public sealed record DriverProbeResult(bool IsAvailable, string Reason, IReadOnlyDictionary<string, string>? Details = null)
{
    /// <summary>The driver can run.</summary>
    public static DriverProbeResult Available(string reason, IReadOnlyDictionary<string, string>? details = null) => new(true, reason, details);

    /// <summary>The driver cannot run, for the given reason.</summary>
    public static DriverProbeResult Unavailable(string reason, IReadOnlyDictionary<string, string>? details = null) => new(false, reason, details);
}

/// <summary>What an <see cref="ITunnel.ApplyAsync"/> call changed.</summary>
/// <param name="DeviceChanged">Device settings (key, port, MTU, addresses) changed.</param>
/// <param name="PeersAdded">Public keys of peers added.</param>
/// <param name="PeersUpdated">Public keys of peers whose settings changed.</param>
/// <param name="PeersRemoved">Public keys of peers removed.</param>
public sealed record TunnelApplyResult(
    bool DeviceChanged,
    IReadOnlyList<string> PeersAdded,
    IReadOnlyList<string> PeersUpdated,
    IReadOnlyList<string> PeersRemoved)
{
    /// <summary>Nothing changed.</summary>
    public static TunnelApplyResult NoChange { get; } = new(false, [], [], []);

    /// <summary>True when the call changed nothing.</summary>
    public bool IsNoOp => !DeviceChanged && PeersAdded.Count == 0 && PeersUpdated.Count == 0 && PeersRemoved.Count == 0;
}
