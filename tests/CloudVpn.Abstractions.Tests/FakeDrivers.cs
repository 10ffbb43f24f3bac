using CloudVpn.Tunnels;

namespace CloudVpn.Abstractions.Tests;

/// <summary>Test doubles of tunnel drivers with a settable probe outcome.</summary>
internal static class FakeDrivers
{
    internal abstract class ProbedDriver(string name, string family, int priority) : ITunnelDriver
    {
        public string Name { get; } = name;

        public string Family { get; } = family;

        public int Priority { get; } = priority;

        public DriverProbeResult Probe { get; set; } = DriverProbeResult.Available("ok");

        public int ProbeCount { get; private set; }

        public ValueTask<DriverProbeResult> ProbeAsync(CancellationToken cancellationToken = default)
        {
            ProbeCount++;
            return ValueTask.FromResult(Probe);
        }

        public ValueTask<ITunnel> OpenAsync(TunnelSpec spec, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException("selection tests never open tunnels");
    }

    internal sealed class KernelDriver() : ProbedDriver("wireguard-kernel", "wireguard", 100);

    internal sealed class UserspaceDriver() : ProbedDriver("wireguard-userspace", "wireguard", 10);

    internal sealed class OpenVpnDriver() : ProbedDriver("openvpn", "openvpn", 10);
}
