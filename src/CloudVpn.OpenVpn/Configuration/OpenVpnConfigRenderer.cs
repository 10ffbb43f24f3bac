using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace CloudVpn.OpenVpn.Configuration;

/// <summary>Where the files of one running server live inside its runtime folder.</summary>
/// <param name="Directory">The runtime folder (0700).</param>
public sealed record OpenVpnRuntimeLayout(string Directory)
{
    /// <summary>The rendered server configuration.</summary>
    public string ConfigFile => Path.Combine(Directory, "server.conf");

    /// <summary>CA certificate.</summary>
    public string CaFile => Path.Combine(Directory, "ca.crt");

    /// <summary>Server certificate.</summary>
    public string CertificateFile => Path.Combine(Directory, "server.crt");

    /// <summary>Server private key (0600).</summary>
    public string KeyFile => Path.Combine(Directory, "server.key");

    /// <summary>tls-crypt key (0600).</summary>
    public string TlsCryptFile => Path.Combine(Directory, "tls-crypt.key");

    /// <summary>Certificate revocation list, re-read by OpenVPN when it changes.</summary>
    public string CrlFile => Path.Combine(Directory, "crl.pem");

    /// <summary>Client-config folder: one file per allowed client, named by common name.</summary>
    public string ClientConfigDirectory => Path.Combine(Directory, "ccd");

    /// <summary>Management interface Unix socket.</summary>
    public string ManagementSocket => Path.Combine(Directory, "management.sock");
}

/// <summary>Renders OpenVPN server configurations, client-config files and client profiles from a plan.</summary>
public static class OpenVpnConfigRenderer
{
    /// <summary>
    /// The server configuration. It holds file paths only, never key material: keys are separate 0600 files. Only
    /// clients with a file in the client-config folder are accepted (<c>ccd-exclusive</c>), and each gets its
    /// static address from it.
    /// </summary>
    public static string RenderServer(OpenVpnServerPlan plan, OpenVpnRuntimeLayout layout)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(layout);
        var mask = OpenVpnServerPlan.Netmask(plan.Network.PrefixLength);
        var b = new StringBuilder();
        Line(b, "# Rendered by CloudVpn.OpenVpn; changes are overwritten.");
        Line(b, "mode server");
        Line(b, "tls-server");
        Line(b, plan.Protocol == OpenVpnProtocol.Udp ? "proto udp4" : "proto tcp4-server");
        if (plan.Local is not null)
        {
            Line(b, $"local {plan.Local}");
        }

        Line(b, $"port {plan.Port}");
        Line(b, $"dev {plan.DeviceName}");
        Line(b, "dev-type tun");
        Line(b, $"tun-mtu {plan.Mtu}");
        Line(b, "topology subnet");
        Line(b, $"ifconfig {plan.ServerAddress} {mask}");
        Line(b, "push \"topology subnet\"");
        Line(b, $"push \"route-gateway {plan.ServerAddress}\"");
        foreach (var route in plan.PushRoutes)
        {
            Line(b, $"push \"route {route.BaseAddress} {OpenVpnServerPlan.Netmask(route.PrefixLength)}\"");
        }

        foreach (var route in plan.Clients.SelectMany(c => c.Routes).Distinct())
        {
            Line(b, $"route {route.BaseAddress} {OpenVpnServerPlan.Netmask(route.PrefixLength)}");
        }

