using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using CloudVpn.Tunnels;

namespace CloudVpn.OpenVpn;

/// <summary>Finds the openvpn binary, checks its version (2.5 or newer) and whether data-channel offload (DCO) is usable.</summary>
internal static partial class OpenVpnProbe
{
    public static readonly Version MinimumVersion = new(2, 5);

    /// <summary>The binary to run: the configured path, or openvpn found on PATH, /usr/sbin or /sbin; null when absent.</summary>
    public static string? FindBinary(string? configured)
    {
        if (configured is not null)
        {
            return File.Exists(configured) ? configured : null;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(["/usr/sbin", "/sbin", "/usr/local/sbin"]))
        {
            var candidate = Path.Combine(dir, "openvpn");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    public static async ValueTask<DriverProbeResult> ProbeAsync(string? configuredBinary, CancellationToken cancellationToken)
    {
        var binary = FindBinary(configuredBinary);
        if (binary is null)
        {
            return DriverProbeResult.Unavailable(configuredBinary is null
                ? "the 'openvpn' binary is not on PATH; install the openvpn package (2.5 or newer) or set CloudVpn:OpenVpn:BinaryPath."
                : $"CloudVpn:OpenVpn:BinaryPath: '{configuredBinary}' does not exist.");
        }

        string output;
        try
        {
            var info = new ProcessStartInfo(binary, "--version") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = Process.Start(info) ?? throw new InvalidOperationException("no process");
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                await process.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
            }
            catch (TimeoutException)
            {
                process.Kill();
                throw;
            }

            output = await stdout + await stderr;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or TimeoutException)
        {
            return DriverProbeResult.Unavailable($"'{binary} --version' could not run: {e.Message}");
        }

        var dcoModule = File.Exists("/sys/module/ovpn_dco_v2/version") || Directory.Exists("/sys/module/ovpn_dco_v2") || Directory.Exists("/sys/module/ovpn");
        return Evaluate(binary, output, dcoModule, File.Exists("/dev/net/tun"));
    }

    /// <summary>Decides from <c>openvpn --version</c> output and the machine facts; pure, for tests.</summary>
    public static DriverProbeResult Evaluate(string binary, string versionOutput, bool dcoModuleLoaded, bool tunDeviceExists)
    {
        var match = VersionPattern().Match(versionOutput);
        if (!match.Success)
        {
            return DriverProbeResult.Unavailable($"'{binary} --version' printed no 'OpenVPN x.y' version line; is it OpenVPN?");
        }

        var version = new Version(
            int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture),
            int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture),
            match.Groups[3].Success ? int.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture) : 0);
        var builtWithDco = versionOutput.Contains("[DCO]", StringComparison.Ordinal);
        var dco = !builtWithDco
            ? "unavailable: openvpn was built without DCO"
            : dcoModuleLoaded
                ? "available: kernel module ovpn-dco loaded"
                : "unavailable: kernel module ovpn-dco is not loaded (openvpn uses its userspace data channel)";
        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["binary"] = binary,
            ["version"] = version.ToString(3),
            ["dco"] = dco,
        };

        if (version < MinimumVersion)
        {
            return DriverProbeResult.Unavailable($"openvpn {version.ToString(3)} at {binary} is older than {MinimumVersion}; AEAD-only data-ciphers need 2.5 or newer.", details);
        }

        if (!tunDeviceExists)
        {
            return DriverProbeResult.Unavailable("/dev/net/tun is missing; the pod needs the TUN device (and NET_ADMIN) to create the openvpn interface.", details);
        }

        return DriverProbeResult.Available($"openvpn {version.ToString(3)} at {binary}; DCO {dco}", details);
    }

    [GeneratedRegex(@"^OpenVPN (\d+)\.(\d+)(?:\.(\d+))?", RegexOptions.Multiline)]
    private static partial Regex VersionPattern();
}
