using System.Net;
using CloudVpn.WireGuard.Buffers;

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

    /// <summary>
    /// Sends the entries of <paramref name="batch"/> that have a destination in <see cref="PacketBatch.Endpoints"/>, in
    /// order. The default sends them one by one; a device overrides it with batched system calls.
    /// </summary>
    void SendDatagrams(PacketBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch.Endpoints[i] is { } destination)
            {
                SendDatagram(batch.Packet(i), destination);
            }
        }
    }

    /// <summary>
    /// Writes the entries of <paramref name="batch"/> with a length above 0 (IP packets) to the TUN device, in order.
    /// The default writes them one by one; a device overrides it (batched or coalesced writes).
    /// </summary>
    void WriteToTun(PacketBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch.Lengths[i] > 0)
            {
                WriteToTun(batch.Packet(i));
            }
        }
    }
}
