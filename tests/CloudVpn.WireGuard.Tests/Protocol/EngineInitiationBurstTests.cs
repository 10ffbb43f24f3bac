using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>
/// A gateway engine receiving many initiations in one UDP batch (a burst: a restart, a fleet rekeying at once) answers
/// them together, its X25519 in eight-lane groups, and every client gets a working session.
/// </summary>
public sealed class EngineInitiationBurstTests : IDisposable
{
    private static readonly IPEndPoint GatewayEndpoint = new(IPAddress.Parse("198.51.100.1"), 51820);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
    private readonly RecordingTransport _gatewayTransport = new();
    private readonly WireGuardSecretKey _gatewayKey = WireGuardSecretKey.GeneratePrivateKey();
    private readonly WireGuardEngine _gateway;
    private readonly List<Client> _clients = [];

    private sealed record Client(WireGuardEngine Engine, RecordingTransport Transport, IPEndPoint Endpoint, string Address);

    public EngineInitiationBurstTests()
    {
        _gateway = new WireGuardEngine(_gatewayTransport, _time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = _gatewayKey };
    }

    public void Dispose()
    {
        foreach (var client in _clients)
        {
            client.Engine.Dispose();
        }

        _gateway.Dispose();
        _gatewayKey.Dispose();
    }

    private void AddClients(int count, bool gatewayKnowsEndpoints = false)
    {
        for (var i = _clients.Count; i < count; i++)
        {
            var endpoint = new IPEndPoint(IPAddress.Parse($"203.0.113.{i + 1}"), 40000 + i);
            var transport = new RecordingTransport();
            using var key = WireGuardSecretKey.GeneratePrivateKey();
            var engine = new WireGuardEngine(transport, _time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = key };
            var address = $"10.1.0.{i + 2}";
            engine.SetPeer(new WireGuardPeerConfig { PublicKey = _gateway.PublicKey, Endpoint = GatewayEndpoint, AllowedIps = [IPNetwork.Parse("10.1.0.0/16")] });
            _gateway.SetPeer(new WireGuardPeerConfig { PublicKey = engine.PublicKey, AllowedIps = [IPNetwork.Parse(address + "/32")], Endpoint = gatewayKnowsEndpoints ? endpoint : null });
            _clients.Add(new Client(engine, transport, endpoint, address));
        }
    }

    /// <summary>Lane groups as expected where the CPU has AVX-512; none where it has not (libsodium does every DH).</summary>
    internal static void AssertLaneGroups(long groups, int atLeast, int atMost = int.MaxValue)
    {
        if (Curve25519Batch.IsAccelerated)
        {
            Assert.InRange(groups, atLeast, atMost);
        }
        else
        {
            Assert.Equal(0, groups);
        }
    }

    /// <summary>Each client sends a packet to the gateway, which makes it initiate; returns the initiations on the wire.</summary>
    private List<(byte[] Datagram, IPEndPoint Source)> Initiations()
    {
        var initiations = new List<(byte[], IPEndPoint)>();
        foreach (var client in _clients)
        {
            client.Engine.HandleTunPacket(EnginePair.Ipv4(client.Address, "10.1.255.1"));
            var sent = client.Transport.TakeOutbox();
            Assert.Single(sent);
            Assert.Equal(MessageFormat.Initiation, sent[0].Datagram[0]);
            initiations.Add((sent[0].Datagram, client.Endpoint));
        }

        return initiations;
    }

    /// <summary>Delivers the gateway's responses; each client then sends its queued packet, which the gateway opens.</summary>
    private void CompleteAndSendData()
    {
        var responses = _gatewayTransport.TakeOutbox();
        foreach (var (datagram, destination) in responses)
        {
            var client = _clients.Single(c => c.Endpoint.Equals(destination));
            client.Engine.HandleDatagram(datagram, GatewayEndpoint);
        }

        foreach (var client in _clients)
        {
            foreach (var (datagram, _) in client.Transport.TakeOutbox())
            {
                _gateway.HandleDatagram(datagram, client.Endpoint);
            }
        }
    }

    [Fact]
    public void Twenty_initiations_in_one_batch_are_answered_in_lanes_and_every_client_gets_a_session()
    {
        AddClients(20);
        _gateway.HandleDatagramBatch(EngineBatchTests.DatagramBatch(Initiations()));

        // es for 20 (two full groups of eight in lanes, four by libsodium), then 60 response DH (seven full groups
        // and four items): at least nine groups ran in lanes
        AssertLaneGroups(_gateway.Counters.InitiationLaneGroups, atLeast: 9);
        Assert.Equal(20, _gateway.Counters.HandshakeInitiationsReceived);
        Assert.Equal(20, _gateway.Counters.HandshakeResponsesSent);
        Assert.Equal(0, _gateway.Counters.TotalDrops);

        CompleteAndSendData();
        Assert.All(_clients, c => Assert.Equal(1, c.Engine.Counters.HandshakesCompleted));

        // every client's packet came through its own session, with its own source address
        var delivered = _gatewayTransport.Tun.Select(p => new IPAddress(p.AsSpan(12, 4)).ToString()).Order().ToList();
        Assert.Equal(_clients.Select(c => c.Address).Order().ToList(), delivered);
    }

