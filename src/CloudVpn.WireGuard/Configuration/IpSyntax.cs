using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace CloudVpn.WireGuard.Configuration;

/// <summary>
/// Strict text forms of addresses, prefixes and endpoints as wg and wireguard-go accept them: dotted-quad IPv4 only
/// (no "10" or "0x0a" shorthands that <see cref="IPAddress.TryParse(string?, out IPAddress?)"/> allows), IPv6 without a
/// zone in prefixes, <c>[v6]:port</c> endpoints.
/// </summary>
internal static class IpSyntax
{
    public static bool TryParseAddress(ReadOnlySpan<char> text, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.IsEmpty || text.Contains('%'))
        {
            return false;
        }

        if (text.Contains(':'))
        {
            if (!IPAddress.TryParse(text, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
            {
                return false;
            }

            address = v6;
            return true;
        }

        // Exactly four decimal parts 0..255, no leading zeros beyond a single 0 (Go's netip rule).
        Span<byte> bytes = stackalloc byte[4];
        var part = 0;
        foreach (var range in text.Split('.'))
        {
            var piece = text[range];
            if (part == 4 || piece.IsEmpty || piece.Length > 3 || (piece.Length > 1 && piece[0] == '0'))
            {
                return false;
            }

            foreach (var c in piece)
            {
                if (c is < '0' or > '9')
                {
                    return false;
                }
            }

            var value = int.Parse(piece, NumberStyles.None, CultureInfo.InvariantCulture);
            if (value > 255)
            {
                return false;
            }

            bytes[part++] = (byte)value;
        }

        if (part != 4)
        {
            return false;
        }

        address = new IPAddress(bytes);
        return true;
    }

    /// <summary>Parses <c>address/length</c> keeping the host bits (an interface address); the length is required.</summary>
    public static bool TryParsePrefix(ReadOnlySpan<char> text, out IPAddress address, out int prefixLength, out string? problem)
    {
        address = IPAddress.None;
        prefixLength = 0;
        var slash = text.IndexOf('/');
        if (slash < 0)
        {
            problem = "expected address/prefix-length";
            return false;
        }

        if (!TryParseAddress(text[..slash], out address))
        {
            problem = $"'{text[..slash]}' is not an IPv4 or IPv6 address";
            return false;
        }

        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var lengthText = text[(slash + 1)..];
        if (lengthText.IsEmpty || lengthText.Length > 3 || !int.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out prefixLength) || prefixLength > max)
        {
            problem = $"prefix length '{lengthText}' is not a number from 0 to {max}";
            return false;
        }

        problem = null;
        return true;
    }

    /// <summary>Parses <c>address/length</c> and clears the host bits, as wg does for allowed IPs.</summary>
    public static bool TryParseNetwork(ReadOnlySpan<char> text, out IPNetwork network, out string? problem)
    {
        network = default;
        if (!TryParsePrefix(text, out var address, out var length, out problem))
        {
            return false;
        }

        network = ToNetwork(address, length);
        return true;
    }

    /// <summary>The network of <paramref name="address"/>/<paramref name="prefixLength"/> with host bits cleared.</summary>
    public static IPNetwork ToNetwork(IPAddress address, int prefixLength)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out var written))
        {
            throw new ArgumentException("Unsupported address.", nameof(address));
        }

        bytes = bytes[..written];
        for (var bit = prefixLength; bit < written * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return new IPNetwork(new IPAddress(bytes), prefixLength);
    }

    /// <summary>Parses <c>a.b.c.d:port</c> or <c>[v6]:port</c> (numeric addresses only).</summary>
    public static bool TryParseEndPoint(ReadOnlySpan<char> text, out IPEndPoint endPoint)
    {
        endPoint = new IPEndPoint(IPAddress.None, 0);
        if (!TrySplitHostPort(text, out var host, out var port, out var bracketed))
        {
            return false;
        }

        IPAddress? address;
        if (bracketed)
        {
            // A zone is allowed in an endpoint ([fe80::1%eth0]:51820): let IPAddress resolve it.
            if (!IPAddress.TryParse(host, out address) || address.AddressFamily != AddressFamily.InterNetworkV6)
            {
                return false;
            }
        }
        else if (!TryParseAddress(host, out address) || address.AddressFamily != AddressFamily.InterNetwork)
        {
            return false;
        }

        endPoint = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>Splits <c>host:port</c> or <c>[host]:port</c>; the host may be a name.</summary>
    public static bool TrySplitHostPort(ReadOnlySpan<char> text, out ReadOnlySpan<char> host, out ushort port, out bool bracketed)
    {
        host = default;
        port = 0;
        bracketed = false;
        int colon;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 2 || close + 1 >= text.Length || text[close + 1] != ':')
            {
                return false;
            }

            host = text[1..close];
            colon = close + 1;
            bracketed = true;
        }
        else
        {
            colon = text.LastIndexOf(':');
            if (colon <= 0 || text[..colon].Contains(':'))
            {
                return false;
            }

            host = text[..colon];
        }

        var portText = text[(colon + 1)..];
        return !portText.IsEmpty && portText.Length <= 5 && ushort.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port);
    }

    /// <summary><c>a.b.c.d:port</c> or <c>[v6]:port</c>.</summary>
    public static string FormatEndPoint(IPEndPoint endPoint) =>
        endPoint.AddressFamily == AddressFamily.InterNetworkV6
            ? $"[{endPoint.Address}]:{endPoint.Port.ToString(CultureInfo.InvariantCulture)}"
            : $"{endPoint.Address}:{endPoint.Port.ToString(CultureInfo.InvariantCulture)}";
}
