using System.Globalization;

namespace CloudVpn.WireGuard.Interop;

/// <summary>Reads the effective capability set of this process from <c>/proc/self/status</c> (the <c>CapEff</c> line).</summary>
internal static class LinuxCapabilities
{
    /// <summary>CAP_NET_ADMIN: create TUN devices, configure interfaces, addresses and routes.</summary>
    public const int NetAdmin = 12;

    /// <summary>The effective set as a bit mask, or null when it cannot be read (not Linux, no procfs).</summary>
    public static ulong? ReadEffective(string statusPath = "/proc/self/status")
    {
        try
        {
            return ParseEffective(File.ReadAllText(statusPath));
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Finds <c>CapEff:\t&lt;hex&gt;</c> in the text of a status file; null when absent or malformed.</summary>
    public static ulong? ParseEffective(string statusText)
    {
        foreach (var line in statusText.Split('\n'))
        {
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
            {
                return ulong.TryParse(line.AsSpan(7).Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var mask) ? mask : null;
            }
        }

        return null;
    }

    /// <summary>True when <paramref name="capability"/> is in <paramref name="mask"/>.</summary>
    public static bool Has(ulong mask, int capability) => (mask & (1UL << capability)) != 0;
}
