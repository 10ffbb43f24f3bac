using System.Text;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Gateway;

/// <summary>
/// What the gateway tells the person who started it, on standard error (standard output carries the JSON log
/// lines): public key, endpoint, driver, and on first start the client configuration of the first peer with its QR
/// code. This is the only place a client private key is shown; it never goes through the logger.
/// </summary>
internal sealed class GatewayConsole(IOptions<GatewayOptions> options, TextWriter? writer = null)
{
    private readonly TextWriter _writer = writer ?? Console.Error;

    public void PrintBanner(GatewayKeyInfo key, string endpoint, DriverSelection selection, int peerCount, EnrolledPeer? firstPeer)
    {
        var o = options.Value;
        var text = new StringBuilder()
            .AppendLine()
            .AppendLine("CloudVpn gateway is up")
            .AppendLine($"  public key : {key.PublicKey}{(key.Created ? "  (created now, kept in " + o.KeysDirectory + ")" : string.Empty)}")
            .AppendLine($"  endpoint   : {endpoint}{(string.IsNullOrWhiteSpace(o.PublicEndpoint) ? "  (guessed from this host's addresses; set --public-endpoint to what clients reach)" : string.Empty)}")
            .AppendLine($"  interface  : {o.Interface} {o.Address}, driver {selection.Driver.Name}")
            .AppendLine($"  peers      : {peerCount} in {o.PeersFile} (re-read on change)")
            .AppendLine($"  metrics    : http://{o.Http}/metrics   health: /healthz /readyz")
            .AppendLine($"  add a peer : dotnet run --project samples/CloudVpn.Samples.Gateway -- --data-dir {o.DataDir} --add-peer NAME");
        if (firstPeer is not null)
        {
            text.AppendLine()
                .AppendLine($"Client configuration for the first peer '{firstPeer.Peer.Name}' (wg-quick; shown once, the gateway keeps only its public key):")
                .AppendLine(ClientConfigBeginMarker)
                .Append(firstPeer.ClientConfiguration)
                .AppendLine(ClientConfigEndMarker)
                .AppendLine()
                .Append(ClientConfig.RenderQr(firstPeer.ClientConfiguration));
        }

        lock (_writer)
        {
            _writer.Write(text.ToString());
            _writer.Flush();
        }
    }

    /// <summary>Line before the printed client configuration (lets scripts cut it out).</summary>
    public const string ClientConfigBeginMarker = "# ---- begin client configuration ----";

    /// <summary>Line after the printed client configuration.</summary>
    public const string ClientConfigEndMarker = "# ---- end client configuration ----";
}
