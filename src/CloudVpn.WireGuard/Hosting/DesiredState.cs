using System.Globalization;
using System.Net;
using System.Net.Sockets;
using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>A <see cref="TunnelSpec"/> with its keys read from the key store and every field parsed and checked.</summary>
internal sealed class DesiredState : IDisposable
{
    private DesiredState(WireGuardSecretKey privateKey, WireGuardSecretKey? additionalPrivateKey, DeviceSpec device, IReadOnlyList<DesiredPeer> peers)
    {
        PrivateKey = privateKey;
        AdditionalPrivateKey = additionalPrivateKey;
        Device = device;
        Peers = peers;
        Addresses = EffectiveAddresses(device);
    }

    /// <summary>The interface addresses: <see cref="DeviceSpec.InterfaceAddresses"/> and the exact (/32, /128) <see cref="DeviceSpec.Addresses"/>.</summary>
    public IReadOnlySet<(IPAddress Address, int PrefixLength)> Addresses { get; }

    public WireGuardSecretKey PrivateKey { get; }

    /// <summary>The key also accepted during a rotation's overlap; null when none (or when the driver did not ask for it).</summary>
    public WireGuardSecretKey? AdditionalPrivateKey { get; }

    public DeviceSpec Device { get; }

    public IReadOnlyList<DesiredPeer> Peers { get; }

    /// <summary>Checks the spec (every problem listed at once), reads the keys and resolves endpoint host names.</summary>
    /// <exception cref="ArgumentException">The spec is invalid; the message names each field and its problem.</exception>
    /// <param name="spec">The spec.</param>
    /// <param name="keys">The key stores.</param>
    /// <param name="cancellationToken">Cancels the key reads.</param>
    /// <param name="withAdditionalKey">Read <see cref="DeviceSpec.AdditionalPrivateKey"/> too (drivers that can use it).</param>
    public static async ValueTask<DesiredState> ResolveAsync(TunnelSpec spec, IKeyStoreProvider keys, CancellationToken cancellationToken, bool withAdditionalKey = false)
    {
        var errors = new List<string>();
        var device = spec.Device;
        if (string.IsNullOrWhiteSpace(device.Name) || device.Name.Length > 15 || device.Name.Contains('/', StringComparison.Ordinal) || device.Name.Any(char.IsWhiteSpace))
        {
            errors.Add($"Device.Name: '{device.Name}' is not an interface name (1 to 15 characters, no '/' or white space)");
        }

        if (device.ListenPort is < 0 or > 65535)
        {
            errors.Add($"Device.ListenPort: {device.ListenPort} is outside 0..65535");
        }

        if (device.Mtu is < 576 or > 65535)
        {
            errors.Add($"Device.Mtu: {device.Mtu} is outside 576..65535");
        }

        for (var i = 0; i < device.Addresses.Count; i++)
        {
            var network = device.Addresses[i];
            var max = network.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
            if (network.PrefixLength < max - 1)
            {
                errors.Add($"Device.Addresses[{i}]: {network} is a network (IPNetwork drops the host part, so 10.8.0.1/24 arrives as 10.8.0.0/24); "
                    + "give the interface's own address in Device.InterfaceAddresses (InterfaceAddress.Parse(\"10.8.0.1/24\"))");
            }
        }

        var parsed = new List<(int Index, PeerSpec Spec, WireGuardPublicKey Key, IReadOnlyList<IPNetwork> AllowedIps, ushort Keepalive)>();
        var seen = new HashSet<WireGuardPublicKey>();
        for (var i = 0; i < spec.Peers.Count; i++)
        {
            var peer = spec.Peers[i];
            var field = $"Peers[{i}]";
            if (!WireGuardPublicKey.TryFromBase64(peer.PublicKey, out var key))
            {
                errors.Add($"{field}.PublicKey: not a WireGuard public key (44 characters of base64)");
                continue;
            }

            if (!seen.Add(key))
            {
                errors.Add($"{field}.PublicKey: {peer.PublicKey} appears more than once");
                continue;
            }

            var keepalive = peer.PersistentKeepalive ?? TimeSpan.Zero;
            if (keepalive < TimeSpan.Zero || keepalive.TotalSeconds > ushort.MaxValue || keepalive.Ticks % TimeSpan.TicksPerSecond != 0)
            {
                errors.Add($"{field}.PersistentKeepalive: {keepalive} is not a whole number of seconds in 0..65535");
            }

            if (peer.Endpoint is { } endpoint && !TrySplitEndpoint(endpoint, out _, out _))
            {
                errors.Add($"{field}.Endpoint: '{endpoint}' is not host:port or [IPv6]:port");
            }

            var allowed = peer.AllowedIps.Select(Normalize).Distinct().ToArray();
            parsed.Add((i, peer, key, allowed, (ushort)Math.Clamp(keepalive.TotalSeconds, 0, ushort.MaxValue)));
        }

        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid tunnel spec for '{device.Name}': {string.Join("; ", errors)}.", nameof(spec));
        }

