using System.Globalization;
using Microsoft.Extensions.Logging;

namespace CloudVpn.WireGuard.Hosting;

/// <summary>How a desired sysctl value is compared with the current one.</summary>
public enum SysctlComparison
{
    /// <summary>The value must be exactly the desired one.</summary>
    Exact,

    /// <summary>A numeric value at least the desired one is kept (a larger buffer limit is never lowered).</summary>
    AtLeast,
}

/// <summary>What happened to one sysctl.</summary>
public enum SysctlOutcome
{
    /// <summary>The value already satisfied the setting; nothing was written.</summary>
    AlreadySet,

    /// <summary>The value was written and read back.</summary>
    Applied,

    /// <summary>The kernel or the container refused the write (read-only /proc/sys, missing capability).</summary>
    NotPermitted,

    /// <summary>The sysctl does not exist here (kernel without it, or not per network namespace).</summary>
    NotAvailable,

    /// <summary>The write was accepted but the value read back differs.</summary>
    Failed,
}

/// <summary>A sysctl the gateway wants.</summary>
/// <param name="Name">Dotted name, for example <c>net.ipv4.ip_forward</c>.</param>
/// <param name="Value">Desired value.</param>
/// <param name="Comparison">How the current value is judged.</param>
/// <param name="Why">What the gateway needs it for (shown when it cannot be applied).</param>
public sealed record SysctlSetting(string Name, string Value, SysctlComparison Comparison, string Why);

/// <summary>The result for one sysctl: every requested setting gets one, so nothing is skipped silently.</summary>
/// <param name="Name">Dotted name.</param>
/// <param name="Desired">Desired value.</param>
/// <param name="Previous">Value found before (null when unreadable).</param>
/// <param name="Current">Value after (null when unreadable).</param>
/// <param name="Outcome">What happened.</param>
/// <param name="Detail">Why, in words a user can act on.</param>
public sealed record SysctlResult(string Name, string Desired, string? Previous, string? Current, SysctlOutcome Outcome, string Detail)
{
    /// <summary>True when the setting is in effect.</summary>
    public bool IsSatisfied => Outcome is SysctlOutcome.AlreadySet or SysctlOutcome.Applied;
}

/// <summary>
/// Applies the kernel settings a VPN gateway needs (IP forwarding, socket buffer limits) through <c>/proc/sys</c>,
/// where allowed, and reports each one. In a container /proc/sys is usually read-only: the report then says to set
/// the value through the pod's <c>securityContext.sysctls</c> (namespaced ones) or on the node.
/// </summary>
public sealed partial class GatewaySysctls
{
    private readonly string _root;

    /// <summary>Creates the tuner over <paramref name="procSysRoot"/> (tests point it at a folder).</summary>
    public GatewaySysctls(string procSysRoot = "/proc/sys")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(procSysRoot);
        _root = procSysRoot;
    }

    /// <summary>
    /// What a gateway wants: forwarding for IPv4 and IPv6, and socket buffer limits of at least
    /// <paramref name="socketBufferBytes"/> so the tunnel's UDP sockets can hold bursts.
    /// </summary>
    public static IReadOnlyList<SysctlSetting> GatewayDefaults(int socketBufferBytes = 4 * 1024 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(socketBufferBytes);
        var buffer = socketBufferBytes.ToString(CultureInfo.InvariantCulture);
        return
        [
            new("net.ipv4.ip_forward", "1", SysctlComparison.Exact, "forward IPv4 packets between the tunnel and the cluster"),
            new("net.ipv6.conf.all.forwarding", "1", SysctlComparison.Exact, "forward IPv6 packets between the tunnel and the cluster"),
            new("net.core.rmem_max", buffer, SysctlComparison.AtLeast, "let the tunnel's UDP sockets use large receive buffers"),
            new("net.core.wmem_max", buffer, SysctlComparison.AtLeast, "let the tunnel's UDP sockets use large send buffers"),
        ];
    }

    /// <summary>Applies each setting and returns one result per setting, in order.</summary>
    public IReadOnlyList<SysctlResult> Apply(IEnumerable<SysctlSetting> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return [.. settings.Select(ApplyOne)];
    }

    /// <summary>Logs each result: satisfied ones at Information, the rest at Warning with what to do.</summary>
    public static void Log(ILogger logger, IEnumerable<SysctlResult> results)
    {
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(results);
        foreach (var r in results)
        {
            if (r.IsSatisfied)
            {
                LogSatisfied(logger, r.Name, r.Current ?? r.Desired, r.Outcome);
            }
            else
            {
                LogUnsatisfied(logger, r.Name, r.Desired, r.Current ?? "unknown", r.Outcome, r.Detail);
            }
        }
    }

    private SysctlResult ApplyOne(SysctlSetting setting)
    {
        ArgumentNullException.ThrowIfNull(setting);
        var path = PathOf(setting.Name);
        string previous;
        try
        {
            previous = Read(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return new(setting.Name, setting.Value, null, null, SysctlOutcome.NotAvailable,
                $"{path} does not exist here (kernel without it, or not settable per network namespace); needed to {setting.Why}; set it on the node");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(setting.Name, setting.Value, null, null, SysctlOutcome.NotPermitted, $"cannot read {path}: {e.Message}");
        }

        if (Satisfies(previous, setting))
        {
            return new(setting.Name, setting.Value, previous, previous, SysctlOutcome.AlreadySet, $"already {previous}");
        }

        try
        {
            File.WriteAllText(path, setting.Value + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(setting.Name, setting.Value, previous, previous, SysctlOutcome.NotPermitted,
                $"writing {path} was refused ({e.Message}); needed to {setting.Why}; set it through the pod's securityContext.sysctls (if namespaced and allowed) or on the node");
        }

        var current = Read(path);
        return Satisfies(current, setting)
            ? new(setting.Name, setting.Value, previous, current, SysctlOutcome.Applied, $"changed from {previous} to {current}")
            : new(setting.Name, setting.Value, previous, current, SysctlOutcome.Failed, $"wrote {setting.Value} but the kernel keeps {current}");
    }

    private string PathOf(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Contains('/', StringComparison.Ordinal) || name.Contains("..", StringComparison.Ordinal) || name.StartsWith('.') || name.EndsWith('.'))
        {
            throw new ArgumentException($"'{name}' is not a sysctl name (dotted, like net.ipv4.ip_forward).", nameof(name));
        }

        return Path.Combine(_root, name.Replace('.', '/'));
    }

    private static string Read(string path) => File.ReadAllText(path).Trim();

    private static bool Satisfies(string current, SysctlSetting setting) => setting.Comparison switch
    {
        SysctlComparison.AtLeast when long.TryParse(current, NumberStyles.Integer, CultureInfo.InvariantCulture, out var have)
            && long.TryParse(setting.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var want) => have >= want,
        _ => string.Equals(current, setting.Value, StringComparison.Ordinal),
    };

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "sysctl {Name} = {Value} ({Outcome})")]
    private static partial void LogSatisfied(ILogger logger, string name, string value, SysctlOutcome outcome);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "sysctl {Name} wanted {Desired}, is {Current} ({Outcome}): {Detail}")]
    private static partial void LogUnsatisfied(ILogger logger, string name, string desired, string current, SysctlOutcome outcome, string detail);
}
