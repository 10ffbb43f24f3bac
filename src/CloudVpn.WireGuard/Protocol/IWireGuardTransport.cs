using System.Net;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Where the engine puts what it produces: encrypted datagrams for the UDP socket and decrypted IP packets for the TUN
/// device. Implemented by the device; tests wire two engines through an in-memory one. Both calls may come from any
/// thread the engine is called on (and from its timers); the span is only valid during the call.
/// </summary>
public interface IWireGuardTransport
{
    /// <summary>Sends one UDP datagram to <paramref name="destination"/>.</summary>
    void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination);

    /// <summary>Writes one decrypted IP packet to the TUN device.</summary>
    void WriteToTun(ReadOnlySpan<byte> ipPacket);
}
