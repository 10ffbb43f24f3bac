using BenchmarkDotNet.Attributes;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.Benchmarks;

/// <summary>
/// Eight complete Noise IKpsk2 handshakes (eight clients, one gateway) on one thread, both sides, with each step's
/// X25519 done together in <see cref="DhBatch"/> (AVX-512 lanes): the initiators' ephemeral keys and es, the
/// gateway's es, its responses' ephemeral keys, ee and se, and the initiators' ee and se; eight lane groups per eight
/// handshakes. Everything else (mac1, KDFs, AEAD, replay checks, key derivation) is per handshake, as in
/// <see cref="NoiseHandshakeBenchmark"/>. Handshakes per second per core = 1 / Mean (the benchmark counts eight
/// operations per call). The gateway's side of this is what <c>WireGuardEngine</c> does with a burst of initiations
/// in one UDP batch.
/// </summary>
[MemoryDiagnoser]
[BenchmarkCategory("Scale")]
public class BatchedHandshakeBenchmark
{
    public const int Handshakes = 8;
    private const int Key = 32;
    private readonly byte[] _initiations = new byte[Handshakes * MessageFormat.InitiationLength];
    private readonly byte[] _responses = new byte[Handshakes * MessageFormat.ResponseLength];
    private readonly byte[] _ephemerals = GC.AllocateArray<byte>(2 * Handshakes * Key, pinned: true);
    private readonly byte[] _begun = GC.AllocateArray<byte>(Handshakes * 4 * Key, pinned: true);
    private readonly byte[] _keys = new byte[Handshakes * 4 * Key];
    private readonly int[] _first = new int[Handshakes];
    private readonly int[] _second = new int[Handshakes];
    private readonly int[] _third = new int[Handshakes];
    private readonly DhBatch _dh = new(3 * Handshakes);
    private StaticIdentity _gateway = null!;
    private StaticIdentity[] _clients = [];
    private NoiseHandshake[] _clientStates = [];
    private NoiseHandshake[] _gatewayStates = [];
    private CookieGenerator _toGateway = null!;
    private CookieGenerator[] _toClients = [];
    private long _now = TimeSpan.TicksPerDay;
    private DateTimeOffset _utc = new(2026, 11, 25, 0, 0, 0, TimeSpan.Zero);