        var privateKey = await ReadKeyAsync(keys, device.PrivateKey, "Device.PrivateKey", cancellationToken);
        WireGuardSecretKey? additionalKey = null;
        var peers = new List<DesiredPeer>();
        try
        {
            if (withAdditionalKey && device.AdditionalPrivateKey is { } additionalRef)
            {
                additionalKey = await ReadKeyAsync(keys, additionalRef, "Device.AdditionalPrivateKey", cancellationToken);
            }

            foreach (var (index, peer, key, allowed, keepalive) in parsed)
            {
                var psk = peer.PresharedKey is { } pskRef ? await ReadKeyAsync(keys, pskRef, $"Peers[{index}].PresharedKey", cancellationToken) : null;
                IPEndPoint? endpoint = null;
                if (peer.Endpoint is { } text)
                {
                    try
                    {
                        endpoint = await ResolveEndpointAsync(text, cancellationToken);
                    }
                    catch (Exception ex) when (ex is SocketException or ArgumentException)
                    {
                        psk?.Dispose();
                        throw new ArgumentException($"Peers[{index}].Endpoint: '{text}' cannot be resolved: {ex.Message}", nameof(spec), ex);
                    }
                }

                peers.Add(new DesiredPeer(key, peer.DisplayName, allowed, endpoint, keepalive, psk));
            }
        }
        catch
        {
            privateKey.Dispose();
            additionalKey?.Dispose();
            foreach (var p in peers)
            {
                p.PresharedKey?.Dispose();
            }

            throw;
        }

        return new DesiredState(privateKey, additionalKey, device, peers);
    }

    public void Dispose()
    {
        PrivateKey.Dispose();
        AdditionalPrivateKey?.Dispose();
        foreach (var peer in Peers)
        {
            peer.PresharedKey?.Dispose();
        }
    }

    private static HashSet<(IPAddress Address, int PrefixLength)> EffectiveAddresses(DeviceSpec device)
    {
        var result = device.InterfaceAddresses.Select(a => (a.Address, a.PrefixLength)).ToHashSet();
        foreach (var network in device.Addresses)
        {
            result.Add((network.BaseAddress, network.PrefixLength));
        }

        return result;
    }

    /// <summary>Clears host bits, as wg does with allowed IPs (10.0.0.1/24 becomes 10.0.0.0/24).</summary>
    public static IPNetwork Normalize(IPNetwork network)
    {
        Span<byte> bytes = stackalloc byte[16];
        network.BaseAddress.TryWriteBytes(bytes, out var length);
        bytes = bytes[..length];
        for (var bit = network.PrefixLength; bit < length * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return new IPNetwork(new IPAddress(bytes), network.PrefixLength);
    }

    /// <summary>Splits <c>host:port</c> or <c>[v6]:port</c>.</summary>
    public static bool TrySplitEndpoint(string text, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            return false;
        }

        host = text[..colon];
        if (host.StartsWith('['))
        {
            if (!host.EndsWith(']'))
            {
                return false;
            }

            host = host[1..^1];
            return IPAddress.TryParse(host, out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6;
        }

        return host.Length > 0 && !host.Contains(':', StringComparison.Ordinal);
    }

    private static async ValueTask<IPEndPoint> ResolveEndpointAsync(string text, CancellationToken cancellationToken)
    {
        TrySplitEndpoint(text, out var host, out var port);
        if (IPAddress.TryParse(host, out var address))
        {
            return new IPEndPoint(address, port);
        }

        var addresses = await Dns.GetHostAddressesAsync(host, cancellationToken);
        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new ArgumentException($"host '{host}' has no address");
        return new IPEndPoint(chosen, port);
    }

    /// <summary>Reads a 32-byte key stored raw or as base64 text (as <c>wg genkey</c> writes it).</summary>
    private static async ValueTask<WireGuardSecretKey> ReadKeyAsync(IKeyStoreProvider keys, KeyReference reference, string field, CancellationToken cancellationToken)
    {
        StoredSecret secret;
        try
        {
            secret = await keys.ResolveAsync(reference, cancellationToken);
        }
        catch (Exception ex) when (ex is KeyStoreException or InvalidOperationException)
        {
            throw new ArgumentException($"{field} ({reference}): {ex.Message}", ex);
        }

        using (secret)
        {
            var value = secret.Value;
            if (value.Length == WireGuardSecretKey.Length)
            {
                return new WireGuardSecretKey(value);
            }

            var chars = new char[value.Length];
            try
            {
                for (var i = 0; i < value.Length; i++)
                {
                    chars[i] = (char)value[i];
                }

                return WireGuardSecretKey.FromBase64(chars);
            }
            catch (FormatException)
            {
                throw new ArgumentException($"{field} ({reference}): the stored value is neither 32 raw bytes nor the base64 of 32 bytes");
            }
            finally
            {
                Array.Clear(chars);
            }
        }
    }
}

/// <summary>One peer as the spec wants it, parsed.</summary>
internal sealed record DesiredPeer(
    WireGuardPublicKey PublicKey,
    string DisplayName,
    IReadOnlyList<IPNetwork> AllowedIps,
    IPEndPoint? Endpoint,
    ushort PersistentKeepalive,
    WireGuardSecretKey? PresharedKey)
{
    /// <summary>True when <paramref name="other"/> has the same settings (allowed IPs compared as sets, keys in fixed time).</summary>
    public bool SameSettings(DesiredPeer other) =>
        Equals(Endpoint, other.Endpoint)
        && PersistentKeepalive == other.PersistentKeepalive
        && SameAllowedIps(other)
        && (PresharedKey is null ? other.PresharedKey is null : PresharedKey.Equals(other.PresharedKey));

    public bool SameAllowedIps(DesiredPeer other) => AllowedIps.ToHashSet().SetEquals(other.AllowedIps);
}
