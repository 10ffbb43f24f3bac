namespace CloudVpn;

/// <summary>Top-level CloudVpn settings (configuration section <c>CloudVpn</c>).</summary>
public sealed class CloudVpnOptions
{
    /// <summary>The configuration section these options bind to by convention.</summary>
    public const string SectionName = "CloudVpn";

    /// <summary>
    /// Which driver to use: a family (<c>wireguard</c>, <c>openvpn</c>) picks the best available driver of that
    /// family; a driver name (<c>wireguard-kernel</c>, <c>wireguard-userspace</c>) forces that driver.
    /// </summary>
    public string Driver { get; set; } = "wireguard";

    /// <summary>Name of the default key store; null picks the first registered store.</summary>
    public string? DefaultKeyStore { get; set; }
}