    [Fact]
    public void A_burst_refuses_replays_and_strangers_and_answers_the_rest()
    {
        AddClients(9);
        var initiations = Initiations();

        // the same initiation twice, and one from a key the gateway does not know (it passes mac1, which only needs
        // the gateway's public key, and fails on the unknown static key)
        using var strangerKey = WireGuardSecretKey.GeneratePrivateKey();
        var strangerTransport = new RecordingTransport();
        using var stranger = new WireGuardEngine(strangerTransport, _time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = strangerKey };
        stranger.SetPeer(new WireGuardPeerConfig { PublicKey = _gateway.PublicKey, Endpoint = GatewayEndpoint, AllowedIps = [IPNetwork.Parse("10.1.0.0/16")] });
        stranger.HandleTunPacket(EnginePair.Ipv4("10.1.9.9", "10.1.255.1"));
        var strangerEndpoint = new IPEndPoint(IPAddress.Parse("192.0.2.77"), 41000);
        initiations.Insert(3, (initiations[2].Datagram, initiations[2].Source));
        initiations.Add((strangerTransport.TakeOutbox().Single().Datagram, strangerEndpoint));

        _gateway.HandleDatagramBatch(EngineBatchTests.DatagramBatch(initiations));
        AssertLaneGroups(_gateway.Counters.InitiationLaneGroups, atLeast: 1);
        Assert.Equal(1, _gateway.Counters.Drops(WireGuardDropReason.HandshakeReplayed));
        Assert.Equal(1, _gateway.Counters.Drops(WireGuardDropReason.HandshakeFailed));
        Assert.Equal(9, _gateway.Counters.HandshakeResponsesSent);
        Assert.DoesNotContain(_gatewayTransport.Outbox, o => o.Destination.Equals(strangerEndpoint));

        CompleteAndSendData();
        Assert.All(_clients, c => Assert.Equal(1, c.Engine.Counters.HandshakesCompleted));
        Assert.Equal(9, _gatewayTransport.Tun.Count);
    }

    [Fact]
    public void Responses_to_the_gateway_s_own_initiations_in_one_batch_are_consumed_in_lanes()
    {
        AddClients(12, gatewayKnowsEndpoints: true);

        // the gateway has a packet for every client, so it initiates to each; each client answers
        foreach (var client in _clients)
        {
            _gateway.HandleTunPacket(EnginePair.Ipv4("10.1.255.1", client.Address));
        }

        var responses = new List<(byte[] Datagram, IPEndPoint Source)>();
        foreach (var (datagram, destination) in _gatewayTransport.TakeOutbox())
        {
            Assert.Equal(MessageFormat.Initiation, datagram[0]);
            var client = _clients.Single(c => c.Endpoint.Equals(destination));
            client.Engine.HandleDatagram(datagram, GatewayEndpoint);
            var answer = client.Transport.TakeOutbox().Single();
            Assert.Equal(MessageFormat.Response, answer.Datagram[0]);
            responses.Add((answer.Datagram, client.Endpoint));
        }

        // a duplicate of one response: its initiation is no longer awaited when it comes up, so it is refused
        responses.Add(responses[4]);
        _gateway.HandleDatagramBatch(EngineBatchTests.DatagramBatch(responses));

        // ee and se for the 13 responses (26 DH): three full groups of eight in lanes, two by libsodium
        AssertLaneGroups(_gateway.Counters.ResponseLaneGroups, atLeast: 3, atMost: 3);
        Assert.Equal(12, _gateway.Counters.HandshakesCompleted);
        Assert.Equal(1, _gateway.Counters.Drops(WireGuardDropReason.HandshakeFailed));

        // the staged packet for each client goes out on its new session and arrives
        foreach (var (datagram, destination) in _gatewayTransport.TakeOutbox())
        {
            _clients.Single(c => c.Endpoint.Equals(destination)).Engine.HandleDatagram(datagram, GatewayEndpoint);
        }

        Assert.All(_clients, c => Assert.Single(c.Transport.Tun));
    }

    [Fact]
    public void A_lone_initiation_in_a_batch_is_answered_without_lanes()
    {
        AddClients(1);
        _gateway.HandleDatagramBatch(EngineBatchTests.DatagramBatch(Initiations()));
        Assert.Equal(0, _gateway.Counters.InitiationLaneGroups);
        Assert.Equal(1, _gateway.Counters.HandshakeResponsesSent);
        CompleteAndSendData();
        Assert.Single(_gatewayTransport.Tun);
    }
}
