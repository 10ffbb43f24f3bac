using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Gateway;

/// <summary>Settings of the sample gateway (configuration section <c>Gateway</c>).</summary>
internal sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>Folder holding the key store (<c>keys/</c>) and <c>peers.json</c>; created 0700 when missing.</summary>
    public string DataDir { get; set; } = "/var/lib/cloudvpn-gateway";

    /// <summary>Tunnel interface name (at most 15 characters).</summary>
    public string Interface { get; set; } = "cloudvpn0";

    /// <summary>UDP port the gateway listens on.</summary>
    public int ListenPort { get; set; } = 51820;

    /// <summary>The gateway's tunnel address with the prefix of the client network, for example 10.8.0.1/24.</summary>
    public string Address { get; set; } = "10.8.0.1/24";

    /// <summary><c>host:port</c> written into client configurations; empty: the first global IPv4 address of this host and <see cref="ListenPort"/>.</summary>
    public string? PublicEndpoint { get; set; }

    /// <summary><c>address:port</c> of the metrics and health endpoints.</summary>
    public string Http { get; set; } = "127.0.0.1:9586";

    /// <summary>Tunnel MTU.</summary>
    public int Mtu { get; set; } = 1420;

    /// <summary>Comma-separated prefixes a client routes through the gateway; empty: the tunnel network.</summary>
    public string? ClientAllowedIps { get; set; }

    /// <summary>Optional DNS server(s) for client configurations, comma-separated.</summary>
    public string? ClientDns { get; set; }

    /// <summary>PersistentKeepalive written into client configurations, seconds (0: none).</summary>
    public int ClientPersistentKeepalive { get; set; } = 25;

    /// <summary>Name of the peer created and printed on first start when the peers file is empty (empty: none).</summary>
    public string? FirstPeerName { get; set; } = "client1";

    /// <summary>How often the driver's status is read (metrics, events, readiness).</summary>
    public TimeSpan StatusInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often peers.json is checked for changes.</summary>
    public TimeSpan PeersFilePollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A peer counts as active (connected) while its last handshake is younger than this.</summary>
    public TimeSpan ActiveWindow { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>What <c>/readyz</c> requires.</summary>
    public ReadinessOptions Readiness { get; set; } = new();

    /// <summary>The folder of the file key store.</summary>
    public string KeysDirectory => Path.Combine(DataDir, "keys");

    /// <summary>The peers file.</summary>
    public string PeersFile => Path.Combine(DataDir, "peers.json");

    /// <summary>Parsed <see cref="Address"/>; valid after validation.</summary>
    public (IPAddress Address, int PrefixLength) ParsedAddress => TunnelAddress.Parse(Address);

    /// <summary>Parsed <see cref="Http"/>; valid after validation.</summary>
    public IPEndPoint HttpEndPoint => IPEndPoint.Parse(Http);
}

/// <summary>What <c>/readyz</c> requires beyond key, tunnel and a fresh data-plane status.</summary>
internal sealed class ReadinessOptions
{
    /// <summary>Also require a handshake within <see cref="GatewayOptions.ActiveWindow"/> (for site-to-site gateways whose peers always connect).</summary>
    public bool RequireHandshake { get; set; }

    /// <summary>The driver's status must have been read successfully within this time.</summary>
    public TimeSpan StatusMaxAge { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Tunnel addresses written <c>a.b.c.d/len</c>.</summary>
internal static class TunnelAddress
{
    public static (IPAddress Address, int PrefixLength) Parse(string text)
    {
        if (!TryParse(text, out var address, out var prefix, out var error))
        {
            throw new FormatException(error);
        }

        return (address, prefix);
    }

    public static bool TryParse(string? text, out IPAddress address, out int prefixLength, out string error)
    {
        address = IPAddress.None;
        prefixLength = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "is empty; give the gateway's tunnel address with its prefix, for example 10.8.0.1/24";
            return false;
        }

        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            error = $"'{text}' has no prefix length; write it as address/prefix, for example 10.8.0.1/24";
            return false;
        }

        if (!IPAddress.TryParse(text.AsSpan(0, slash), out var parsed) || parsed.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            error = $"'{text[..slash]}' is not an IPv4 address (the sample allocates client addresses from an IPv4 network)";
            return false;
        }

        if (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var prefix) || prefix < 8 || prefix > 30)
        {
            error = $"prefix '{text[(slash + 1)..]}' is not a number from 8 to 30 (the network must hold the gateway and at least one client)";
            return false;
        }

        var network = new IPNetwork(Mask(parsed, prefix), prefix);
        var value = ToUInt32(parsed);
        var host = value & ~PrefixMask(prefix);
        if (host == 0 || host == ~PrefixMask(prefix))
        {
            error = $"{parsed} is the network or broadcast address of {network}; use a host address such as {FromUInt32(ToUInt32(network.BaseAddress) + 1)}/{prefix}";
            return false;
        }

        address = parsed;
        prefixLength = prefix;
        error = string.Empty;
        return true;
    }

    public static uint ToUInt32(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    public static IPAddress FromUInt32(uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }

    public static uint PrefixMask(int prefix) => prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);

    public static IPAddress Mask(IPAddress address, int prefix) => FromUInt32(ToUInt32(address) & PrefixMask(prefix));
}