    [GlobalSetup]
    public void Setup()
    {
        using var gatewayKey = WireGuardSecretKey.GeneratePrivateKey();
        _gateway = new StaticIdentity(gatewayKey.Bytes);
        _toGateway = new CookieGenerator(_gateway.PublicKey);
        _clients = new StaticIdentity[Handshakes];
        _clientStates = new NoiseHandshake[Handshakes];
        _gatewayStates = new NoiseHandshake[Handshakes];
        _toClients = new CookieGenerator[Handshakes];
        for (var i = 0; i < Handshakes; i++)
        {
            using var key = WireGuardSecretKey.GeneratePrivateKey();
            _clients[i] = new StaticIdentity(key.Bytes);
            _clientStates[i] = new NoiseHandshake(_gateway.PublicKey);
            _clientStates[i].SetIdentity(_clients[i]);
            _gatewayStates[i] = new NoiseHandshake(_clients[i].PublicKey);
            _gatewayStates[i].SetIdentity(_gateway);
            _toClients[i] = new CookieGenerator(_clients[i].PublicKey);
        }

        Handshake();
        for (var i = 0; i < Handshakes; i++)
        {
            var keys = _keys.AsSpan(i * 4 * Key, 4 * Key);
            if (!keys[..Key].SequenceEqual(keys[(3 * Key)..]) || !keys[Key..(2 * Key)].SequenceEqual(keys[(2 * Key)..(3 * Key)]))
            {
                throw new InvalidOperationException($"benchmark setup: handshake {i}: the two sides derived different keys");
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _gateway.Dispose();
        foreach (var client in _clients)
        {
            client.Dispose();
        }
    }

    [Benchmark(OperationsPerInvoke = Handshakes)]
    public void Handshake()
    {
        Initiate();
        Respond();
        Complete();
    }

    private Span<byte> Initiation(int i) => _initiations.AsSpan(i * MessageFormat.InitiationLength, MessageFormat.InitiationLength);

    private Span<byte> Response(int i) => _responses.AsSpan(i * MessageFormat.ResponseLength, MessageFormat.ResponseLength);

    private Span<byte> ClientEphemeral(int i) => _ephemerals.AsSpan(i * Key, Key);

    private Span<byte> GatewayEphemeral(int i) => _ephemerals.AsSpan((Handshakes + i) * Key, Key);

    private Span<byte> Begun(int i, int part) => _begun.AsSpan(((i * 4) + part) * Key, Key);

    /// <summary>Every client makes an initiation: ephemeral public keys and es in lanes.</summary>
    internal void Initiate()
    {
        _now += TimeSpan.TicksPerSecond;
        _utc = _utc.AddSeconds(1);
        _dh.Clear();
        for (var i = 0; i < Handshakes; i++)
        {
            Curve25519.NewPrivateKey(ClientEphemeral(i));
            _first[i] = _dh.AddBasePoint(ClientEphemeral(i));
            _second[i] = _dh.Add(ClientEphemeral(i), _gateway.PublicKey);
        }

        _dh.Run();
        for (var i = 0; i < Handshakes; i++)
        {
            var precomputed = new PrecomputedDh { EphemeralPrivate = ClientEphemeral(i), EphemeralPublic = _dh.Result(_first[i]), First = _dh.Result(_second[i]) };
            if (!_clientStates[i].CreateInitiation(Initiation(i), _clients[i], (uint)i + 1, _utc, precomputed))
            {
                throw new InvalidOperationException("initiation");
            }

            _toGateway.AddMacs(Initiation(i), _now);
        }
    }

    /// <summary>The gateway's half: mac1, es in lanes, consume, then the responses' ephemeral keys, ee and se in lanes.</summary>
    internal void Respond()
    {
        _dh.Clear();
        for (var i = 0; i < Handshakes; i++)
        {
            if (!_gateway.Cookies.CheckMac1(Initiation(i)))
            {
                throw new InvalidOperationException("mac1");
            }

            _first[i] = _dh.Add(_gateway.PrivateKey, Initiation(i).Slice(MessageFormat.InitiationEphemeral, Key));
        }

        _dh.Run();
        for (var i = 0; i < Handshakes; i++)
        {
            var begun = new ConsumedInitiation { Hash = Begun(i, 0), ChainKey = Begun(i, 1), RemoteStatic = Begun(i, 2), RemoteEphemeral = Begun(i, 3) };
            if (!NoiseHandshake.BeginConsumeInitiation(Initiation(i), _gateway, ref begun, precomputed: true, _dh.Result(_first[i])) ||
                _gatewayStates[i].FinishConsumeInitiation(Initiation(i), ref begun, _gateway, _now, WireGuardTimers.HandshakeInitiationRate.Ticks) != ConsumeResult.Ok)
            {
                throw new InvalidOperationException("consume initiation");
            }
        }

        _dh.Clear();
        for (var i = 0; i < Handshakes; i++)
        {
            Curve25519.NewPrivateKey(GatewayEphemeral(i));
            _first[i] = _dh.AddBasePoint(GatewayEphemeral(i));
            _second[i] = _dh.Add(GatewayEphemeral(i), Begun(i, 3));
            _third[i] = _dh.Add(GatewayEphemeral(i), Begun(i, 2));
        }

        _dh.Run();
        for (var i = 0; i < Handshakes; i++)
        {
            var precomputed = new PrecomputedDh
            {
                EphemeralPrivate = GatewayEphemeral(i), EphemeralPublic = _dh.Result(_first[i]), First = _dh.Result(_second[i]), Second = _dh.Result(_third[i]),
            };
            if (!_gatewayStates[i].CreateResponse(Response(i), (uint)(100 + i), precomputed))
            {
                throw new InvalidOperationException("response");
            }

            _toClients[i].AddMacs(Response(i), _now);
            var keys = _keys.AsSpan(i * 4 * Key, 4 * Key);
            _gatewayStates[i].DeriveTransportKeys(initiator: false, keys.Slice(2 * Key, Key), keys.Slice(3 * Key, Key));
        }
    }

    /// <summary>Every client checks mac1 and consumes its response: ee and se in lanes.</summary>
    internal void Complete()
    {
        _dh.Clear();
        for (var i = 0; i < Handshakes; i++)
        {
            if (!_clients[i].Cookies.CheckMac1(Response(i)))
            {
                throw new InvalidOperationException("mac1 of the response");
            }

            var ephemeral = Response(i).Slice(MessageFormat.ResponseEphemeral, Key);
            _first[i] = _dh.Add(ClientEphemeral(i), ephemeral);
            _second[i] = _dh.Add(_clients[i].PrivateKey, ephemeral);
        }

        _dh.Run();
        for (var i = 0; i < Handshakes; i++)
        {
            if (!_clientStates[i].ConsumeResponse(Response(i), _clients[i], precomputed: true, _dh.Result(_first[i]), _dh.Result(_second[i])))
            {
                throw new InvalidOperationException("consume response");
            }

            var keys = _keys.AsSpan(i * 4 * Key, 4 * Key);
            _clientStates[i].DeriveTransportKeys(initiator: true, keys[..Key], keys.Slice(Key, Key));
        }

        _dh.Clear();
    }
}
