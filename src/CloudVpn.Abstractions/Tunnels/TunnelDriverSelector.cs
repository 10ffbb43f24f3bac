using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.Tunnels;

/// <summary>Chooses the tunnel driver for a family or a driver name.</summary>
public interface ITunnelDriverSelector
{
    /// <summary>
    /// Picks a driver. A family (<c>wireguard</c>) gives the highest-priority driver of that family whose probe
    /// passes; a driver name forces that driver (and fails when its probe does not pass). Null uses
    /// <see cref="CloudVpnOptions.Driver"/>. The choice and its reason are logged.
    /// </summary>
    /// <exception cref="TunnelDriverUnavailableException">No driver fits; the message lists each one tried and why it was refused.</exception>
    ValueTask<DriverSelection> SelectAsync(string? nameOrFamily = null, CancellationToken cancellationToken = default);
}

/// <summary>A selected driver and why it was chosen.</summary>
/// <param name="Driver">The driver.</param>
/// <param name="Reason">Why this one, including why higher-priority ones were passed over.</param>
/// <param name="Probes">Every driver probed, with its result.</param>
public sealed record DriverSelection(ITunnelDriver Driver, string Reason, IReadOnlyList<(string Driver, DriverProbeResult Probe)> Probes);

/// <summary>Thrown when no driver can serve the request.</summary>
public sealed class TunnelDriverUnavailableException(string message) : Exception(message);

internal sealed partial class TunnelDriverSelector(
    IEnumerable<ITunnelDriver> drivers,
    IOptions<CloudVpnOptions> options,
    ILogger<TunnelDriverSelector> logger) : ITunnelDriverSelector
{
    private readonly ITunnelDriver[] _drivers = [.. drivers];

    public async ValueTask<DriverSelection> SelectAsync(string? nameOrFamily = null, CancellationToken cancellationToken = default)
    {
        var wanted = nameOrFamily ?? options.Value.Driver;
        var forced = _drivers.FirstOrDefault(d => string.Equals(d.Name, wanted, StringComparison.OrdinalIgnoreCase));
        if (forced is not null)
        {
            var probe = await forced.ProbeAsync(cancellationToken);
            if (!probe.IsAvailable)
            {
                throw new TunnelDriverUnavailableException($"Driver '{forced.Name}' was asked for by name but cannot run here: {probe.Reason}");
            }

            var reason = $"driver '{forced.Name}' forced by setting; probe: {probe.Reason}";
            LogSelected(logger, forced.Name, wanted, reason);
            return new DriverSelection(forced, reason, [(forced.Name, probe)]);
        }

        var candidates = _drivers
            .Where(d => string.Equals(d.Family, wanted, StringComparison.OrdinalIgnoreCase))
            .OrderByDescending(d => d.Priority)
            .ToArray();
        if (candidates.Length == 0)
        {
            var known = _drivers.Length == 0 ? "none (add a backend such as AddWireGuard())" : string.Join(", ", _drivers.Select(d => $"{d.Name} ({d.Family})"));
            throw new TunnelDriverUnavailableException($"No tunnel driver is registered for '{wanted}'; registered drivers: {known}.");
        }

        var probes = new List<(string, DriverProbeResult)>();
        var passedOver = new List<string>();
        foreach (var candidate in candidates)
        {
            var probe = await candidate.ProbeAsync(cancellationToken);
            probes.Add((candidate.Name, probe));
            if (probe.IsAvailable)
            {
                var reason = passedOver.Count == 0
                    ? $"'{candidate.Name}' is the preferred '{wanted}' driver and its probe passed: {probe.Reason}"
                    : $"'{candidate.Name}' chosen for '{wanted}' because {string.Join("; ", passedOver)}; its probe passed: {probe.Reason}";
                LogSelected(logger, candidate.Name, wanted, reason);
                return new DriverSelection(candidate, reason, probes);
            }

            passedOver.Add($"'{candidate.Name}' is unavailable ({probe.Reason})");
        }

        throw new TunnelDriverUnavailableException($"No '{wanted}' driver can run here: {string.Join("; ", passedOver)}.");
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Tunnel driver {Driver} selected for {Requested}: {Reason}")]
    private static partial void LogSelected(ILogger logger, string driver, string requested, string reason);
}
