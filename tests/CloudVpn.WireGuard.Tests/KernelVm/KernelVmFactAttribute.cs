using System.Runtime.CompilerServices;
using Xunit.Sdk;
using Xunit.v3;

namespace CloudVpn.WireGuard.Tests.KernelVm;

/// <summary>
/// A test that only exists inside the kernel VM (<c>tests/kernel-vm/run.sh</c> sets CLOUDVPN_IN_KERNEL_VM=1): outside it
/// the test is not discovered at all, neither passed nor skipped, because the host-side
/// <see cref="KernelVmRunTests"/> runs it in the VM and asserts its result.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
[XunitTestCaseDiscoverer(typeof(KernelVmFactDiscoverer))]
internal sealed class KernelVmFactAttribute(
    [CallerFilePath] string? sourceFilePath = null,
    [CallerLineNumber] int sourceLineNumber = -1) : FactAttribute(sourceFilePath, sourceLineNumber)
{
    public static bool InsideVm => Environment.GetEnvironmentVariable("CLOUDVPN_IN_KERNEL_VM") == "1";
}

/// <summary>Discovers <see cref="KernelVmFactAttribute"/> tests only inside the VM.</summary>
internal sealed class KernelVmFactDiscoverer : FactDiscoverer
{
    public override ValueTask<IReadOnlyCollection<IXunitTestCase>> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, IXunitTestMethod testMethod, IFactAttribute factAttribute) =>
        KernelVmFactAttribute.InsideVm
            ? base.Discover(discoveryOptions, testMethod, factAttribute)
            : new ValueTask<IReadOnlyCollection<IXunitTestCase>>([]);
}
