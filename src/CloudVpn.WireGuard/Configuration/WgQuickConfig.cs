using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Configuration;

/// <summary>
/// A wg-quick configuration file (<c>/etc/wireguard/wg0.conf</c>): one <c>[Interface]</c> and any number of
/// <c>[Peer]</c> sections. <see cref="Parse"/> reads it the way wg-quick and wg do (case-insensitive section names and
/// keys, <c>#</c> comments, comma-separated lists, lists may repeat); <see cref="Write"/> produces the file text.
/// <see cref="ToString"/> never shows key material. Owns its keys: <see cref="Dispose"/> zeroes them.
/// </summary>
public sealed record WgQuickConfig : IDisposable
{
    private static readonly byte[] NoKey = new byte[WireGuardSecretKey.Length];

    /// <summary>The <c>[Interface]</c> section.</summary>
    public required WgQuickInterface Interface { get; init; }

    /// <summary>The <c>[Peer]</c> sections in file order.</summary>
    public IReadOnlyList<WgQuickPeer> Peers { get; init; } = [];

    /// <summary>Parses the text of a configuration file.</summary>
    /// <exception cref="WgQuickConfigException">The text is malformed; the exception names the line, key and problem.</exception>
    public static WgQuickConfig Parse(string text) => WgQuickParser.Parse(text);

    /// <summary>
    /// The configuration of a running device, as <c>wg showconf</c> prints it (no Address, DNS or MTU: the device does
    /// not know them). Copies the keys; the state stays owned by the caller.
    /// </summary>
    public static WgQuickConfig FromDeviceState(Uapi.UapiDeviceState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        return new WgQuickConfig
        {
            Interface = new WgQuickInterface
            {
                PrivateKey = state.PrivateKey is { IsZero: false } key ? new WireGuardSecretKey(key.Bytes) : null,
                ListenPort = state.ListenPort == 0 ? null : state.ListenPort,
                FirewallMark = state.FirewallMark == 0 ? null : state.FirewallMark,
            },
            Peers = state.Peers.Select(p => new WgQuickPeer
            {
                PublicKey = p.PublicKey,
                PresharedKey = p.PresharedKey is { IsZero: false } psk ? new WireGuardSecretKey(psk.Bytes) : null,
                AllowedIps = p.AllowedIps,
                Endpoint = p.Endpoint is null ? null : new WgQuickEndpoint(p.Endpoint.Address.ToString(), (ushort)p.Endpoint.Port),
                PersistentKeepalive = p.PersistentKeepaliveInterval == 0 ? null : p.PersistentKeepaliveInterval,
            }).ToArray(),
        };
    }

    /// <summary>
    /// The file text, private and preshared keys included: write it only to a file with mode 0600 (or a key store).
    /// </summary>
    public string Write() => WgQuickWriter.Write(this, includeWgQuickKeys: true);

