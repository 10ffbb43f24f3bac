using CloudVpn.OpenVpn.Pki;
using Microsoft.Extensions.Options;

namespace CloudVpn.OpenVpn;

/// <summary>Settings of the OpenVPN driver (configuration section <c>CloudVpn:OpenVpn</c>).</summary>
public sealed class OpenVpnOptions
{
    /// <summary>The configuration section these options bind to by convention.</summary>
    public const string SectionName = "CloudVpn:OpenVpn";

    /// <summary>Path of the openvpn binary; null searches PATH (and /usr/sbin, /sbin).</summary>
    public string? BinaryPath { get; set; }

    /// <summary>Parent of the per-tunnel runtime folders (0700, on tmpfs in a pod); must be absolute.</summary>
    public string RuntimeDirectory { get; set; } = "/run/cloudvpn/openvpn";

    /// <summary>How long opening a tunnel may wait for openvpn to finish initialising.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a clean stop (SIGTERM) may take before the process is killed.</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>First restart delay after a crash; doubles per crash in a row up to <see cref="MaxRestartDelay"/>.</summary>
    public TimeSpan RestartDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Cap of the restart delay.</summary>
    public TimeSpan MaxRestartDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A process that ran at least this long before dying is restarted at once (the backoff starts over).</summary>
    public TimeSpan StableAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the management interface is polled for client connects and disconnects.</summary>
    public TimeSpan StatusPollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>PKI names and lifetimes.</summary>
    public OpenVpnPkiOptions Pki { get; set; } = new();
}

/// <summary>Validates <see cref="OpenVpnOptions"/>, listing every problem at once.</summary>
internal sealed class OpenVpnOptionsValidator : IValidateOptions<OpenVpnOptions>
{
    public ValidateOptionsResult Validate(string? name, OpenVpnOptions options)
    {
        const string p = OpenVpnOptions.SectionName;
        var errors = new List<string>();
        if (options.BinaryPath is { } binary && !Path.IsPathFullyQualified(binary))
        {
            errors.Add($"{p}:{nameof(options.BinaryPath)}: '{binary}' is not an absolute path.");
        }

        if (string.IsNullOrWhiteSpace(options.RuntimeDirectory) || !Path.IsPathFullyQualified(options.RuntimeDirectory))
        {
            errors.Add($"{p}:{nameof(options.RuntimeDirectory)}: '{options.RuntimeDirectory}' is not an absolute path.");
        }

        Positive(options.StartTimeout, nameof(options.StartTimeout));
        Positive(options.StopTimeout, nameof(options.StopTimeout));
        Positive(options.RestartDelay, nameof(options.RestartDelay));
        Positive(options.StatusPollInterval, nameof(options.StatusPollInterval));
        if (options.MaxRestartDelay < options.RestartDelay)
        {
            errors.Add($"{p}:{nameof(options.MaxRestartDelay)}: {options.MaxRestartDelay} is below {nameof(options.RestartDelay)} ({options.RestartDelay}).");
        }

        if (options.StableAfter < TimeSpan.Zero)
        {
            errors.Add($"{p}:{nameof(options.StableAfter)}: must not be negative.");
        }

        var pki = options.Pki;
        if (pki is null)
        {
            errors.Add($"{p}:{nameof(options.Pki)}: is null.");
        }
        else
        {
            if (string.IsNullOrWhiteSpace(pki.CaCommonName) || pki.CaCommonName.Length > 64 || pki.CaCommonName.IndexOfAny([',', '=', '+', '"', '\\', '<', '>', ';']) >= 0)
            {
                errors.Add($"{p}:Pki:{nameof(pki.CaCommonName)}: '{pki.CaCommonName}' must be 1-64 characters without , = + \" \\ < > ;.");
            }

            if (pki.CertificateLifetime <= TimeSpan.Zero || pki.CertificateLifetime > pki.CaLifetime)
            {
                errors.Add($"{p}:Pki:{nameof(pki.CertificateLifetime)}: {pki.CertificateLifetime} must be positive and at most {nameof(pki.CaLifetime)} ({pki.CaLifetime}).");
            }

            if (pki.CrlRefreshBefore <= TimeSpan.Zero || pki.CrlRefreshBefore >= pki.CrlLifetime)
            {
                errors.Add($"{p}:Pki:{nameof(pki.CrlRefreshBefore)}: {pki.CrlRefreshBefore} must be positive and below {nameof(pki.CrlLifetime)} ({pki.CrlLifetime}).");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);

        void Positive(TimeSpan value, string field)
        {
            if (value <= TimeSpan.Zero)
            {
                errors.Add($"{p}:{field}: {value} must be positive.");
            }
        }
    }
}
