using System.Globalization;
using System.Net;
using System.Net.Sockets;
using CloudVpn.OpenVpn.Pki;
using CloudVpn.Tunnels;

namespace CloudVpn.OpenVpn.Configuration;

/// <summary>Transport protocol of the OpenVPN server.</summary>
public enum OpenVpnProtocol
{
    /// <summary>UDP (the default: no TCP-over-TCP meltdown).</summary>
    Udp,

    /// <summary>TCP, for networks that pass nothing else.</summary>
    Tcp,
}

/// <summary>One client of the server: certificate common name, static tunnel address and routes behind it.</summary>
/// <param name="CommonName">The client certificate's common name (from <see cref="PeerSpec.PublicKey"/>).</param>
/// <param name="Address">Static tunnel address pushed to the client.</param>
/// <param name="Routes">Networks behind the client (OpenVPN <c>iroute</c>).</param>
/// <param name="DisplayName">The peer's label.</param>
public sealed record OpenVpnClientPlan(string CommonName, IPAddress Address, IReadOnlyList<IPNetwork> Routes, string DisplayName);

/// <summary>
/// A <see cref="TunnelSpec"/> checked and translated into OpenVPN terms. <see cref="FromSpec"/> lists every problem
/// at once, each naming the field.
/// </summary>
public sealed record OpenVpnServerPlan
{
    /// <summary>Prefix of the driver settings this driver reads.</summary>
    public const string SettingsPrefix = "openvpn.";

    /// <summary>The AEAD ciphers OpenVPN 2.5+ accepts on the data channel.</summary>
    public static readonly IReadOnlyList<string> AeadCiphers = ["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"];

    private static readonly string[] KnownSettings =
        ["proto", "push-routes", "data-ciphers", "server-name", "server-address", "keepalive", "remote", "local"];

    /// <summary>OpenVPN's registered port, used when the spec asks for port 0.</summary>
    public const int DefaultPort = 1194;

    /// <summary>The tun device name.</summary>
    public required string DeviceName { get; init; }

    /// <summary>UDP or TCP.</summary>
    public OpenVpnProtocol Protocol { get; init; } = OpenVpnProtocol.Udp;

    /// <summary>Listening port.</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>Address to bind, null for all.</summary>
    public IPAddress? Local { get; init; }

    /// <summary>The tunnel network (topology subnet).</summary>
    public required IPNetwork Network { get; init; }

    /// <summary>The server's own address in <see cref="Network"/>.</summary>
    public required IPAddress ServerAddress { get; init; }

    /// <summary>Tun MTU.</summary>
    public int Mtu { get; init; } = DeviceSpec.DefaultMtu;

    /// <summary>Routes pushed to every client (from the access policy).</summary>
    public IReadOnlyList<IPNetwork> PushRoutes { get; init; } = [];

    /// <summary>Data-channel ciphers, AEAD only, in preference order.</summary>
    public IReadOnlyList<string> DataCiphers { get; init; } = AeadCiphers;

    /// <summary>Common name of the server certificate (clients check it).</summary>
    public required string ServerName { get; init; }

    /// <summary>Keepalive ping interval and timeout, in seconds.</summary>
    public (int Interval, int Timeout) Keepalive { get; init; } = (10, 60);

    /// <summary>Host (and optional port) clients connect to, for exported profiles; null when not set.</summary>
    public string? Remote { get; init; }

    /// <summary>The clients, one per peer.</summary>
    public IReadOnlyList<OpenVpnClientPlan> Clients { get; init; } = [];

