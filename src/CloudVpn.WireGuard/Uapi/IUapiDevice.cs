namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// A WireGuard device as the userspace configuration API sees it: <c>wg show</c> reads it with <see cref="Get"/>,
/// <c>wg set</c>/<c>setconf</c>/<c>syncconf</c> change it with <see cref="Set"/>.
/// </summary>
/// <remarks>
/// <see cref="UapiServer"/> never calls these two methods concurrently (it serializes requests from all connections,
/// as wireguard-go does with its IPC lock), but they may run concurrently with the device's data path.
/// </remarks>
public interface IUapiDevice
{
    /// <summary>
    /// A snapshot of the device. The caller owns the returned state and disposes it (which zeroes its key copies),
    /// so return copies of the keys, never the device's own key objects.
    /// </summary>
    UapiDeviceState Get();

    /// <summary>
    /// Applies a parsed <c>set=1</c> request with wg semantics (see <see cref="UapiSetRequest"/>). The caller owns
    /// the request and disposes it after the call: copy any key that must be kept.
    /// </summary>
    /// <exception cref="UapiException">The request cannot be applied (the errno is answered to the client).</exception>
    void Set(UapiSetRequest request);
}