        Line(b, $"client-config-dir {Quote(layout.ClientConfigDirectory)}");
        Line(b, "ccd-exclusive");
        Line(b, $"ca {Quote(layout.CaFile)}");
        Line(b, $"cert {Quote(layout.CertificateFile)}");
        Line(b, $"key {Quote(layout.KeyFile)}");
        Line(b, $"tls-crypt {Quote(layout.TlsCryptFile)}");
        Line(b, $"crl-verify {Quote(layout.CrlFile)}");
        Line(b, "dh none");
        Line(b, "remote-cert-tls client");
        Line(b, "tls-version-min 1.2");
        Line(b, $"data-ciphers {string.Join(':', plan.DataCiphers)}");
        Line(b, $"keepalive {plan.Keepalive.Interval} {plan.Keepalive.Timeout}");
        Line(b, $"management {Quote(layout.ManagementSocket)} unix");
        Line(b, "verb 3");
        return b.ToString();
    }

    /// <summary>The client-config file of one client: its static address and the networks behind it.</summary>
    public static string RenderClientConfig(OpenVpnServerPlan plan, OpenVpnClientPlan client)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(client);
        var b = new StringBuilder();
        Line(b, $"ifconfig-push {client.Address} {OpenVpnServerPlan.Netmask(plan.Network.PrefixLength)}");
        foreach (var route in client.Routes)
        {
            Line(b, $"iroute {route.BaseAddress} {OpenVpnServerPlan.Netmask(route.PrefixLength)}");
        }

        return b.ToString();
    }

    /// <summary>
    /// A client profile (<c>.ovpn</c>) with the CA, client certificate, client key and tls-crypt key inline. The key
    /// parts are copied as bytes, so the result is a byte array the caller zeroes after use, never a string.
    /// </summary>
    /// <param name="plan">The server plan (protocol, port, ciphers, server name).</param>
    /// <param name="remoteHost">Host or address clients connect to.</param>
    /// <param name="remotePort">Port clients connect to; null uses the server's port.</param>
    /// <param name="caPem">CA certificate PEM.</param>
    /// <param name="certificatePem">Client certificate PEM.</param>
    /// <param name="keyPem">Client private key PEM.</param>
    /// <param name="tlsCryptKey">tls-crypt static key file.</param>
    public static byte[] RenderClientProfile(
        OpenVpnServerPlan plan,
        string remoteHost,
        int? remotePort,
        ReadOnlySpan<byte> caPem,
        ReadOnlySpan<byte> certificatePem,
        ReadOnlySpan<byte> keyPem,
        ReadOnlySpan<byte> tlsCryptKey)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (string.IsNullOrWhiteSpace(remoteHost) || remoteHost.Any(char.IsWhiteSpace))
        {
            throw new ArgumentException($"remoteHost: '{remoteHost}' is not a host name or address.", nameof(remoteHost));
        }

        var port = remotePort ?? plan.Port;
        if (port is < 1 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(remotePort), $"remotePort: {port} is outside 1-65535.");
        }

        var head = new StringBuilder();
        Line(head, "# OpenVPN client profile exported by CloudVpn. It holds a private key: keep it secret.");
        Line(head, "client");
        Line(head, "dev tun");
        Line(head, plan.Protocol == OpenVpnProtocol.Udp ? "proto udp" : "proto tcp-client");
        Line(head, $"remote {remoteHost} {port.ToString(CultureInfo.InvariantCulture)}");
        Line(head, "nobind");
        Line(head, "resolv-retry infinite");
        Line(head, $"tun-mtu {plan.Mtu}");
        Line(head, "remote-cert-tls server");
        Line(head, $"verify-x509-name {plan.ServerName} name");
        Line(head, "tls-version-min 1.2");
        Line(head, $"data-ciphers {string.Join(':', plan.DataCiphers)}");
        Line(head, "verb 3");

        ReadOnlySpan<byte> headBytes = Encoding.UTF8.GetBytes(head.ToString());
        var parts = new List<(byte[] Open, int Index, byte[] Close)>
        {
            ("<ca>\n"u8.ToArray(), 0, "</ca>\n"u8.ToArray()),
            ("<cert>\n"u8.ToArray(), 1, "</cert>\n"u8.ToArray()),
            ("<key>\n"u8.ToArray(), 2, "</key>\n"u8.ToArray()),
            ("<tls-crypt>\n"u8.ToArray(), 3, "</tls-crypt>\n"u8.ToArray()),
        };
        var length = headBytes.Length + parts.Sum(p => p.Open.Length + p.Close.Length)
            + caPem.Length + certificatePem.Length + keyPem.Length + tlsCryptKey.Length + 4;
        var output = GC.AllocateUninitializedArray<byte>(length, pinned: true);
        var at = 0;
        headBytes.CopyTo(output);
        at += headBytes.Length;
        foreach (var (open, index, close) in parts)
        {
            var body = index switch { 0 => caPem, 1 => certificatePem, 2 => keyPem, _ => tlsCryptKey };
            open.CopyTo(output, at);
            at += open.Length;
            body.CopyTo(output.AsSpan(at));
            at += body.Length;
            if (body.Length == 0 || body[^1] != (byte)'\n')
            {
                output[at++] = (byte)'\n';
            }

            close.CopyTo(output, at);
            at += close.Length;
        }

        if (at == output.Length)
        {
            return output;
        }

        var exact = output.AsSpan(0, at).ToArray();
        CryptographicOperations.ZeroMemory(output);
        return exact;
    }

    private static string Quote(string path) =>
        path.Any(c => char.IsWhiteSpace(c) || c is '"' or '\\' or '#' or ';')
            ? throw new ArgumentException($"Runtime path '{path}' holds a space, quote, backslash, '#' or ';', which an OpenVPN configuration line cannot carry safely.")
            : path;

    private static void Line(StringBuilder b, string line) => b.Append(line).Append('\n');
}
