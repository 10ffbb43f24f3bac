using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using CloudVpn.WireGuard.Keys;
using QRCoder;

namespace CloudVpn.Samples.Gateway;

/// <summary>A wg-quick client configuration for one peer, and its terminal QR code.</summary>
internal static class ClientConfig
{
    /// <summary>Renders the client's wg-quick file. <paramref name="clientPrivateKey"/> goes only into the returned text.</summary>
    public static string Render(WireGuardSecretKey clientPrivateKey, IPNetwork clientAddress, string gatewayPublicKey, string endpoint, GatewayOptions options)
    {
        var (gateway, prefix) = options.ParsedAddress;
        var allowed = GatewayOptionsValidator.SplitList(options.ClientAllowedIps);
        var allowedText = allowed.Length > 0 ? string.Join(", ", allowed) : $"{TunnelAddress.Mask(gateway, prefix)}/{prefix}";
        var text = new StringBuilder()
            .Append("[Interface]\n")
            .Append(CultureInfo.InvariantCulture, $"PrivateKey = {clientPrivateKey.ToBase64()}\n")
            .Append(CultureInfo.InvariantCulture, $"Address = {clientAddress}\n");
        var dns = GatewayOptionsValidator.SplitList(options.ClientDns);
        if (dns.Length > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"DNS = {string.Join(", ", dns)}\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"MTU = {options.Mtu}\n")
            .Append('\n')
            .Append("[Peer]\n")
            .Append(CultureInfo.InvariantCulture, $"PublicKey = {gatewayPublicKey}\n")
            .Append(CultureInfo.InvariantCulture, $"Endpoint = {endpoint}\n")
            .Append(CultureInfo.InvariantCulture, $"AllowedIPs = {allowedText}\n");
        if (options.ClientPersistentKeepalive > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"PersistentKeepalive = {options.ClientPersistentKeepalive}\n");
        }

        return text.ToString();
    }

    /// <summary>The QR code of <paramref name="text"/> drawn with Unicode half blocks (two modules per character row).</summary>
    public static string RenderQr(string text)
    {
        using var generator = new QRCodeGenerator();
        using var data = generator.CreateQrCode(text, QRCodeGenerator.ECCLevel.L);
        var matrix = data.ModuleMatrix;
        var size = matrix.Count;
        var output = new StringBuilder();
        for (var y = 0; y < size; y += 2)
        {
            for (var x = 0; x < size; x++)
            {
                var top = matrix[y][x];
                var bottom = y + 1 < size && matrix[y + 1][x];
                // dark modules print as spaces on a light background, as qrencode -t ansiutf8 does, so phones read it on dark terminals
                output.Append((top, bottom) switch
                {
                    (true, true) => ' ',
                    (true, false) => '▄',
                    (false, true) => '▀',
                    _ => '█',
                });
            }

            output.Append('\n');
        }

        return output.ToString();
    }

    /// <summary>The endpoint written into client files: the setting, else the first global IPv4 address of this host.</summary>
    public static string ResolveEndpoint(GatewayOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.PublicEndpoint))
        {
            return options.PublicEndpoint;
        }

        var address = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback && n.Name != options.Interface)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(u => u.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        return $"{address ?? IPAddress.Loopback}:{options.ListenPort.ToString(CultureInfo.InvariantCulture)}";
    }
}
