using System.Globalization;
using System.Net;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using CloudVpn.WireGuard.Configuration;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// The text of the userspace API (wireguard.com/xplatform): <c>get=1</c> answers and <c>set=1</c> requests, both
/// directions, in UTF-8 bytes. Key values are parsed and written straight between bytes and key objects, never
/// through strings.
/// </summary>
internal static class UapiProtocol
{
    private const int HexKeyLength = 64;

    private static readonly byte[] NoKey = new byte[WireGuardSecretKey.Length];

    /// <summary>Writes the answer to <c>get=1</c>, including the final <c>errno=0</c> and blank line.</summary>
    public static void WriteGetResponse(UapiDeviceState state, SecretBuffer output)
    {
        if (state.PrivateKey is { IsZero: false } privateKey)
        {
            WriteKey(output, "private_key="u8, privateKey.Bytes);
        }

        if (state.ListenPort != 0)
        {
            WriteLine(output, "listen_port=", state.ListenPort.ToString(CultureInfo.InvariantCulture));
        }

        if (state.FirewallMark != 0)
        {
            WriteLine(output, "fwmark=", state.FirewallMark.ToString(CultureInfo.InvariantCulture));
        }

        foreach (var peer in state.Peers)
        {
            WriteKey(output, "public_key="u8, peer.PublicKey.Bytes);
            WriteKey(output, "preshared_key="u8, peer.PresharedKey is null ? NoKey : peer.PresharedKey.Bytes);
            WriteLine(output, "protocol_version=", peer.ProtocolVersion.ToString(CultureInfo.InvariantCulture));
            if (peer.Endpoint is not null)
            {
                WriteLine(output, "endpoint=", IpSyntax.FormatEndPoint(peer.Endpoint));
            }

            long seconds = 0, nanoseconds = 0;
            if (peer.LastHandshake is { } handshake)
            {
                var ticks = handshake.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
                seconds = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out var remainder);
                nanoseconds = remainder * TimeSpan.NanosecondsPerTick;
            }

            WriteLine(output, "last_handshake_time_sec=", seconds.ToString(CultureInfo.InvariantCulture));
            WriteLine(output, "last_handshake_time_nsec=", nanoseconds.ToString(CultureInfo.InvariantCulture));
            WriteLine(output, "tx_bytes=", peer.TransmittedBytes.ToString(CultureInfo.InvariantCulture));
            WriteLine(output, "rx_bytes=", peer.ReceivedBytes.ToString(CultureInfo.InvariantCulture));
            WriteLine(output, "persistent_keepalive_interval=", peer.PersistentKeepaliveInterval.ToString(CultureInfo.InvariantCulture));
            foreach (var network in peer.AllowedIps)
            {
                WriteLine(output, "allowed_ip=", network.ToString());
            }
        }