    /// <summary>Checks <paramref name="spec"/> and builds the plan; throws <see cref="OpenVpnConfigurationException"/> listing every problem.</summary>
    public static OpenVpnServerPlan FromSpec(TunnelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var errors = new List<string>();
        var device = spec.Device;
        var settings = spec.DriverSettings;

        if (string.IsNullOrEmpty(device.Name) || device.Name.Length > 15 || device.Name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            errors.Add($"Device.Name: '{device.Name}' is not a valid interface name (1-15 letters, digits, '-', '_', '.').");
        }

        if (device.ListenPort is < 0 or > 65535)
        {
            errors.Add($"Device.ListenPort: {device.ListenPort} is outside 0-65535.");
        }

        if (device.Mtu is < 576 or > 9000)
        {
            errors.Add($"Device.Mtu: {device.Mtu} is outside 576-9000.");
        }

        IPNetwork network = default;
        if (device.Addresses.Count == 0)
        {
            errors.Add("Device.Addresses: is empty; give the tunnel network, for example 10.8.0.0/24.");
        }
        else
        {
            network = device.Addresses[0];
            if (network.BaseAddress.AddressFamily != AddressFamily.InterNetwork)
            {
                errors.Add($"Device.Addresses[0]: {network} is not IPv4; the OpenVPN driver needs an IPv4 tunnel network.");
            }
            else if (network.PrefixLength is < 8 or > 29)
            {
                errors.Add($"Device.Addresses[0]: {network} must have a prefix between /8 and /29.");
            }
        }

        var protocol = OpenVpnProtocol.Udp;
        if (Get(settings, "proto") is { } proto)
        {
            if (proto.Equals("udp", StringComparison.OrdinalIgnoreCase))
            {
                protocol = OpenVpnProtocol.Udp;
            }
            else if (proto.Equals("tcp", StringComparison.OrdinalIgnoreCase))
            {
                protocol = OpenVpnProtocol.Tcp;
            }
            else
            {
                errors.Add($"DriverSettings[openvpn.proto]: '{proto}' is neither 'udp' nor 'tcp'.");
            }
        }

        var pushRoutes = new List<IPNetwork>();
        if (Get(settings, "push-routes") is { } routes)
        {
            foreach (var item in routes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (IPNetwork.TryParse(item, out var route) && route.BaseAddress.AddressFamily == AddressFamily.InterNetwork)
                {
                    pushRoutes.Add(route);
                }
                else
                {
                    errors.Add($"DriverSettings[openvpn.push-routes]: '{item}' is not an IPv4 CIDR such as 10.0.0.0/16.");
                }
            }
        }

        IReadOnlyList<string> ciphers = AeadCiphers;
        if (Get(settings, "data-ciphers") is { } cipherList)
        {
            var parsed = cipherList.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(c => c.ToUpperInvariant()).ToList();
            var bad = parsed.Where(c => !AeadCiphers.Contains(c)).ToList();
            if (parsed.Count == 0 || bad.Count > 0)
            {
                errors.Add($"DriverSettings[openvpn.data-ciphers]: {(parsed.Count == 0 ? "is empty" : $"'{string.Join(":", bad)}' is not an AEAD cipher")}; allowed: {string.Join(", ", AeadCiphers)}.");
            }
            else
            {
                ciphers = parsed.Distinct().ToList();
            }
        }

        var serverName = Get(settings, "server-name") ?? device.Name;
        try
        {
            OpenVpnPki.ValidateCommonName(serverName, "DriverSettings[openvpn.server-name]");
        }
        catch (ArgumentException e)
        {
            errors.Add(e.Message.Split(" (Parameter", 2)[0]);
        }

        var keepalive = (10, 60);
        if (Get(settings, "keepalive") is { } keepaliveText)
        {
            var parts = keepaliveText.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var interval)
                && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var timeout) && interval > 0 && timeout > interval)
            {
                keepalive = (interval, timeout);
            }
            else
            {
                errors.Add($"DriverSettings[openvpn.keepalive]: '{keepaliveText}' is not '<interval> <timeout>' in seconds with timeout above interval (for example '10 60').");
            }
        }

        IPAddress? local = null;
        if (Get(settings, "local") is { } localText)
        {
            if (!IPAddress.TryParse(localText, out local))
            {
                errors.Add($"DriverSettings[openvpn.local]: '{localText}' is not an IP address.");
            }
        }

        var remote = Get(settings, "remote");
        if (remote is not null && (remote.Length == 0 || remote.Any(char.IsWhiteSpace)))
        {
            errors.Add($"DriverSettings[openvpn.remote]: '{remote}' is not a host name or address.");
        }

        foreach (var key in settings.Keys.Where(k => k.StartsWith(SettingsPrefix, StringComparison.Ordinal)))
        {
            if (!KnownSettings.Contains(key[SettingsPrefix.Length..]))
            {
                errors.Add($"DriverSettings[{key}]: unknown OpenVPN setting; known: {string.Join(", ", KnownSettings.Select(k => SettingsPrefix + k))}.");
            }
        }

        var networkOk = device.Addresses.Count > 0 && network.BaseAddress.AddressFamily == AddressFamily.InterNetwork && network.PrefixLength is >= 8 and <= 29;
        IPAddress serverAddress = IPAddress.None;
        if (networkOk)
        {
            serverAddress = Offset(network.BaseAddress, 1);
            if (Get(settings, "server-address") is { } serverText)
            {
                if (!IPAddress.TryParse(serverText, out var parsed) || !IsHost(network, parsed))
                {
                    errors.Add($"DriverSettings[openvpn.server-address]: '{serverText}' is not a host address inside {network}.");
                }
                else
                {
                    serverAddress = parsed;
                }
            }
        }

        var clients = new List<OpenVpnClientPlan>();
        var seenNames = new HashSet<string>(StringComparer.Ordinal);
        var seenAddresses = new HashSet<IPAddress>();
        for (var i = 0; i < spec.Peers.Count; i++)
        {
            var peer = spec.Peers[i];
            var field = $"Peers[{i}]";
            try
            {
                OpenVpnPki.ValidateCommonName(peer.PublicKey, $"{field}.PublicKey");
            }
            catch (ArgumentException e)
            {
                errors.Add(e.Message.Split(" (Parameter", 2)[0] + " For OpenVPN the peer key is the client certificate's common name.");
                continue;
            }

            if (!seenNames.Add(peer.PublicKey))
            {
                errors.Add($"{field}.PublicKey: '{peer.PublicKey}' appears twice.");
            }

            IPAddress? address = null;
            var routesBehind = new List<IPNetwork>();
            foreach (var allowed in peer.AllowedIps)
            {
                if (allowed.BaseAddress.AddressFamily != AddressFamily.InterNetwork)
                {
                    errors.Add($"{field}.AllowedIps: {allowed} is IPv6; the OpenVPN driver carries IPv4 only.");
                }
                else if (allowed.PrefixLength == 32 && networkOk && network.Contains(allowed.BaseAddress) && address is null)
                {
                    address = allowed.BaseAddress;
                }
                else if (networkOk && network.Contains(allowed.BaseAddress))
                {
                    errors.Add($"{field}.AllowedIps: {allowed} lies inside the tunnel network {network}; give the peer one /32 there and put other prefixes outside it.");
                }
                else
                {
                    routesBehind.Add(allowed);
                }
            }

            if (networkOk)
            {
                if (address is null)
                {
                    errors.Add($"{field}.AllowedIps: has no /32 inside the tunnel network {network}; the peer needs one as its static address.");
                }
                else if (!IsHost(network, address) || address.Equals(serverAddress))
                {
                    errors.Add($"{field}.AllowedIps: {address} is the network, broadcast or server address of {network}.");
                }
                else if (!seenAddresses.Add(address))
                {
                    errors.Add($"{field}.AllowedIps: {address} is already given to another peer.");
                }
            }

            if (address is not null)
            {
                clients.Add(new OpenVpnClientPlan(peer.PublicKey, address, routesBehind, peer.DisplayName));
            }
        }

        if (errors.Count > 0)
        {
            throw new OpenVpnConfigurationException(errors);
        }

        return new OpenVpnServerPlan
        {
            DeviceName = device.Name,
            Protocol = protocol,
            Port = device.ListenPort == 0 ? DefaultPort : device.ListenPort,
            Local = local,
            Network = network,
            ServerAddress = serverAddress,
            Mtu = device.Mtu,
            PushRoutes = pushRoutes,
            DataCiphers = ciphers,
            ServerName = serverName,
            Keepalive = keepalive,
            Remote = remote,
            Clients = clients,
        };
    }

    /// <summary>Dotted netmask of a prefix length.</summary>
    public static string Netmask(int prefixLength)
    {
        var mask = prefixLength == 0 ? 0u : uint.MaxValue << (32 - prefixLength);
        return $"{mask >> 24}.{(mask >> 16) & 0xFF}.{(mask >> 8) & 0xFF}.{mask & 0xFF}";
    }

    private static string? Get(IReadOnlyDictionary<string, string> settings, string key) =>
        settings.TryGetValue(SettingsPrefix + key, out var value) ? value.Trim() : null;

    private static bool IsHost(IPNetwork network, IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetwork || !network.Contains(address))
        {
            return false;
        }

        var offset = ToUInt(address) - ToUInt(network.BaseAddress);
        var size = 1u << (32 - network.PrefixLength);
        return offset != 0 && offset != size - 1;
    }

    private static IPAddress Offset(IPAddress address, uint by) => FromUInt(ToUInt(address) + by);

    private static uint ToUInt(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }

    private static IPAddress FromUInt(uint value) => new([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
}

/// <summary>A tunnel spec or setting the OpenVPN driver cannot use; the message lists every problem, each naming its field.</summary>
public sealed class OpenVpnConfigurationException : Exception
{
    /// <summary>Creates the exception from the list of problems.</summary>
    public OpenVpnConfigurationException(IReadOnlyList<string> errors)
        : base("The tunnel spec is not valid for OpenVPN:" + string.Concat(errors.Select(e => Environment.NewLine + " - " + e)))
    {
        Errors = errors;
    }

    /// <summary>Each problem, naming its field.</summary>
    public IReadOnlyList<string> Errors { get; }
}
