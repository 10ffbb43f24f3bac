using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>
/// Our drop-in as a gateway in the left namespace and <c>count</c> Debian wireguard-go clients in the right one, set up
/// with wg and ip as an operator would: client k owns 10.70.k.0/24 behind its tunnel address 10.70.k.2 and reaches
/// the gateway's 10.70.k.1; the gateway knows no client endpoint (it learns them from the handshakes).
/// </summary>
internal sealed class GatewayFleet : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cloudvpn-fleet").FullName;

    private GatewayFleet(WireGuardProcess gateway) => Gateway = gateway;

    public WireGuardProcess Gateway { get; }

    public List<WireGuardProcess> Clients { get; } = [];

    public string GatewayPublic { get; private set; } = string.Empty;

    public List<string> ClientPublics { get; } = [];

    public static GatewayFleet Start(NetnsPair net, int count)
    {
        WireGuardProcess.RequirePrerequisites(Implementation.CloudVpn);
        WireGuardProcess.RequirePrerequisites(Implementation.WireGuardGo);
        var fleet = new GatewayFleet(WireGuardProcess.Start(Implementation.CloudVpn, net.Left));
        try
        {
            var gateway = fleet.Gateway;
            var gatewayKey = fleet.NewKey("gw");
            fleet.GatewayPublic = PublicOf(gatewayKey);
            gateway.Wg($"set {gateway.Name} private-key {gatewayKey} listen-port 51820");
            gateway.Ip($"link set {gateway.Name} up");
            for (var k = 1; k <= count; k++)
            {
                var client = WireGuardProcess.Start(Implementation.WireGuardGo, net.Right);
                fleet.Clients.Add(client);
                var key = fleet.NewKey($"c{k}");
                fleet.ClientPublics.Add(PublicOf(key));
                client.Wg($"set {client.Name} private-key {key} listen-port {51830 + k} peer {fleet.GatewayPublic} endpoint {net.LeftIp}:51820 allowed-ips 10.70.{k}.1/32");
                client.Ip($"addr add 10.70.{k}.2/32 dev {client.Name}");
                client.Ip($"link set {client.Name} up");
                client.Ip($"route add 10.70.{k}.1/32 dev {client.Name}");
                gateway.Wg($"set {gateway.Name} peer {fleet.ClientPublics[k - 1]} allowed-ips 10.70.{k}.0/24");
                gateway.Ip($"addr add 10.70.{k}.1/32 dev {gateway.Name}");
                gateway.Ip($"route add 10.70.{k}.0/24 dev {gateway.Name}");
            }

            return fleet;
        }
        catch
        {
            fleet.Dispose();
            throw;
        }
    }

    private string NewKey(string name)
    {
        var path = Path.Combine(_dir, name + ".key");
        File.WriteAllText(path, Cmd.Run("wg", "genkey").Stdout);
        return path;
    }

    private static string PublicOf(string keyFile) => Cmd.Run("wg", "pubkey", stdin: File.ReadAllText(keyFile)).Stdout.Trim();

    public void Dispose()
    {
        foreach (var client in Clients)
        {
            client.Dispose();
        }

        Gateway.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
