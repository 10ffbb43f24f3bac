using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Tun;

namespace CloudVpn.Benchmarks;

/// <summary>
/// The CPU cost of the TUN offload work: splitting a 64 KiB TCP super-packet into 1448-byte segments (what one read
/// with TSO returns), planning and building one coalesced super-packet out of 44 segments (what WriteBatch does before
/// its writev), and the checksum itself. Bytes per operation are 64 KiB-ish, so ns/op converts to Gbit/s directly.
/// </summary>
[MemoryDiagnoser]
public class TunOffloadBenchmarks
{
    private const int Mss = 1448;
    private const int Segments = 44;
    private readonly byte[] _super = BuildSuperPacket();
    private readonly PacketBatch _splitBatch = new(128, 256 * 1024);
    private readonly TcpCoalescer _coalescer = new();
    private readonly byte[] _scratch = new byte[TcpCoalescer.MaxHeaderBytes];
    private readonly byte[] _data64K = new byte[65535];
    private readonly byte[] _data1500 = new byte[1500];
    private PacketBatch _segments = null!;
    private VirtioNetHeader _header;

    [GlobalSetup]
    public void Setup()
    {
        _header = new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsCsum,
            GsoType = VirtioNetHeader.GsoTcpV4,
            GsoSize = Mss,
            HeaderLength = 52,
            CsumStart = 20,
            CsumOffset = 16,
        };
        _segments = new PacketBatch(128, 256 * 1024);
        var next = 0;
        if (GsoSplitter.Split(_super, _header, _segments, ref next) != SplitResult.Done || _segments.Count != Segments)
        {
            throw new InvalidOperationException("benchmark setup: split failed");
        }

        new Random(1).NextBytes(_data64K);
        new Random(2).NextBytes(_data1500);
    }

    /// <summary>One 64 KiB TSO read split into 44 segments with full checksums.</summary>
    [Benchmark]
    public int Split64K()
    {
        _splitBatch.Clear();
        var next = 0;
        _ = GsoSplitter.Split(_super, _header, _splitBatch, ref next);
        return _splitBatch.Count;
    }

    /// <summary>44 segments of one flow checked (checksums) and merged into one super-packet header (the payloads go
    /// to writev as they are).</summary>
    [Benchmark]
    public int Coalesce44()
    {
        _coalescer.Plan(_segments);
        var n = 0;
        for (var i = 0; i < _coalescer.ItemCount; i++)
        {
            n += _coalescer.BuildHeader(i, _segments, _scratch);
        }

        return n;
    }

    [Benchmark]
    public ushort Checksum64K() => InternetChecksum.Fold(InternetChecksum.Add(_data64K));

    [Benchmark]
    public ushort Checksum1500() => InternetChecksum.Fold(InternetChecksum.Add(_data1500));

    private static byte[] BuildSuperPacket()
    {
        var packet = new byte[52 + (Segments * Mss)];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[6] = 0x40;
        packet[8] = 64;
        packet[9] = 6;
        new byte[] { 10, 1, 0, 1, 10, 1, 0, 2 }.CopyTo(packet, 12);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), 5201);
        BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(24), 1);
        BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(28), 1);
        packet[32] = 0x80; // 32-byte TCP header (timestamps)
        packet[33] = 0x18;
        new byte[] { 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2 }.CopyTo(packet, 40);
        new Random(3).NextBytes(packet.AsSpan(52));
        return packet;
    }
}

/// <summary>
/// A real TCP stream (64 MiB per operation) between two network namespaces whose only link is two TUN devices bridged
/// by this process: batch reader of one into WriteBatch of the other, the per-packet reader and Write for the ACKs.
/// Offloads on means TSO reads split into segments and coalesced again on write; off means one packet per read/write,
/// so the ratio is what the TUN offloads save per byte. Needs root (namespaces and TUN devices).
/// </summary>
public class TunBridgeBenchmarks
{
    private const int Bytes = 64 * 1024 * 1024;
    private readonly string _suffix = $"{Environment.ProcessId % 100000}";
    private TunDevice? _a;
    private TunDevice? _b;
    private Socket? _client;
    private Socket? _server;
    private byte[] _chunk = [];
    private byte[] _sink = [];

    [Params(false, true)]
    public bool Offloads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var left = $"cvbl{_suffix}";
        var right = $"cvbr{_suffix}";
        Run($"netns add {left}");
        Run($"netns add {right}");
        var options = new TunOptions { Offloads = Offloads };
        _a = NetworkNamespace.Run(left, () => TunDevice.Create("cvb0", options));
        _b = NetworkNamespace.Run(right, () => TunDevice.Create("cvb1", options));
        Run($"-n {left} addr add 10.78.0.1/24 dev cvb0");
        Run($"-n {right} addr add 10.78.0.2/24 dev cvb1");
        Run($"-n {left} link set cvb0 up");
        Run($"-n {right} link set cvb1 up");
        var a = _a;
        var b = _b;
        a.StartBatchReader(batch => b.WriteBatch(batch));
        b.StartReader(packet => a.Write(packet));

        using var listener = NetworkNamespace.Run(right, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        listener.Bind(new IPEndPoint(IPAddress.Parse("10.78.0.2"), 5301));
        listener.Listen(1);
        _client = NetworkNamespace.Run(left, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        _client.Connect(listener.LocalEndPoint!);
        _server = listener.Accept();
        _chunk = new byte[1 << 20];
        _sink = new byte[1 << 20];
        new Random(4).NextBytes(_chunk);
        Console.WriteLine($"// TUN offloads {Offloads}: active {_a.ActiveOffloads}, coalescing {_b.Coalescing}");
    }

    /// <summary>64 MiB through the bridge; Gbit/s = 0.537 / (seconds per operation).</summary>
    [Benchmark]
    public long Transfer64MiB()
    {
        var receiver = new Thread(() =>
        {
            var left = Bytes;
            while (left > 0)
            {
                left -= _server!.Receive(_sink, 0, Math.Min(_sink.Length, left), SocketFlags.None);
            }
        });
        receiver.Start();
        for (var sent = 0; sent < Bytes; sent += _chunk.Length)
        {
            _client!.Send(_chunk);
        }

        receiver.Join();
        return _b!.PacketsWritten;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine($"// super-packets read {_a?.SuperPacketsRead}, written {_b?.SuperPacketsWritten}, packets written {_b?.PacketsWritten}");
        _client?.Dispose();
        _server?.Dispose();
        _a?.Dispose();
        _b?.Dispose();
        Run($"netns del cvbl{_suffix}", check: false);
        Run($"netns del cvbr{_suffix}", check: false);
    }

    private static void Run(string arguments, bool check = true)
    {
        using var p = Process.Start(new ProcessStartInfo("ip", arguments) { UseShellExecute = false, RedirectStandardError = true })!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (check && p.ExitCode != 0)
        {
            throw new InvalidOperationException($"ip {arguments}: {error}");
        }
    }
}
