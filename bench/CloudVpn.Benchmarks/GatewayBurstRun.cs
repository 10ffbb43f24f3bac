using System.Net;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.Benchmarks;

/// <summary>
/// The gateway's share of handshakes through the whole engine: 64 clients' initiations (made beforehand, not timed)
/// go to a gateway <see cref="WireGuardEngine"/> in one UDP batch (<see cref="WireGuardEngine.HandleDatagramBatch"/>,
/// the burst path) or one datagram at a time (<see cref="WireGuardEngine.HandleDatagram(ReadOnlySpan{byte}, IPEndPoint)"/>);
/// the thread CPU of the gateway's calls is divided by the responses it sent. Each includes mac1, the load gate, peer
/// lookup, replay and flood checks, index allocation, the response, its macs and the new session's keypair.
/// </summary>
internal static class GatewayBurstRun
{
    private const int Clients = 64;

    public static (double BurstMicroseconds, double SingleMicroseconds) Run(Func<long> threadCpuNanoseconds)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 25, 0, 0, 0, TimeSpan.Zero));
        var transport = new SinkTransport();
        using var gatewayKey = WireGuardSecretKey.GeneratePrivateKey();
        using var gateway = new WireGuardEngine(transport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = gatewayKey };
        var gatewayIdentity = new StaticIdentity(gatewayKey.Bytes);
        var toGateway = new CookieGenerator(gateway.PublicKey.Bytes);
        var clients = new List<(StaticIdentity Identity, NoiseHandshake State, IPEndPoint Endpoint)>();
        for (var i = 0; i < Clients; i++)
        {
            using var key = WireGuardSecretKey.GeneratePrivateKey();
            var identity = new StaticIdentity(key.Bytes);
            var state = new NoiseHandshake(gatewayIdentity.PublicKey);
            state.SetIdentity(identity);
            gateway.SetPeer(new WireGuardPeerConfig { PublicKey = new WireGuardPublicKey(identity.PublicKey), AllowedIps = [IPNetwork.Parse($"10.2.{i / 250}.{(i % 250) + 1}/32")] });
            clients.Add((identity, state, new IPEndPoint(IPAddress.Parse($"203.0.113.{i + 1}"), 40000 + i)));
        }

        var messages = new byte[Clients][];
        var batch = new PacketBatch(Clients, Clients * MessageFormat.InitiationLength);
        var round = 0;

        // every client makes a fresh initiation (a second later than the last, so replay and flood checks pass)
        void MakeInitiations()
        {
            round++;
            time.Advance(TimeSpan.FromSeconds(1));
            batch.Clear();
            for (var i = 0; i < Clients; i++)
            {
                var message = messages[i] ??= new byte[MessageFormat.InitiationLength];
                var (identity, state, endpoint) = clients[i];
                if (!state.CreateInitiation(message, identity, (uint)((round * Clients) + i), time.GetUtcNow()))
                {
                    throw new InvalidOperationException("initiation");
                }

                toGateway.AddMacs(message, time.GetTimestamp());
                var offset = i * MessageFormat.InitiationLength;
                message.CopyTo(batch.Arena[offset..]);
                batch.TryAdd(offset, message.Length);
                var address = endpoint.Serialize();
                address.Buffer.Span.CopyTo(batch.Sources[i].Buffer.Span);
                batch.Sources[i].Size = address.Size;
            }
        }

        double Measure(Action<int> deliver)
        {
            long cpu = 0;
            long responses = 0;
            for (var r = 0; r < 40; r++)
            {
                MakeInitiations();
                var before = gateway.Counters.HandshakeResponsesSent;
                var t0 = threadCpuNanoseconds();
                deliver(r);
                cpu += threadCpuNanoseconds() - t0;
                responses += gateway.Counters.HandshakeResponsesSent - before;
            }

            if (responses != 40L * Clients)
            {
                throw new InvalidOperationException($"the gateway answered {responses} of {40 * Clients} initiations");
            }

            return cpu / 1000.0 / responses;
        }

        void Burst(int r) => gateway.HandleDatagramBatch(batch);

        void OneByOne(int r)
        {
            for (var i = 0; i < Clients; i++)
            {
                gateway.HandleDatagram(messages[i], clients[i].Endpoint);
            }
        }

        // warm-up of both paths (tiered JIT), then the figures
        Measure(Burst);
        Measure(OneByOne);
        var burst = Measure(Burst);
        var single = Measure(OneByOne);
        gatewayIdentity.Dispose();
        foreach (var client in clients)
        {
            client.Identity.Dispose();
        }

        return (burst, single);
    }
}