/// <summary>Validates <see cref="GatewayOptions"/> at start, naming every problem (and the switch that sets it).</summary>
internal sealed partial class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var errors = new List<string>();
        void Error(string field, string problem, string? flag = null) =>
            errors.Add($"{GatewayOptions.SectionName}:{field}{(flag is null ? string.Empty : $" (--{flag})")}: {problem}");

        ValidateDataDir(options.DataDir, m => Error(nameof(options.DataDir), m, "data-dir"));

        if (string.IsNullOrEmpty(options.Interface) || !InterfaceName().IsMatch(options.Interface) || options.Interface is "." or "..")
        {
            Error(nameof(options.Interface), $"'{options.Interface}' is not a Linux interface name (1 to 15 characters of letters, digits, '.', '-', '_')", "interface");
        }

        if (options.ListenPort is < 1 or > 65535)
        {
            Error(nameof(options.ListenPort), $"{options.ListenPort} is out of range; a UDP port is 1 to 65535", "listen-port");
        }

        if (!TunnelAddress.TryParse(options.Address, out _, out _, out var addressError))
        {
            Error(nameof(options.Address), addressError, "address");
        }

        if (!string.IsNullOrWhiteSpace(options.PublicEndpoint) && !TryParseHostPort(options.PublicEndpoint, out _, out _))
        {
            Error(nameof(options.PublicEndpoint), $"'{options.PublicEndpoint}' is not host:port (for example vpn.example.com:51820 or [2001:db8::1]:51820)", "public-endpoint");
        }

        if (!IPEndPoint.TryParse(options.Http ?? string.Empty, out var http) || !(options.Http ?? string.Empty).Contains(':', StringComparison.Ordinal) || http.Port is < 1 or > 65535)
        {
            Error(nameof(options.Http), $"'{options.Http}' is not address:port with a port from 1 to 65535 (for example 127.0.0.1:9586)", "http");
        }

        if (options.Mtu is < 1280 or > 9000)
        {
            Error(nameof(options.Mtu), $"{options.Mtu} is out of range; use 1280 to 9000 (1420 suits a 1500-byte underlay)");
        }

        foreach (var prefix in SplitList(options.ClientAllowedIps))
        {
            if (!IPNetwork.TryParse(prefix, out _))
            {
                Error(nameof(options.ClientAllowedIps), $"'{prefix}' is not a prefix such as 10.8.0.0/24 or 0.0.0.0/0 (with host bits zero)");
            }
        }

        foreach (var dns in SplitList(options.ClientDns))
        {
            if (!IPAddress.TryParse(dns, out _))
            {
                Error(nameof(options.ClientDns), $"'{dns}' is not an IP address");
            }
        }

        if (options.ClientPersistentKeepalive is < 0 or > 65535)
        {
            Error(nameof(options.ClientPersistentKeepalive), $"{options.ClientPersistentKeepalive} is out of range; 0 (off) to 65535 seconds");
        }

        if (!string.IsNullOrEmpty(options.FirstPeerName) && !PeerName.IsValid(options.FirstPeerName))
        {
            Error(nameof(options.FirstPeerName), $"'{options.FirstPeerName}' {PeerName.Rule}");
        }

        foreach (var (field, value) in new[]
                 {
                     (nameof(options.StatusInterval), options.StatusInterval),
                     (nameof(options.PeersFilePollInterval), options.PeersFilePollInterval),
                     (nameof(options.ActiveWindow), options.ActiveWindow),
                     ($"{nameof(options.Readiness)}:{nameof(ReadinessOptions.StatusMaxAge)}", options.Readiness.StatusMaxAge),
                 })
        {
            if (value <= TimeSpan.Zero)
            {
                Error(field, $"{value} must be positive");
            }
        }

        if (options.Readiness.StatusMaxAge > TimeSpan.Zero && options.StatusInterval > TimeSpan.Zero && options.Readiness.StatusMaxAge <= options.StatusInterval)
        {
            Error($"{nameof(options.Readiness)}:{nameof(ReadinessOptions.StatusMaxAge)}", $"{options.Readiness.StatusMaxAge} must be longer than StatusInterval ({options.StatusInterval}), or the gateway is never ready");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>Splits a comma-separated setting.</summary>
    public static string[] SplitList(string? value) =>
        string.IsNullOrWhiteSpace(value) ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Parses <c>host:port</c> or <c>[v6]:port</c>.</summary>
    public static bool TryParseHostPort(string text, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            return false;
        }

        host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            return IPAddress.TryParse(host.AsSpan(1, host.Length - 2), out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        }

        return !host.Contains(':', StringComparison.Ordinal) && (IPAddress.TryParse(host, out _) || Uri.CheckHostName(host) == UriHostNameType.Dns);
    }

    /// <summary>
    /// The data folder must exist (it is created 0700 when missing) and take a new file. Creating it here is deliberate:
    /// it is the first thing the gateway does, and doing it in validation lets a bad folder be reported with the other errors.
    /// </summary>
    private static void ValidateDataDir(string? dataDir, Action<string> error)
    {
        if (string.IsNullOrWhiteSpace(dataDir))
        {
            error("is empty; give a folder for the key store and peers.json");
            return;
        }

        if (!Path.IsPathFullyQualified(dataDir))
        {
            error($"'{dataDir}' is not an absolute path");
            return;
        }

        if (File.Exists(dataDir))
        {
            error($"'{dataDir}' is a file, not a folder");
            return;
        }

        try
        {
            if (!Directory.Exists(dataDir))
            {
                Directory.CreateDirectory(dataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error($"'{dataDir}' does not exist and cannot be created: {e.Message}");
            return;
        }

        var probe = Path.Combine(dataDir, $".write-test-{Environment.ProcessId}");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error($"'{dataDir}' is not writable: {e.Message}");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,15}$")]
    private static partial Regex InterfaceName();
}
