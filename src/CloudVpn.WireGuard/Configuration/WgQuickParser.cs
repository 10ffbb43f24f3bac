using System.Globalization;
using System.Net;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Configuration;

/// <summary>Reads wg-quick files; every error names the line, the key and the problem.</summary>
internal static class WgQuickParser
{
    private static readonly string[] WgQuickOpaqueKeys = ["Table", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig"];

    public static WgQuickConfig Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        InterfaceBuilder? iface = null;
        var peers = new List<PeerBuilder>();
        PeerBuilder? peer = null;
        var inInterface = false;
        var lineNumber = 0;
        try
        {
            foreach (var rawLine in text.Split('\n'))
            {
                lineNumber++;
                var line = rawLine;
                if (lineNumber == 1 && line.StartsWith('\uFEFF'))
                {
                    line = line[1..];
                }

                var hash = line.IndexOf('#', StringComparison.Ordinal);
                if (hash >= 0)
                {
                    line = line[..hash];
                }

                line = line.Trim();
                if (line.Length == 0)
                {
                    continue;
                }

                if (line.StartsWith('['))
                {
                    if (line.Equals("[Interface]", StringComparison.OrdinalIgnoreCase))
                    {
                        if (iface is not null)
                        {
                            throw new WgQuickConfigException(lineNumber, null, $"a second [Interface] section (the first is on line {iface.Line})");
                        }

                        iface = new InterfaceBuilder(lineNumber);
                        inInterface = true;
                        peer = null;
                    }
                    else if (line.Equals("[Peer]", StringComparison.OrdinalIgnoreCase))
                    {
                        peer = new PeerBuilder(lineNumber);
                        peers.Add(peer);
                        inInterface = false;
                    }
                    else
                    {
                        throw new WgQuickConfigException(lineNumber, null, $"unknown section '{Shorten(line)}' (expected [Interface] or [Peer])");
                    }

                    continue;
                }

                var equals = line.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0)
                {
                    throw new WgQuickConfigException(lineNumber, null, "expected 'Key = Value' or a [Section]");
                }

                var key = line[..equals].TrimEnd();
                var value = line[(equals + 1)..].TrimStart();
                if (inInterface)
                {
                    iface!.Set(key, value, lineNumber);
                }
                else if (peer is not null)
                {
                    peer.Set(key, value, lineNumber);
                }
                else
                {
                    throw new WgQuickConfigException(lineNumber, key, "a key before any [Interface] or [Peer] section");
                }
            }

            if (iface is null)
            {
                throw new WgQuickConfigException(0, null, "no [Interface] section");
            }

            var seen = new Dictionary<WireGuardPublicKey, int>();
            foreach (var p in peers)
            {
                if (p.PublicKey is null)
                {
                    throw new WgQuickConfigException(p.Line, "PublicKey", "missing in this [Peer] section");
                }

                if (!seen.TryAdd(p.PublicKey.Value, p.Line))
                {
                    throw new WgQuickConfigException(p.PublicKeyLine, "PublicKey", $"the same peer is already defined in the [Peer] section on line {seen[p.PublicKey.Value]}");
                }
            }

            return new WgQuickConfig { Interface = iface.Build(), Peers = peers.Select(p => p.Build()).ToArray() };
        }
        catch
        {
            iface?.PrivateKey?.Dispose();
            foreach (var p in peers)
            {
                p.PresharedKey?.Dispose();
            }

            throw;
        }
    }

    private static string Shorten(string text) => text.Length > 40 ? text[..40] + "..." : text;

    private static void Once(Dictionary<string, int> seen, string canonical, string key, int lineNumber)
    {
        if (!seen.TryAdd(canonical, lineNumber))
        {
            throw new WgQuickConfigException(lineNumber, key, $"set twice in this section (first on line {seen[canonical]})");
        }
    }

    private static IEnumerable<string> ListItems(string value) =>
        value.Split(',', StringSplitOptions.TrimEntries).Where(item => item.Length > 0);

    private static WireGuardSecretKey ParseSecret(string value, string key, int lineNumber)
    {
        try
        {
            return WireGuardSecretKey.FromBase64(value);
        }
        catch (FormatException)
        {
            // Never echo the value: it is (nearly) a secret.
            throw new WgQuickConfigException(lineNumber, key, $"not a key: expected 44 characters of base64 encoding 32 bytes, got {value.Length} characters");
        }
    }

    private static ushort ParsePort(string value, string key, int lineNumber) =>
        ushort.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? port
            : throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(value)}' is not a port number from 0 to 65535");

    private sealed class InterfaceBuilder(int line)
    {
        private readonly Dictionary<string, int> _seen = [];

        public int Line { get; } = line;

        public WireGuardSecretKey? PrivateKey { get; private set; }

        private List<WgQuickAddress> Addresses { get; } = [];

        private ushort? ListenPort { get; set; }

        private uint? FirewallMark { get; set; }

        private int? Mtu { get; set; }

        private List<IPAddress> DnsServers { get; } = [];

        private List<string> DnsSearchDomains { get; } = [];

        private List<KeyValuePair<string, string>> ExtraKeys { get; } = [];

        public void Set(string key, string value, int lineNumber)
        {
            switch (key.ToUpperInvariant())
            {
                case "PRIVATEKEY":
                    Once(_seen, "PrivateKey", key, lineNumber);
                    PrivateKey = ParseSecret(value, key, lineNumber);
                    break;
                case "ADDRESS":
                    foreach (var item in ListItems(value))
                    {
                        Addresses.Add(ParseAddress(item, key, lineNumber));
                    }

                    break;
                case "LISTENPORT":
                    Once(_seen, "ListenPort", key, lineNumber);
                    ListenPort = ParsePort(value, key, lineNumber);
                    break;
                case "FWMARK":
                    Once(_seen, "FwMark", key, lineNumber);
                    FirewallMark = ParseFirewallMark(value, key, lineNumber);
                    break;
                case "MTU":
                    Once(_seen, "MTU", key, lineNumber);
                    Mtu = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var mtu) && mtu is >= 68 and <= 65535
                        ? mtu
                        : throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(value)}' is not an MTU from 68 to 65535");
                    break;
                case "DNS":
                    foreach (var item in ListItems(value))
                    {
                        if (IpSyntax.TryParseAddress(item, out var server))
                        {
                            DnsServers.Add(server);
                        }
                        else if (IsDomainName(item))
                        {
                            DnsSearchDomains.Add(item);
                        }
                        else
                        {
                            throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(item)}' is neither an IP address nor a search domain");
                        }
                    }

                    break;
                default:
                    var opaque = Array.Find(WgQuickOpaqueKeys, k => k.Equals(key, StringComparison.OrdinalIgnoreCase));
                    if (opaque is null)
                    {
                        throw new WgQuickConfigException(lineNumber, key, "unknown key in [Interface] (expected PrivateKey, Address, ListenPort, FwMark, MTU, DNS, Table, PreUp, PostUp, PreDown, PostDown or SaveConfig)");
                    }

                    if (opaque is "Table" or "SaveConfig")
                    {
                        Once(_seen, opaque, key, lineNumber);
                    }

                    if (value.Length == 0)
                    {
                        throw new WgQuickConfigException(lineNumber, key, "empty value");
                    }

                    ExtraKeys.Add(new(opaque, value));
                    break;
            }
        }

        public WgQuickInterface Build() => new()
        {
            PrivateKey = PrivateKey,
            Addresses = Addresses.ToArray(),
            ListenPort = ListenPort,
            FirewallMark = FirewallMark,
            Mtu = Mtu,
            DnsServers = DnsServers.ToArray(),
            DnsSearchDomains = DnsSearchDomains.ToArray(),
            ExtraKeys = ExtraKeys.ToArray(),
        };

        private static WgQuickAddress ParseAddress(string item, string key, int lineNumber)
        {
            if (!item.Contains('/', StringComparison.Ordinal))
            {
                // wg-quick hands a bare address to `ip address add`, which means a host route.
                return IpSyntax.TryParseAddress(item, out var bare)
                    ? new WgQuickAddress(bare, bare.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)
                    : throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(item)}' is not an IPv4 or IPv6 address");
            }

            return IpSyntax.TryParsePrefix(item, out var address, out var length, out var problem)
                ? new WgQuickAddress(address, length)
                : throw new WgQuickConfigException(lineNumber, key, problem!);
        }

        private static uint ParseFirewallMark(string value, string key, int lineNumber)
        {
            if (value.Equals("off", StringComparison.OrdinalIgnoreCase))
            {
                return 0;
            }

            var ok = value.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? uint.TryParse(value.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var mark) && value.Length > 2
                : uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out mark);
            return ok ? mark : throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(value)}' is not 'off' or a number (decimal or 0x hexadecimal) up to 4294967295");
        }

        private static bool IsDomainName(string item) =>
            item.Length <= 253 && !item.StartsWith('.') && !item.StartsWith('-')
            && item.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')
            && item.Any(char.IsAsciiLetter);
    }

    private sealed class PeerBuilder(int line)
    {
        private readonly Dictionary<string, int> _seen = [];

        public int Line { get; } = line;

        public WireGuardPublicKey? PublicKey { get; private set; }

        public int PublicKeyLine { get; private set; }

        public WireGuardSecretKey? PresharedKey { get; private set; }

        private List<IPNetwork> AllowedIps { get; } = [];

        private WgQuickEndpoint? Endpoint { get; set; }

        private ushort? PersistentKeepalive { get; set; }

        public void Set(string key, string value, int lineNumber)
        {
            switch (key.ToUpperInvariant())
            {
                case "PUBLICKEY":
                    Once(_seen, "PublicKey", key, lineNumber);
                    PublicKey = WireGuardPublicKey.TryFromBase64(value, out var publicKey)
                        ? publicKey
                        : throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(value)}' is not a key: expected 44 characters of base64 encoding 32 bytes");
                    PublicKeyLine = lineNumber;
                    break;
                case "PRESHAREDKEY":
                    Once(_seen, "PresharedKey", key, lineNumber);
                    PresharedKey = ParseSecret(value, key, lineNumber);
                    break;
                case "ALLOWEDIPS":
                    foreach (var item in ListItems(value))
                    {
                        AllowedIps.Add(ParseAllowedIp(item, key, lineNumber));
                    }

                    break;
                case "ENDPOINT":
                    Once(_seen, "Endpoint", key, lineNumber);
                    Endpoint = ParseEndpoint(value, key, lineNumber);
                    break;
                case "PERSISTENTKEEPALIVE":
                    Once(_seen, "PersistentKeepalive", key, lineNumber);
                    PersistentKeepalive = value.Equals("off", StringComparison.OrdinalIgnoreCase)
                        ? (ushort)0
                        : ushort.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
                            ? seconds
                            : throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(value)}' is not 'off' or a number of seconds from 0 to 65535");
                    break;
                default:
                    throw new WgQuickConfigException(lineNumber, key, "unknown key in [Peer] (expected PublicKey, PresharedKey, AllowedIPs, Endpoint or PersistentKeepalive)");
            }
        }

        public WgQuickPeer Build() => new()
        {
            PublicKey = PublicKey!.Value,
            PresharedKey = PresharedKey,
            AllowedIps = AllowedIps.ToArray(),
            Endpoint = Endpoint,
            PersistentKeepalive = PersistentKeepalive,
        };

        private static IPNetwork ParseAllowedIp(string item, string key, int lineNumber)
        {
            if (!item.Contains('/', StringComparison.Ordinal))
            {
                // wg takes a bare address as a single host.
                return IpSyntax.TryParseAddress(item, out var bare)
                    ? IpSyntax.ToNetwork(bare, bare.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)
                    : throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(item)}' is not an IPv4 or IPv6 address");
            }

            return IpSyntax.TryParseNetwork(item, out var network, out var problem)
                ? network
                : throw new WgQuickConfigException(lineNumber, key, problem!);
        }

        private static WgQuickEndpoint ParseEndpoint(string value, string key, int lineNumber)
        {
            if (!IpSyntax.TrySplitHostPort(value, out var hostSpan, out var port, out var bracketed))
            {
                throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(value)}' is not host:port or [IPv6 address]:port");
            }

            var host = hostSpan.ToString();
            if (bracketed)
            {
                if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
                {
                    throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(host)}' in brackets is not an IPv6 address");
                }
            }
            else if (!IpSyntax.TryParseAddress(host, out _) && !IsHostName(host))
            {
                throw new WgQuickConfigException(lineNumber, key, $"'{Shorten(host)}' is not an IPv4 address or a host name");
            }

            return new WgQuickEndpoint(host, port);
        }

        private static bool IsHostName(string host) =>
            host.Length is > 0 and <= 253 && !host.StartsWith('-') && !host.StartsWith('.')
            && host.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_')
            && !host.All(c => char.IsAsciiDigit(c) || c == '.');
    }
}
