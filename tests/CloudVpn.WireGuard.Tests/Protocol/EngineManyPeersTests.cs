using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>One gateway engine with many client engines on an in-memory network routed by UDP endpoint.</summary>
public sealed class EngineManyPeersTests
{
    private sealed class Network
    {
        public Dictionary<IPEndPoint, WireGuardEngine> Hosts { get; } = [];

        public Queue<(byte[] Datagram, IPEndPoint From, IPEndPoint To)> InFlight { get; } = new();

        public void Pump()
        {
            while (InFlight.TryDequeue(out var item))
            {
                if (Hosts.TryGetValue(item.To, out var engine))
                {
                    engine.HandleDatagram(item.Datagram, item.From);
                }
            }
        }
    }

    private sealed class HostTransport(Network network, IPEndPoint self) : IWireGuardTransport
    {
        public List<byte[]> Tun { get; } = [];

        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination) => network.InFlight.Enqueue((datagram.ToArray(), self, destination));

        public void WriteToTun(ReadOnlySpan<byte> ipPacket) => Tun.Add(ipPacket.ToArray());
    }

    [Fact]
    public void Each_client_reaches_the_gateway_and_the_gateway_routes_each_reply_to_the_right_client()
    {
        const int Clients = 60;
        var time = new FakeTimeProvider();
        var network = new Network();
        var gatewayEndpoint = new IPEndPoint(IPAddress.Parse("198.51.100.1"), 51820);
        var gatewayTransport = new HostTransport(network, gatewayEndpoint);
        using var gatewayKey = WireGuardSecretKey.GeneratePrivateKey();
        using var gateway = new WireGuardEngine(gatewayTransport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = gatewayKey };
        network.Hosts[gatewayEndpoint] = gateway;

        var clients = new List<(WireGuardEngine Engine, HostTransport Transport, string Address, string V6)>();
        try
        {
            for (var i = 0; i < Clients; i++)
            {
                var endpoint = new IPEndPoint(IPAddress.Parse($"203.0.113.{i + 1}"), 40000 + i);
                var transport = new HostTransport(network, endpoint);
                using var key = WireGuardSecretKey.GeneratePrivateKey();
                var engine = new WireGuardEngine(transport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = key };
                var address = $"10.1.{i / 200}.{(i % 200) + 2}";
                var v6 = $"fd01::{i + 2:x}";
                engine.SetPeer(new WireGuardPeerConfig
                {
                    PublicKey = gateway.PublicKey, Endpoint = gatewayEndpoint,
                    AllowedIps = [IPNetwork.Parse("10.1.0.0/16"), IPNetwork.Parse("fd01::/64")],
                });
                gateway.SetPeer(new WireGuardPeerConfig
                {
                    PublicKey = engine.PublicKey, AllowedIps = [IPNetwork.Parse(address + "/32"), IPNetwork.Parse(v6 + "/128")],
                });
                network.Hosts[endpoint] = engine;
                clients.Add((engine, transport, address, v6));
            }

            // every client sends to the gateway (10.1.255.1), which answers each one
            foreach (var (engine, _, address, _) in clients)
            {
                engine.HandleTunPacket(EnginePair.Ipv4(address, "10.1.255.1"));
            }

            network.Pump();
            Assert.Equal(Clients, gatewayTransport.Tun.Count);
            foreach (var (_, _, address, v6) in clients)
            {
                gateway.HandleTunPacket(EnginePair.Ipv4("10.1.255.1", address));
                gateway.HandleTunPacket(EnginePair.Ipv6("fd01::1", v6));
            }

            network.Pump();
            foreach (var (engine, transport, address, v6) in clients)
            {
                Assert.Equal(2, transport.Tun.Count);
                Assert.Equal(IPAddress.Parse(address), new IPAddress(transport.Tun[0].AsSpan(16, 4)));
                Assert.Equal(IPAddress.Parse(v6), new IPAddress(transport.Tun[1].AsSpan(24, 16)));
                Assert.Equal(0, engine.Counters.TotalDrops);
            }

            Assert.Equal(0, gateway.Counters.TotalDrops);
            Assert.Equal(Clients, gateway.GetPeers().Count(p => p.LastHandshake is not null));

            // a client spoofing another client's address is refused by the source check
            clients[0].Engine.HandleTunPacket(EnginePair.Ipv4(clients[1].Address, "10.1.255.1"));
            network.Pump();
            Assert.Equal(1, gateway.Counters.Drops(WireGuardDropReason.SourceNotAllowed));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Engine.Dispose();
            }
        }
    }
}
