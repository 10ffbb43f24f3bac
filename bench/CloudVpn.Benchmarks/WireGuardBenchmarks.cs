using System.Buffers.Binary;
using System.Net;
using BenchmarkDotNet.Attributes;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.Benchmarks;

/// <summary>A callback that sees a datagram in place.</summary>
internal delegate void SpanAction(ReadOnlySpan<byte> datagram);

/// <summary>Hands datagrams to a sink (or to a list while setting up); drops TUN output.</summary>
internal sealed class SinkTransport : IWireGuardTransport
{
    public List<byte[]>? Capture { get; set; }

    public Action<byte[], IPEndPoint>? Forward { get; set; }

    /// <summary>Sees each datagram without a copy (allocation-free runs).</summary>
    public SpanAction? Sink { get; set; }

    public long Bytes { get; private set; }

    public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination)
    {
        Bytes += datagram.Length;
        Sink?.Invoke(datagram);
        if (Capture is not null || Forward is not null)
        {
            var copy = datagram.ToArray();
            Capture?.Add(copy);
            Forward?.Invoke(copy, destination);
        }
    }

    public void WriteToTun(ReadOnlySpan<byte> ipPacket) => Bytes += ipPacket.Length;
}

/// <summary>Two engines with an established session (fake clock, so no rekey happens during a run).</summary>
internal sealed class ConnectedPair : IDisposable
{
    public static readonly IPEndPoint AEndpoint = new(IPAddress.Parse("192.0.2.1"), 51820);
    public static readonly IPEndPoint BEndpoint = new(IPAddress.Parse("198.51.100.1"), 51820);

    public ConnectedPair()
    {
        using var aKey = WireGuardSecretKey.GeneratePrivateKey();
        using var bKey = WireGuardSecretKey.GeneratePrivateKey();
        A = new WireGuardEngine(ATransport, Time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = aKey };
        B = new WireGuardEngine(BTransport, Time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = bKey };
        A.SetPeer(new WireGuardPeerConfig { PublicKey = B.PublicKey, Endpoint = BEndpoint, AllowedIps = [IPNetwork.Parse("10.0.0.2/32")] });
        B.SetPeer(new WireGuardPeerConfig { PublicKey = A.PublicKey, AllowedIps = [IPNetwork.Parse("10.0.0.1/32")] });

        // handshake with synchronous delivery, then confirm B's side with one packet
        ATransport.Forward = (d, _) => B.HandleDatagram(d, AEndpoint);
        BTransport.Forward = (d, _) => A.HandleDatagram(d, BEndpoint);
        A.HandleTunPacket(Packet(64));
        ATransport.Forward = null;
        BTransport.Forward = null;
        if (A.Counters.HandshakesCompleted != 1 || B.Counters.HandshakesCompleted != 1)
        {
            throw new InvalidOperationException("benchmark setup: handshake failed");
        }
    }

    public FakeTimeProvider Time { get; } = new();

    public SinkTransport ATransport { get; } = new();

    public SinkTransport BTransport { get; } = new();

    public WireGuardEngine A { get; }

    public WireGuardEngine B { get; }

    public static byte[] Packet(int size)
    {
        var packet = new byte[size];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)size);
        packet[9] = 17;
        new byte[] { 10, 0, 0, 1 }.CopyTo(packet, 12);
        new byte[] { 10, 0, 0, 2 }.CopyTo(packet, 16);
        return packet;
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}

/// <summary>TUN -> UDP: route (LPM), pad, encrypt, hand to the transport.</summary>
[MemoryDiagnoser]
public class EncryptBenchmark
{
    private ConnectedPair _pair = null!;
    private byte[] _packet = [];

    [Params(64, 1420)]
    public int PacketSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pair = new ConnectedPair();
        _packet = ConnectedPair.Packet(PacketSize);
    }

    [GlobalCleanup]
    public void Cleanup() => _pair.Dispose();

    [Benchmark]
    public void Encrypt() => _pair.A.HandleTunPacket(_packet);
}

/// <summary>UDP -> TUN: index lookup, replay check, decrypt, source check, hand to the TUN.</summary>
[MemoryDiagnoser]
public class DecryptBenchmark
{
    private const int Batch = 8192;
    private ConnectedPair _pair = null!;
    private List<byte[]> _datagrams = [];

    [Params(64, 1420)]
    public int PacketSize { get; set; }

    [GlobalSetup]
    public void Setup() => _pair = new ConnectedPair();

    [IterationSetup]
    public void Encrypt()
    {
        // fresh counters for every iteration (the replay window refuses repeats)
        _datagrams = new List<byte[]>(Batch);
        _pair.ATransport.Capture = _datagrams;
        var packet = ConnectedPair.Packet(PacketSize);
        for (var i = 0; i < Batch; i++)
        {
            _pair.A.HandleTunPacket(packet);
        }

        _pair.ATransport.Capture = null;
    }

    [GlobalCleanup]
    public void Cleanup() => _pair.Dispose();

    [Benchmark(OperationsPerInvoke = Batch)]
    public void Decrypt()
    {
        var b = _pair.B;
        foreach (var datagram in _datagrams)
        {
            b.HandleDatagram(datagram, ConnectedPair.AEndpoint);
        }
    }
}

/// <summary>
/// A whole handshake through both engines: the initiator's keypair is past Rekey-After-Time, so sending one packet
/// starts a rekey: initiation, response, and the packet's successor on the new session (timer work of the 121 s
/// jump, a few keepalives, is included and small next to four X25519 operations per side).
/// </summary>
[MemoryDiagnoser]
public class HandshakeBenchmark
{
    private ConnectedPair _pair = null!;
    private byte[] _packet = [];

    [GlobalSetup]
    public void Setup()
    {
        _pair = new ConnectedPair();
        _packet = ConnectedPair.Packet(64);
        _pair.ATransport.Forward = (d, _) => _pair.B.HandleDatagram(d, ConnectedPair.AEndpoint);
        _pair.BTransport.Forward = (d, _) => _pair.A.HandleDatagram(d, ConnectedPair.BEndpoint);
        var before = _pair.A.Counters.HandshakesCompleted;
        Rekey();
        if (_pair.A.Counters.HandshakesCompleted != before + 1)
        {
            throw new InvalidOperationException("benchmark setup: the rekey did not complete a handshake");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _pair.Dispose();

    [Benchmark]
    public void Rekey()
    {
        _pair.Time.Advance(TimeSpan.FromSeconds(121));
        _pair.A.HandleTunPacket(_packet);
    }
}

/// <summary>The cost of refusing a forged handshake message (bad mac1): the first and only check spent on it.</summary>
[MemoryDiagnoser]
public class ForgedHandshakeBenchmark
{
    private ConnectedPair _pair = null!;
    private byte[] _forged = [];

    [GlobalSetup]
    public void Setup()
    {
        _pair = new ConnectedPair();
        _forged = new byte[148];
        new Random(7).NextBytes(_forged);
        _forged[0] = 1;
        _forged[1] = _forged[2] = _forged[3] = 0;
    }

    [GlobalCleanup]
    public void Cleanup() => _pair.Dispose();

    [Benchmark]
    public void RejectBadMac1() => _pair.B.HandleDatagram(_forged, ConnectedPair.AEndpoint);
}
