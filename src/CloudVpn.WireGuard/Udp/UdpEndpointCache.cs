using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace CloudVpn.WireGuard.Udp;

/// <summary>
/// Maps between the socket's raw addresses and <see cref="IPEndPoint"/> objects so that the steady state (the same few
/// peers sending and receiving) allocates nothing: a received address finds the cached endpoint, and an endpoint to send
/// to finds its cached serialized address. Bounded: when it grows past its limit (spoofed sources) it starts over.
/// </summary>
internal sealed class UdpEndpointCache(AddressFamily socketFamily, int limit = 4096)
{
    private readonly ConcurrentDictionary<SocketAddress, IPEndPoint> _byAddress = new();
    private readonly ConcurrentDictionary<IPEndPoint, SocketAddress> _byEndPoint = new();

    public int Count => _byAddress.Count + _byEndPoint.Count;

    /// <summary>The endpoint for a received address; IPv4-mapped IPv6 sources come back as plain IPv4.</summary>
    public IPEndPoint FromSocketAddress(SocketAddress received)
    {
        if (_byAddress.TryGetValue(received, out var cached))
        {
            return cached;
        }

        var template = received.Family == AddressFamily.InterNetworkV6 ? new IPEndPoint(IPAddress.IPv6Any, 0) : new IPEndPoint(IPAddress.Any, 0);
        var endPoint = (IPEndPoint)template.Create(received);
        if (endPoint.Address.IsIPv4MappedToIPv6)
        {
            endPoint = new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port);
        }

        TrimIfFull(_byAddress);
        var copy = new SocketAddress(received.Family, received.Size);
        received.Buffer.Span[..received.Size].CopyTo(copy.Buffer.Span);
        _byAddress[copy] = endPoint;
        return endPoint;
    }

    /// <summary>The serialized form of <paramref name="endPoint"/> for this socket's family (IPv4 mapped on a dual-stack socket).</summary>
    /// <returns>Null when the socket cannot reach that family.</returns>
    public SocketAddress? ToSocketAddress(IPEndPoint endPoint)
    {
        if (_byEndPoint.TryGetValue(endPoint, out var cached))
        {
            return cached;
        }

        IPEndPoint target;
        if (socketFamily == AddressFamily.InterNetworkV6)
        {
            target = endPoint.AddressFamily == AddressFamily.InterNetwork ? new IPEndPoint(endPoint.Address.MapToIPv6(), endPoint.Port) : endPoint;
        }
        else if (endPoint.AddressFamily == AddressFamily.InterNetwork)
        {
            target = endPoint;
        }
        else if (endPoint.Address.IsIPv4MappedToIPv6)
        {
            target = new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port);
        }
        else
        {
            return null;
        }

        var serialized = target.Serialize();
        TrimIfFull(_byEndPoint);
        _byEndPoint[endPoint] = serialized;
        return serialized;
    }

    private void TrimIfFull<TKey, TValue>(ConcurrentDictionary<TKey, TValue> map)
        where TKey : notnull
    {
        if (map.Count >= limit)
        {
            map.Clear();
        }
    }
}