        output.Write("errno=0\n\n"u8);
    }

    /// <summary>Writes the errno answer of a request: <c>errno=0</c> or <c>errno=-N</c> as wireguard-go does.</summary>
    public static void WriteErrno(SecretBuffer output, int errno) =>
        WriteLine(output, "errno=", errno == 0 ? "0" : (-errno).ToString(CultureInfo.InvariantCulture), terminator: "\n\n");

    /// <summary>
    /// Parses the lines of a <c>set=1</c> request after the <c>set=1</c> line, up to (not including) the blank line.
    /// </summary>
    /// <exception cref="UapiException">A line is malformed (EPROTO) or a key or value is invalid (EINVAL).</exception>
    public static UapiSetRequest ParseSetRequest(ReadOnlySpan<byte> body)
    {
        WireGuardSecretKey? privateKey = null;
        ushort? listenPort = null;
        uint? firewallMark = null;
        var replacePeers = false;
        var peers = new List<UapiPeerUpdate>();
        PeerBuilder? peer = null;
        var lineNumber = 1; // line 1 is "set=1"
        Span<byte> publicKeyBytes = stackalloc byte[WireGuardPublicKey.Length];
        try
        {
            while (!body.IsEmpty)
            {
                lineNumber++;
                var newline = body.IndexOf((byte)'\n');
                var line = newline < 0 ? body : body[..newline];
                body = newline < 0 ? default : body[(newline + 1)..];
                var equals = line.IndexOf((byte)'=');
                if (equals < 0)
                {
                    throw new UapiException(UapiErrno.Protocol, $"line {lineNumber}: expected key=value");
                }

                var key = line[..equals];
                var value = line[(equals + 1)..];
                if (key.SequenceEqual("public_key"u8))
                {
                    if (peer is not null)
                    {
                        peers.Add(peer.Build());
                    }

                    peer = new PeerBuilder(new WireGuardPublicKey(ParseKeyBytes(value, lineNumber, "public_key", publicKeyBytes)));
                    continue;
                }

                if (peer is null)
                {
                    if (key.SequenceEqual("private_key"u8))
                    {
                        privateKey?.Dispose();
                        privateKey = ParseSecret(value, lineNumber, "private_key");
                    }
                    else if (key.SequenceEqual("listen_port"u8))
                    {
                        listenPort = ParseNumber<ushort>(value, lineNumber, "listen_port");
                    }
                    else if (key.SequenceEqual("fwmark"u8))
                    {
                        firewallMark = ParseNumber<uint>(value, lineNumber, "fwmark");
                    }
                    else if (key.SequenceEqual("replace_peers"u8))
                    {
                        RequireTrue(value, lineNumber, "replace_peers");
                        replacePeers = true;
                    }
                    else
                    {
                        throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: '{Text(key)}' is not a device key");
                    }

                    continue;
                }

                if (key.SequenceEqual("remove"u8))
                {
                    RequireTrue(value, lineNumber, "remove");
                    peer.Remove = true;
                }
                else if (key.SequenceEqual("update_only"u8))
                {
                    RequireTrue(value, lineNumber, "update_only");
                    peer.UpdateOnly = true;
                }
                else if (key.SequenceEqual("preshared_key"u8))
                {
                    peer.PresharedKey?.Dispose();
                    peer.PresharedKey = ParseSecret(value, lineNumber, "preshared_key");
                }
                else if (key.SequenceEqual("endpoint"u8))
                {
                    if (!IpSyntax.TryParseEndPoint(Text(value), out var endPoint))
                    {
                        throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: endpoint: '{Text(value)}' is not an IPv4 address:port or [IPv6 address]:port");
                    }

                    peer.Endpoint = endPoint;
                }
                else if (key.SequenceEqual("persistent_keepalive_interval"u8))
                {
                    peer.PersistentKeepaliveInterval = ParseNumber<ushort>(value, lineNumber, "persistent_keepalive_interval");
                }
                else if (key.SequenceEqual("replace_allowed_ips"u8))
                {
                    RequireTrue(value, lineNumber, "replace_allowed_ips");
                    peer.ReplaceAllowedIps = true;
                    peer.AllowedIps.Clear();
                }
                else if (key.SequenceEqual("allowed_ip"u8))
                {
                    if (!IpSyntax.TryParseNetwork(Text(value), out var network, out var problem))
                    {
                        throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: allowed_ip: {problem}");
                    }

                    peer.AllowedIps.Add(network);
                }
                else if (key.SequenceEqual("protocol_version"u8))
                {
                    if (!value.SequenceEqual("1"u8))
                    {
                        throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: protocol_version: only version 1 exists, not '{Text(value)}'");
                    }
                }
                else
                {
                    throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: '{Text(key)}' is not a peer key");
                }
            }

            if (peer is not null)
            {
                peers.Add(peer.Build());
                peer = null;
            }

            return new UapiSetRequest
            {
                PrivateKey = privateKey,
                ListenPort = listenPort,
                FirewallMark = firewallMark,
                ReplacePeers = replacePeers,
                Peers = peers,
            };
        }
        catch
        {
            privateKey?.Dispose();
            peer?.PresharedKey?.Dispose();
            foreach (var built in peers)
            {
                built.PresharedKey?.Dispose();
            }

            throw;
        }
    }

    /// <summary>Writes a complete <c>set=1</c> request, blank line included (what a client such as wg sends).</summary>
    public static void WriteSetRequest(UapiSetRequest request, SecretBuffer output)
    {
        output.Write("set=1\n"u8);
        if (request.PrivateKey is not null)
        {
            WriteKey(output, "private_key="u8, request.PrivateKey.Bytes);
        }

        if (request.ListenPort is { } port)
        {
            WriteLine(output, "listen_port=", port.ToString(CultureInfo.InvariantCulture));
        }

        if (request.FirewallMark is { } mark)
        {
            WriteLine(output, "fwmark=", mark.ToString(CultureInfo.InvariantCulture));
        }

        if (request.ReplacePeers)
        {
            output.Write("replace_peers=true\n"u8);
        }

        foreach (var peer in request.Peers)
        {
            WriteKey(output, "public_key="u8, peer.PublicKey.Bytes);
            if (peer.Remove)
            {
                output.Write("remove=true\n"u8);
                continue;
            }

            if (peer.UpdateOnly)
            {
                output.Write("update_only=true\n"u8);
            }

            if (peer.PresharedKey is not null)
            {
                WriteKey(output, "preshared_key="u8, peer.PresharedKey.Bytes);
            }

            if (peer.Endpoint is not null)
            {
                WriteLine(output, "endpoint=", IpSyntax.FormatEndPoint(peer.Endpoint));
            }

            if (peer.PersistentKeepaliveInterval is { } keepalive)
            {
                WriteLine(output, "persistent_keepalive_interval=", keepalive.ToString(CultureInfo.InvariantCulture));
            }

            if (peer.ReplaceAllowedIps)
            {
                output.Write("replace_allowed_ips=true\n"u8);
            }

            foreach (var network in peer.AllowedIps)
            {
                WriteLine(output, "allowed_ip=", network.ToString());
            }
        }

        output.Write("\n"u8);
    }

    /// <summary>
    /// Parses a <c>get=1</c> answer (the lines before <c>errno=</c>, or the whole answer including it).
    /// </summary>
    /// <exception cref="UapiException">The answer carries a non-zero errno, or a line is malformed (EPROTO).</exception>
    public static UapiDeviceState ParseGetResponse(ReadOnlySpan<byte> text)
    {
        WireGuardSecretKey? privateKey = null;
        ushort listenPort = 0;
        uint firewallMark = 0;
        var peers = new List<UapiPeerState>();
        PeerStateBuilder? peer = null;
        var lineNumber = 0;
        Span<byte> publicKeyBytes = stackalloc byte[WireGuardPublicKey.Length];
        try
        {
            while (!text.IsEmpty)
            {
                lineNumber++;
                var newline = text.IndexOf((byte)'\n');
                var line = newline < 0 ? text : text[..newline];
                text = newline < 0 ? default : text[(newline + 1)..];
                if (line.IsEmpty)
                {
                    break;
                }

                var equals = line.IndexOf((byte)'=');
                if (equals < 0)
                {
                    throw new UapiException(UapiErrno.Protocol, $"line {lineNumber}: expected key=value");
                }

                var key = line[..equals];
                var value = line[(equals + 1)..];
                if (key.SequenceEqual("errno"u8))
                {
                    var errno = ParseSigned(value, lineNumber);
                    if (errno != 0)
                    {
                        throw new UapiException((int)Math.Min(Math.Abs(errno), int.MaxValue), $"the device answered errno={errno}");
                    }

                    break;
                }

                if (key.SequenceEqual("public_key"u8))
                {
                    if (peer is not null)
                    {
                        peers.Add(peer.Build());
                    }

                    peer = new PeerStateBuilder(new WireGuardPublicKey(ParseKeyBytes(value, lineNumber, "public_key", publicKeyBytes)));
                }
                else if (peer is null)
                {
                    if (key.SequenceEqual("private_key"u8))
                    {
                        privateKey?.Dispose();
                        privateKey = ParseSecret(value, lineNumber, "private_key");
                    }
                    else if (key.SequenceEqual("listen_port"u8))
                    {
                        listenPort = ParseNumber<ushort>(value, lineNumber, "listen_port");
                    }
                    else if (key.SequenceEqual("fwmark"u8))
                    {
                        firewallMark = ParseNumber<uint>(value, lineNumber, "fwmark");
                    }

                    // Unknown device keys are skipped, as wg does, so newer devices stay readable.
                }
                else if (key.SequenceEqual("preshared_key"u8))
                {
                    var psk = ParseSecret(value, lineNumber, "preshared_key");
                    if (psk.IsZero)
                    {
                        psk.Dispose();
                    }
                    else
                    {
                        peer.PresharedKey?.Dispose();
                        peer.PresharedKey = psk;
                    }
                }
                else if (key.SequenceEqual("endpoint"u8))
                {
                    if (!IpSyntax.TryParseEndPoint(Text(value), out var endPoint))
                    {
                        throw new UapiException(UapiErrno.Protocol, $"line {lineNumber}: endpoint: '{Text(value)}' is not an address:port");
                    }

                    peer.Endpoint = endPoint;
                }
                else if (key.SequenceEqual("last_handshake_time_sec"u8))
                {
                    peer.HandshakeSeconds = ParseNumber<long>(value, lineNumber, "last_handshake_time_sec");
                }
                else if (key.SequenceEqual("last_handshake_time_nsec"u8))
                {
                    peer.HandshakeNanoseconds = ParseNumber<long>(value, lineNumber, "last_handshake_time_nsec");
                }
                else if (key.SequenceEqual("tx_bytes"u8))
                {
                    peer.TransmittedBytes = ParseNumber<ulong>(value, lineNumber, "tx_bytes");
                }
                else if (key.SequenceEqual("rx_bytes"u8))
                {
                    peer.ReceivedBytes = ParseNumber<ulong>(value, lineNumber, "rx_bytes");
                }
                else if (key.SequenceEqual("persistent_keepalive_interval"u8))
                {
                    peer.PersistentKeepaliveInterval = ParseNumber<ushort>(value, lineNumber, "persistent_keepalive_interval");
                }
                else if (key.SequenceEqual("allowed_ip"u8))
                {
                    if (!IpSyntax.TryParseNetwork(Text(value), out var network, out var problem))
                    {
                        throw new UapiException(UapiErrno.Protocol, $"line {lineNumber}: allowed_ip: {problem}");
                    }

                    peer.AllowedIps.Add(network);
                }
                else if (key.SequenceEqual("protocol_version"u8))
                {
                    peer.ProtocolVersion = ParseNumber<int>(value, lineNumber, "protocol_version");
                }
            }

            if (peer is not null)
            {
                peers.Add(peer.Build());
                peer = null;
            }

            return new UapiDeviceState { PrivateKey = privateKey, ListenPort = listenPort, FirewallMark = firewallMark, Peers = peers };
        }
        catch
        {
            privateKey?.Dispose();
            peer?.PresharedKey?.Dispose();
            foreach (var built in peers)
            {
                built.PresharedKey?.Dispose();
            }

            throw;
        }
    }

    private static void WriteKey(SecretBuffer output, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> key)
    {
        output.Write(prefix);
        var span = output.GetSpan(HexKeyLength + 1);
        for (var i = 0; i < key.Length; i++)
        {
            span[2 * i] = HexDigit(key[i] >> 4);
            span[(2 * i) + 1] = HexDigit(key[i] & 0xf);
        }

        span[HexKeyLength] = (byte)'\n';
        output.Advance(HexKeyLength + 1);
    }

    private static byte HexDigit(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);

    private static void WriteLine(SecretBuffer output, string prefix, string value, string terminator = "\n")
    {
        var length = prefix.Length + value.Length + terminator.Length;
        var span = output.GetSpan(length);
        var written = Encoding.UTF8.GetBytes(prefix, span);
        written += Encoding.UTF8.GetBytes(value, span[written..]);
        written += Encoding.UTF8.GetBytes(terminator, span[written..]);
        output.Advance(written);
    }

    private static WireGuardSecretKey ParseSecret(ReadOnlySpan<byte> value, int lineNumber, string key)
    {
        Span<byte> bytes = stackalloc byte[WireGuardSecretKey.Length];
        try
        {
            return new WireGuardSecretKey(ParseKeyBytes(value, lineNumber, key, bytes));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private static Span<byte> ParseKeyBytes(ReadOnlySpan<byte> value, int lineNumber, string key, Span<byte> destination)
    {
        if (value.Length != HexKeyLength)
        {
            throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: {key}: expected 64 hexadecimal characters, got {value.Length} characters");
        }

        for (var i = 0; i < destination.Length; i++)
        {
            var high = HexValue(value[2 * i]);
            var low = HexValue(value[(2 * i) + 1]);
            if ((high | low) < 0)
            {
                throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: {key}: not a hexadecimal key");
            }

            destination[i] = (byte)((high << 4) | low);
        }

        return destination;
    }

    private static int HexValue(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        _ => -1,
    };

    private static T ParseNumber<T>(ReadOnlySpan<byte> value, int lineNumber, string key)
        where T : IBinaryInteger<T>, IMinMaxValue<T>
    {
        if (value.IsEmpty || value.Length > 20 || !T.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: {key}: '{Text(value)}' is not a number from {T.MinValue} to {T.MaxValue}");
        }

        return number;
    }

    private static long ParseSigned(ReadOnlySpan<byte> value, int lineNumber)
    {
        if (!long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            throw new UapiException(UapiErrno.Protocol, $"line {lineNumber}: errno: '{Text(value)}' is not a number");
        }

        return number;
    }

    private static void RequireTrue(ReadOnlySpan<byte> value, int lineNumber, string key)
    {
        if (!value.SequenceEqual("true"u8))
        {
            throw new UapiException(UapiErrno.Invalid, $"line {lineNumber}: {key}: the only value is 'true', not '{Text(value)}'");
        }
    }

    // Only for non-secret values and keys (used in error messages and address parsing).
    private static string Text(ReadOnlySpan<byte> value) =>
        Encoding.UTF8.GetString(value.Length > 80 ? value[..80] : value);

    private sealed class PeerBuilder(WireGuardPublicKey publicKey)
    {
        public bool Remove { get; set; }

        public bool UpdateOnly { get; set; }

        public WireGuardSecretKey? PresharedKey { get; set; }

        public IPEndPoint? Endpoint { get; set; }

        public ushort? PersistentKeepaliveInterval { get; set; }

        public bool ReplaceAllowedIps { get; set; }

        public List<IPNetwork> AllowedIps { get; } = [];

        public UapiPeerUpdate Build() => new()
        {
            PublicKey = publicKey,
            Remove = Remove,
            UpdateOnly = UpdateOnly,
            PresharedKey = PresharedKey,
            Endpoint = Endpoint,
            PersistentKeepaliveInterval = PersistentKeepaliveInterval,
            ReplaceAllowedIps = ReplaceAllowedIps,
            AllowedIps = AllowedIps.ToArray(),
        };
    }

    private sealed class PeerStateBuilder(WireGuardPublicKey publicKey)
    {
        public WireGuardSecretKey? PresharedKey { get; set; }

        public IPEndPoint? Endpoint { get; set; }

        public long HandshakeSeconds { get; set; }

        public long HandshakeNanoseconds { get; set; }

        public ulong TransmittedBytes { get; set; }

        public ulong ReceivedBytes { get; set; }

        public ushort PersistentKeepaliveInterval { get; set; }

        public int ProtocolVersion { get; set; } = 1;

        public List<IPNetwork> AllowedIps { get; } = [];

        public UapiPeerState Build() => new()
        {
            PublicKey = publicKey,
            PresharedKey = PresharedKey,
            Endpoint = Endpoint,
            LastHandshake = HandshakeSeconds == 0 && HandshakeNanoseconds == 0
                ? null
                : DateTimeOffset.UnixEpoch.AddTicks((HandshakeSeconds * TimeSpan.TicksPerSecond) + (HandshakeNanoseconds / TimeSpan.NanosecondsPerTick)),
            TransmittedBytes = TransmittedBytes,
            ReceivedBytes = ReceivedBytes,
            PersistentKeepaliveInterval = PersistentKeepaliveInterval,
            ProtocolVersion = ProtocolVersion,
            AllowedIps = AllowedIps.ToArray(),
        };
    }
}