    /// <summary>
    /// Writes <see cref="Write"/> to <paramref name="path"/> atomically: a new file with mode 0600 in the same directory,
    /// flushed to disk, then renamed over the target, so a reader sees the old file or the new one, never a part.
    /// </summary>
    /// <exception cref="IOException">The file cannot be written.</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        var text = Write();
        var bytes = Encoding.UTF8.GetBytes(text);
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }

            throw;
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>
    /// The plain <c>wg</c> configuration (what <c>wg-quick strip</c> prints): without Address, DNS, MTU, Table,
    /// PreUp/PostUp/PreDown/PostDown and SaveConfig, for <c>wg setconf</c>/<c>wg syncconf</c>. Contains keys.
    /// </summary>
    public string WriteWgConfig() => WgQuickWriter.Write(this, includeWgQuickKeys: false);

    /// <summary>
    /// The userspace API request that <c>wg setconf</c> sends for this file: every peer replaced, each peer's allowed
    /// IPs replaced; what the file leaves out is reset (no private key, no preshared key, listen port 0 = any,
    /// no firewall mark, no keepalive), as wg does. The request holds copies of the keys (dispose it).
    /// </summary>
    /// <param name="resolveEndpoint">
    /// Turns a host-name endpoint into an address (wg resolves names when it applies a file); null refuses names.
    /// </param>
    /// <exception cref="WgQuickConfigException">An endpoint is a host name and no resolver was given.</exception>
    public Uapi.UapiSetRequest ToSetRequest(Func<WgQuickEndpoint, IPEndPoint>? resolveEndpoint = null)
    {
        var peers = new List<Uapi.UapiPeerUpdate>(Peers.Count);
        try
        {
            foreach (var peer in Peers)
            {
                IPEndPoint? endpoint = null;
                if (peer.Endpoint is not null)
                {
                    endpoint = peer.Endpoint.TryGetIPEndPoint()
                        ?? resolveEndpoint?.Invoke(peer.Endpoint)
                        ?? throw new WgQuickConfigException(0, "Endpoint", $"'{peer.Endpoint}' of peer {peer.PublicKey} is a host name and no resolver was given");
                }

                peers.Add(new Uapi.UapiPeerUpdate
                {
                    PublicKey = peer.PublicKey,
                    PresharedKey = new WireGuardSecretKey(peer.PresharedKey is null ? NoKey : peer.PresharedKey.Bytes),
                    Endpoint = endpoint,
                    PersistentKeepaliveInterval = peer.PersistentKeepalive ?? 0,
                    ReplaceAllowedIps = true,
                    AllowedIps = peer.AllowedIps,
                });
            }
        }
        catch
        {
            foreach (var built in peers)
            {
                built.PresharedKey?.Dispose();
            }

            throw;
        }

        return new Uapi.UapiSetRequest
        {
            PrivateKey = new WireGuardSecretKey(Interface.PrivateKey is null ? NoKey : Interface.PrivateKey.Bytes),
            ListenPort = Interface.ListenPort ?? 0,
            FirewallMark = Interface.FirewallMark ?? 0,
            ReplacePeers = true,
            Peers = peers,
        };
    }

    /// <summary>Zeroes the private key and every preshared key.</summary>
    public void Dispose()
    {
        Interface.PrivateKey?.Dispose();
        foreach (var peer in Peers)
        {
            peer.PresharedKey?.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"WgQuickConfig {{ Interface = {Interface}, Peers = [{string.Join(", ", Peers)}] }}";
}

/// <summary>The <c>[Interface]</c> section of a wg-quick file.</summary>
public sealed record WgQuickInterface
{
    /// <summary><c>PrivateKey</c>; null when absent.</summary>
    public WireGuardSecretKey? PrivateKey { get; init; }

    /// <summary><c>Address</c>: interface addresses with their prefix lengths (host bits kept).</summary>
    public IReadOnlyList<WgQuickAddress> Addresses { get; init; } = [];

    /// <summary><c>ListenPort</c>; null when absent (wg picks a port).</summary>
    public ushort? ListenPort { get; init; }

    /// <summary><c>FwMark</c>; null when absent, 0 for <c>off</c>.</summary>
    public uint? FirewallMark { get; init; }

    /// <summary><c>MTU</c>; null when absent (wg-quick derives it).</summary>
    public int? Mtu { get; init; }

    /// <summary>The DNS servers of <c>DNS</c>.</summary>
    public IReadOnlyList<IPAddress> DnsServers { get; init; } = [];

    /// <summary>The search domains of <c>DNS</c> (entries that are not addresses).</summary>
    public IReadOnlyList<string> DnsSearchDomains { get; init; } = [];

    /// <summary>
    /// wg-quick keys kept as written, in file order: <c>Table</c>, <c>PreUp</c>, <c>PostUp</c>, <c>PreDown</c>,
    /// <c>PostDown</c>, <c>SaveConfig</c> (the hook keys may repeat).
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> ExtraKeys { get; init; } = [];

    /// <inheritdoc />
    public override string ToString() =>
        $"[Interface] {{ PrivateKey = {(PrivateKey is null ? "none" : "<redacted>")}, Addresses = [{string.Join(", ", Addresses)}], ListenPort = {ListenPort?.ToString(CultureInfo.InvariantCulture) ?? "none"}, Mtu = {Mtu?.ToString(CultureInfo.InvariantCulture) ?? "none"} }}";
}

/// <summary>One <c>[Peer]</c> section of a wg-quick file.</summary>
public sealed record WgQuickPeer
{
    /// <summary><c>PublicKey</c> (required).</summary>
    public required WireGuardPublicKey PublicKey { get; init; }

    /// <summary><c>PresharedKey</c>; null when absent.</summary>
    public WireGuardSecretKey? PresharedKey { get; init; }

    /// <summary><c>AllowedIPs</c> (host bits cleared, as wg does).</summary>
    public IReadOnlyList<IPNetwork> AllowedIps { get; init; } = [];

    /// <summary><c>Endpoint</c>; a host name is kept as written (wg resolves it when applying).</summary>
    public WgQuickEndpoint? Endpoint { get; init; }

    /// <summary><c>PersistentKeepalive</c> in seconds; null when absent, 0 for <c>off</c>.</summary>
    public ushort? PersistentKeepalive { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        $"[Peer] {{ PublicKey = {PublicKey}, PresharedKey = {(PresharedKey is null ? "none" : "<redacted>")}, AllowedIps = [{string.Join(", ", AllowedIps)}], Endpoint = {Endpoint?.ToString() ?? "none"} }}";
}

/// <summary>An interface address with its prefix length, e.g. <c>10.0.0.1/24</c>.</summary>
/// <param name="Address">The address (host bits are meaningful here).</param>
/// <param name="PrefixLength">0-32 for IPv4, 0-128 for IPv6.</param>
public sealed record WgQuickAddress(IPAddress Address, int PrefixLength)
{
    /// <summary>The network the address is on.</summary>
    public IPNetwork Network => IpSyntax.ToNetwork(Address, PrefixLength);

    /// <inheritdoc />
    public override string ToString() => $"{Address}/{PrefixLength.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>A peer endpoint as written: an IPv4 address, an IPv6 address or a host name, and a port.</summary>
/// <param name="Host">Address or DNS name, without brackets.</param>
/// <param name="Port">UDP port.</param>
public sealed record WgQuickEndpoint(string Host, ushort Port)
{
    /// <summary>The endpoint as an <see cref="IPEndPoint"/> when <see cref="Host"/> is an address; null for a name.</summary>
    public IPEndPoint? TryGetIPEndPoint() =>
        IPAddress.TryParse(Host, out var address) && (address.AddressFamily == AddressFamily.InterNetworkV6 || IpSyntax.TryParseAddress(Host, out _))
            ? new IPEndPoint(address, Port)
            : null;

    /// <summary><c>host:port</c>, <c>[v6]:port</c>.</summary>
    public override string ToString() =>
        Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port.ToString(CultureInfo.InvariantCulture)}" : $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";
}

internal static class WgQuickWriter
{
    public static string Write(WgQuickConfig config, bool includeWgQuickKeys)
    {
        var text = new StringBuilder();
        var iface = config.Interface;
        text.Append("[Interface]\n");
        if (iface.PrivateKey is not null)
        {
            text.Append("PrivateKey = ").Append(iface.PrivateKey.ToBase64()).Append('\n');
        }

        if (includeWgQuickKeys && iface.Addresses.Count > 0)
        {
            text.Append("Address = ").AppendJoin(", ", iface.Addresses).Append('\n');
        }

        if (iface.ListenPort is { } port)
        {
            text.Append("ListenPort = ").Append(port.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        if (iface.FirewallMark is { } mark)
        {
            text.Append("FwMark = ").Append(mark == 0 ? "off" : "0x" + mark.ToString("x", CultureInfo.InvariantCulture)).Append('\n');
        }

        if (includeWgQuickKeys)
        {
            if (iface.Mtu is { } mtu)
            {
                text.Append("MTU = ").Append(mtu.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }

            if (iface.DnsServers.Count + iface.DnsSearchDomains.Count > 0)
            {
                text.Append("DNS = ").AppendJoin(", ", iface.DnsServers.Select(a => a.ToString()).Concat(iface.DnsSearchDomains)).Append('\n');
            }

            foreach (var (key, value) in iface.ExtraKeys)
            {
                text.Append(key).Append(" = ").Append(value).Append('\n');
            }
        }

        foreach (var peer in config.Peers)
        {
            text.Append("\n[Peer]\n");
            text.Append("PublicKey = ").Append(peer.PublicKey.ToBase64()).Append('\n');
            if (peer.PresharedKey is not null)
            {
                text.Append("PresharedKey = ").Append(peer.PresharedKey.ToBase64()).Append('\n');
            }

            if (peer.AllowedIps.Count > 0)
            {
                text.Append("AllowedIPs = ").AppendJoin(", ", peer.AllowedIps).Append('\n');
            }

            if (peer.Endpoint is not null)
            {
                text.Append("Endpoint = ").Append(peer.Endpoint).Append('\n');
            }

            if (peer.PersistentKeepalive is { } keepalive)
            {
                text.Append("PersistentKeepalive = ").Append(keepalive == 0 ? "off" : keepalive.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }

        return text.ToString();
    }
}
