using System.Text.RegularExpressions;
using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.KernelVm;

/// <summary>
/// Runs this test assembly's KernelVm tests inside Debian's kernel under qemu (the host kernel has no WireGuard module)
/// and asserts that they ran and passed. One boot for all of them.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class KernelVmRunTests(ITestOutputHelper output)
{
    [Fact]
    public void Kernel_driver_tests_pass_inside_the_vm()
    {
        if (KernelVmFactAttribute.InsideVm)
        {
            Assert.Skip("already inside the kernel VM");
        }

        Prerequisite.RequireRoot();
        var script = Path.Combine(RepoRoot(), "tests", "kernel-vm", "run.sh");
        Prerequisite.Require(File.Exists(script), $"{script}");
        Prerequisite.Require(File.Exists("/dev/kvm") || Prerequisite.FindCommand("qemu-system-x86_64") is not null || Prerequisite.FindCommand("apt-get") is not null,
            "qemu-system-x86 (run.sh installs it with apt-get)");

        var configuration = Configuration;
        var perf = Path.Combine(RepoRoot(), "TestResults", "kernel-vm-perf.txt");
        File.Delete(perf);
        var (exit, stdout, stderr) = Cmd.Run("/usr/bin/env", $"CONFIGURATION={configuration} bash {script}", check: false, timeoutMs: 15 * 60_000);
        output.WriteLine(stdout);
        output.WriteLine(stderr);

        // xunit's summary line: "Total: 5, Errors: 0, Failed: 0, Skipped: 0, Not Run: 0, Time: 12.3s"
        var summary = Summary().Match(stdout);
        Assert.True(summary.Success, $"no test summary in the VM's output (exit {exit}):\n{stdout}\n{stderr}");
        int Group(string name) => int.Parse(summary.Groups[name].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Group("total") > 0, $"the VM ran no KernelVm tests:\n{stdout}");
        Assert.Equal(0, Group("errors"));
        Assert.Equal(0, Group("failed"));
        Assert.Equal(0, Group("skipped"));
        Assert.True(exit == 0, $"kernel VM run exited {exit}:\n{stdout}\n{stderr}");
        if (File.Exists(perf))
        {
            output.WriteLine(File.ReadAllText(perf));
        }
    }

    internal static string Configuration => AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";

    /// <summary>The kernel-accelerated sample's entry assembly, as the solution build leaves it.</summary>
    internal static string SampleDll => Path.Combine(RepoRoot(), "samples", "CloudVpn.Samples.KernelWireGuard", "bin", Configuration, "net10.0", "CloudVpn.Samples.KernelWireGuard.dll");

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "global.json")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root (global.json) not found above the test binaries");
    }

    [GeneratedRegex(@"Total: (?<total>\d+), Errors: (?<errors>\d+), Failed: (?<failed>\d+), Skipped: (?<skipped>\d+)")]
    private static partial Regex Summary();
}
