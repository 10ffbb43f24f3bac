using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;

namespace CloudVpn.Tunnels;

/// <summary>
/// An address of a tunnel interface with its prefix length, for example <c>10.8.0.1/24</c>. Unlike
/// <see cref="IPNetwork"/>, which clears the host bits (10.8.0.1/24 becomes 10.8.0.0/24), it keeps the host address.
/// </summary>
/// <param name="Address">The interface's own address.</param>
/// <param name="PrefixLength">The prefix length of the connected network (0..32 for IPv4, 0..128 for IPv6).</param>
public readonly record struct InterfaceAddress(IPAddress Address, int PrefixLength)
{
    /// <summary>Parses <c>address/prefix</c> (or a bare address: /32 or /128).</summary>
    /// <exception cref="FormatException">Not an address with a valid prefix length.</exception>
    public static InterfaceAddress Parse(string text) =>
        TryParse(text, out var result) ? result : throw new FormatException($"'{text}' is not an interface address such as 10.8.0.1/24 or fd00::1/64.");

    /// <summary>Parses <c>address/prefix</c> without throwing.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out InterfaceAddress result)
    {
        result = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (!IPAddress.TryParse(slash < 0 ? text.Trim() : text[..slash].Trim(), out var address))
        {
            return false;
        }

        var max = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        var prefix = max;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > max))
        {
            return false;
        }

        result = new InterfaceAddress(address, prefix);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Address}/{PrefixLength.ToString(CultureInfo.InvariantCulture)}";
}
