using System.Net;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;

namespace CloudVpn.OpenVpn.Tests;

internal static class Specs
{
    public static TunnelSpec Server(string device = "ovpn0", int port = 1194, IReadOnlyDictionary<string, string>? settings = null, params (string Cn, string Address)[] peers) =>
        new(
            new DeviceSpec(device, new KeyReference("openvpn/" + device), port, [IPNetwork.Parse("10.8.0.0/24")]),
            [.. peers.Select(p => new PeerSpec(p.Cn, [IPNetwork.Parse(p.Address + "/32")]))])
        {
            DriverSettings = settings ?? new Dictionary<string, string>(),
        };
}
