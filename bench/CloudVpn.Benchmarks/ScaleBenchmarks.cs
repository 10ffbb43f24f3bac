using System.Net;
using BenchmarkDotNet.Attributes;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.Benchmarks;

/// <summary>
/// Cryptokey routing lookups (the per-packet longest-prefix match) with 10, 10 000 and 100 000 peers, each owning a
/// /32 and a /128, plus a /16, a /64 and default routes so that a lookup probes several prefix lengths. 4096
/// different addresses per invocation, spread over the whole table (so a large table is not served from one cache line).
/// </summary>
[MemoryDiagnoser]
[BenchmarkCategory("Scale")]
public class AllowedIpsLookupBenchmark
{
    private const int Lookups = 4096;
    private readonly AllowedIpsTable<object> _table = new();
    private byte[][] _v4 = [];
    private byte[][] _v6 = [];

    [Params(10, 10_000, 100_000)]
    public int Peers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var other = new object();
        _table.Insert(IPNetwork.Parse("10.200.0.0/16"), other);
        _table.Insert(IPNetwork.Parse("0.0.0.0/0"), other);
        _table.Insert(IPNetwork.Parse("fd00:1:2::/64"), other);
        _table.Insert(IPNetwork.Parse("::/0"), other);
        for (var i = 0; i < Peers; i++)
        {
            var peer = new object();
            _table.Insert(new IPNetwork(new IPAddress(V4(i)), 32), peer);
            _table.Insert(new IPNetwork(new IPAddress(V6(i)), 128), peer);
        }

        var random = new Random(42);
        _v4 = [.. Enumerable.Range(0, Lookups).Select(_ => V4(random.Next(Peers)))];
        _v6 = [.. Enumerable.Range(0, Lookups).Select(_ => V6(random.Next(Peers)))];
        if (_table.Lookup(_v4[0]) is null || _table.Lookup(_v6[0]) is null)
        {
            throw new InvalidOperationException("benchmark setup: lookup found nothing");
        }
    }

    [Benchmark(OperationsPerInvoke = Lookups)]
    public int LookupV4()
    {
        var found = 0;
        foreach (var address in _v4)
        {
            found += _table.Lookup(address) is null ? 0 : 1;
        }

        return found;
    }

    [Benchmark(OperationsPerInvoke = Lookups)]
    public int LookupV6()
    {
        var found = 0;
        foreach (var address in _v6)
        {
            found += _table.Lookup(address) is null ? 0 : 1;
        }

        return found;
    }

    private static byte[] V4(int i)
    {
        var host = (uint)(0x0A000000 + i + 1);
        return [(byte)(host >> 24), (byte)(host >> 16), (byte)(host >> 8), (byte)host];
    }

    private static byte[] V6(int i)
    {
        var address = new byte[16];
        address[0] = 0xfd;
        address[1] = 0x77;
        address[12] = (byte)(i >> 24);
        address[13] = (byte)(i >> 16);
        address[14] = (byte)(i >> 8);
        address[15] = (byte)i;
        return address;
    }
}

/// <summary>
/// One complete Noise IKpsk2 handshake on one thread, both sides: create the initiation (with mac1), check mac1 and
/// consume it, create the response (with mac1), check mac1 and consume it, derive both sides' transport keys.
/// Handshakes per second per core = 1 / Mean. The engine-level <see cref="HandshakeBenchmark"/> adds indices,
/// keypairs and timers around the same work.
/// </summary>
[MemoryDiagnoser]
[BenchmarkCategory("Scale")]
public class NoiseHandshakeBenchmark
{
    private readonly byte[] _initiation = new byte[MessageFormat.InitiationLength];
    private readonly byte[] _response = new byte[MessageFormat.ResponseLength];
    private readonly byte[] _keys = new byte[128];
    private StaticIdentity _initiator = null!;
    private StaticIdentity _responder = null!;
    private NoiseHandshake _initiatorState = null!;
    private NoiseHandshake _responderState = null!;
    private CookieGenerator _toResponder = null!;
    private CookieGenerator _toInitiator = null!;
    private long _now = TimeSpan.TicksPerDay;
    private DateTimeOffset _utc = new(2026, 11, 25, 0, 0, 0, TimeSpan.Zero);

    [GlobalSetup]
    public void Setup()
    {
        using var a = WireGuardSecretKey.GeneratePrivateKey();
        using var b = WireGuardSecretKey.GeneratePrivateKey();
        _initiator = new StaticIdentity(a.Bytes);
        _responder = new StaticIdentity(b.Bytes);
        _initiatorState = new NoiseHandshake(_responder.PublicKey);
        _initiatorState.SetIdentity(_initiator);
        _responderState = new NoiseHandshake(_initiator.PublicKey);
        _responderState.SetIdentity(_responder);
        _toResponder = new CookieGenerator(_responder.PublicKey);
        _toInitiator = new CookieGenerator(_initiator.PublicKey);
        Handshake();
        if (!_keys.AsSpan(0, 32).SequenceEqual(_keys.AsSpan(96, 32)) || !_keys.AsSpan(32, 32).SequenceEqual(_keys.AsSpan(64, 32)))
        {
            throw new InvalidOperationException("benchmark setup: the two sides derived different keys");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _initiator.Dispose();
        _responder.Dispose();
    }

    [Benchmark]
    public void Handshake()
    {
        Initiate();
        Respond();
        Complete();
    }

    /// <summary>The initiator creates its initiation (with mac1).</summary>
    internal void Initiate()
    {
        // a second apart: the responder's replay and flood checks accept every initiation
        _now += TimeSpan.TicksPerSecond;
        _utc = _utc.AddSeconds(1);
        if (!_initiatorState.CreateInitiation(_initiation, _initiator, 1, _utc))
        {
            throw new InvalidOperationException("initiation");
        }

        _toResponder.AddMacs(_initiation, _now);
    }

    /// <summary>The responder's half (what a gateway does per handshake): check mac1, consume, respond, derive keys.</summary>
    internal void Respond()
    {
        Span<byte> scratch = stackalloc byte[128];
        var begun = new ConsumedInitiation { Hash = scratch[..32], ChainKey = scratch[32..64], RemoteStatic = scratch[64..96], RemoteEphemeral = scratch[96..] };
        if (!_responder.Cookies.CheckMac1(_initiation) ||
            !NoiseHandshake.BeginConsumeInitiation(_initiation, _responder, ref begun) ||
            _responderState.FinishConsumeInitiation(_initiation, ref begun, _responder, _now, WireGuardTimers.HandshakeInitiationRate.Ticks) != ConsumeResult.Ok ||
            !_responderState.CreateResponse(_response, 2))
        {
            throw new InvalidOperationException("response");
        }

        _toInitiator.AddMacs(_response, _now);
        _responderState.DeriveTransportKeys(initiator: false, _keys.AsSpan(64, 32), _keys.AsSpan(96, 32));
    }

    /// <summary>The initiator checks mac1, consumes the response and derives its keys.</summary>
    internal void Complete()
    {
        if (!_initiator.Cookies.CheckMac1(_response) || !_initiatorState.ConsumeResponse(_response, _initiator))
        {
            throw new InvalidOperationException("consume response");
        }

        _initiatorState.DeriveTransportKeys(initiator: true, _keys.AsSpan(0, 32), _keys.AsSpan(32, 32));
    }
}
