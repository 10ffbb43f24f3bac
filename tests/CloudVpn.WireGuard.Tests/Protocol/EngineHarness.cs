using System.Buffers.Binary;
using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>Records what an engine sends; the harness delivers it.</summary>
internal sealed class RecordingTransport : IWireGuardTransport
{
    private readonly Lock _lock = new();

    public List<(byte[] Datagram, IPEndPoint Destination)> Outbox { get; } = [];

    public List<byte[]> Tun { get; } = [];

    public List<(byte[] Datagram, IPEndPoint Destination)> AllSent { get; } = [];

    /// <summary>When true, everything is dropped without being kept (allocation measurements).</summary>
    public bool Discard { get; set; }

    public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination)
    {
        if (Discard)
        {
            return;
        }

        lock (_lock)
        {
            var copy = datagram.ToArray();
            Outbox.Add((copy, new IPEndPoint(destination.Address, destination.Port)));
            AllSent.Add((copy, new IPEndPoint(destination.Address, destination.Port)));
        }
    }

    public void WriteToTun(ReadOnlySpan<byte> ipPacket)
    {
        if (Discard)
        {
            return;
        }

        lock (_lock)
        {
            Tun.Add(ipPacket.ToArray());
        }
    }

    public List<(byte[] Datagram, IPEndPoint Destination)> TakeOutbox()
    {
        lock (_lock)
        {
            var items = Outbox.ToList();
            Outbox.Clear();
            return items;
        }
    }
}

/// <summary>
/// Two engines in one process joined by an in-memory network, with a fake clock: A (10.0.0.1, 192.0.2.1:51820)
/// and B (10.0.0.2, 198.51.100.1:51820) each allow the other's /32.
/// </summary>
internal sealed class EnginePair : IDisposable
{
    public static readonly IPNetwork ATunnel = IPNetwork.Parse("10.0.0.1/32");
    public static readonly IPNetwork BTunnel = IPNetwork.Parse("10.0.0.2/32");

    public EnginePair(bool withPsk = false, bool aKnowsBEndpoint = true, bool bKnowsAEndpoint = false, ILogger<WireGuardEngine>? logger = null)
    {
        AKey = WireGuardSecretKey.GeneratePrivateKey();
        BKey = WireGuardSecretKey.GeneratePrivateKey();
        A = new WireGuardEngine(ATransport, Time, logger ?? NullLogger<WireGuardEngine>.Instance) { PrivateKey = AKey };
        B = new WireGuardEngine(BTransport, Time, logger ?? NullLogger<WireGuardEngine>.Instance) { PrivateKey = BKey };
        Psk = withPsk ? WireGuardSecretKey.GeneratePresharedKey() : null;
        var psk = Psk;
        A.SetPeer(new WireGuardPeerConfig
        {
            PublicKey = B.PublicKey, PresharedKey = psk, AllowedIps = [BTunnel, IPNetwork.Parse("fd00::2/128")],
            Endpoint = aKnowsBEndpoint ? BEndpoint : null,
        });
        B.SetPeer(new WireGuardPeerConfig
        {
            PublicKey = A.PublicKey, PresharedKey = psk, AllowedIps = [ATunnel, IPNetwork.Parse("fd00::1/128")],
            Endpoint = bKnowsAEndpoint ? AEndpoint : null,
        });
    }

    public WireGuardSecretKey? Psk { get; }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));

    public WireGuardSecretKey AKey { get; }

    public WireGuardSecretKey BKey { get; }

    public WireGuardEngine A { get; }

    public WireGuardEngine B { get; }

    public RecordingTransport ATransport { get; } = new();

    public RecordingTransport BTransport { get; } = new();

    /// <summary>Where A's datagrams appear to come from (changes when A roams).</summary>
    public IPEndPoint AEndpoint { get; set; } = new(IPAddress.Parse("192.0.2.1"), 51820);

    public IPEndPoint BEndpoint { get; } = new(IPAddress.Parse("198.51.100.1"), 51820);

    /// <summary>When false, datagrams are lost on the wire.</summary>
    public bool NetworkUp { get; set; } = true;

    /// <summary>Delivers queued datagrams both ways until nothing is in flight; returns how many were delivered.</summary>
    public int Pump(int maxRounds = 50)
    {
        var delivered = 0;
        for (var round = 0; round < maxRounds; round++)
        {
            var fromA = ATransport.TakeOutbox();
            var fromB = BTransport.TakeOutbox();
            if (fromA.Count == 0 && fromB.Count == 0)
            {
                return delivered;
            }

            if (!NetworkUp)
            {
                continue;
            }

            foreach (var (datagram, destination) in fromA)
            {
                if (destination.Equals(BEndpoint))
                {
                    B.HandleDatagram(datagram, AEndpoint);
                    delivered++;
                }
            }

            foreach (var (datagram, destination) in fromB)
            {
                if (destination.Equals(AEndpoint))
                {
                    A.HandleDatagram(datagram, BEndpoint);
                    delivered++;
                }
            }
        }

        throw new InvalidOperationException("The engines kept talking for too many rounds.");
    }

    /// <summary>Advances the fake clock in steps (so timers fire in order), pumping after each.</summary>
    public void Advance(TimeSpan total, TimeSpan? step = null)
    {
        var s = step ?? TimeSpan.FromMilliseconds(100);
        for (var elapsed = TimeSpan.Zero; elapsed < total; elapsed += s)
        {
            Time.Advance(s);
            Pump();
        }
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
        AKey.Dispose();
        BKey.Dispose();
        Psk?.Dispose();
    }

    /// <summary>A minimal IPv4 packet (UDP protocol number, no real UDP header needed by the engine).</summary>
    public static byte[] Ipv4(string source, string destination, int payloadLength = 20, byte fill = 0xab)
    {
        var packet = new byte[20 + payloadLength];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = 17;
        IPAddress.Parse(source).TryWriteBytes(packet.AsSpan(12), out _);
        IPAddress.Parse(destination).TryWriteBytes(packet.AsSpan(16), out _);
        packet.AsSpan(20).Fill(fill);
        return packet;
    }

    /// <summary>A minimal IPv6 packet.</summary>
    public static byte[] Ipv6(string source, string destination, int payloadLength = 20)
    {
        var packet = new byte[40 + payloadLength];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)payloadLength);
        packet[6] = 17;
        packet[7] = 64;
        IPAddress.Parse(source).TryWriteBytes(packet.AsSpan(8), out _);
        IPAddress.Parse(destination).TryWriteBytes(packet.AsSpan(24), out _);
        return packet;
    }

    public static byte[] AToB(int payloadLength = 20, byte fill = 0xab) => Ipv4("10.0.0.1", "10.0.0.2", payloadLength, fill);

    public static byte[] BToA(int payloadLength = 20, byte fill = 0xcd) => Ipv4("10.0.0.2", "10.0.0.1", payloadLength, fill);

    /// <summary>Handshake from A with one packet, delivered; returns the packet.</summary>
    public byte[] Connect()
    {
        var packet = AToB();
        A.HandleTunPacket(packet);
        Pump();
        return packet;
    }
}
