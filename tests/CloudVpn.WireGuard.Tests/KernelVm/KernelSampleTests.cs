using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.KernelVm;

/// <summary>The kernel-accelerated sample picks the kernel driver where the module is, and falls back with the reason where it is not.</summary>
public sealed class KernelSampleTests
{
    private static string RunSelectOnly()
    {
        Prerequisite.Require(File.Exists(KernelVmRunTests.SampleDll), $"the sample built at {KernelVmRunTests.SampleDll} (dotnet build CloudVpn.sln)");
        var keys = Directory.CreateTempSubdirectory("cv-sample-keys-").FullName;
        try
        {
            var (exit, stdout, stderr) = Cmd.Run("dotnet", $"{KernelVmRunTests.SampleDll} --Sample:SelectOnly=true --Sample:KeyDirectory={keys} --Logging:Console:FormatterName=simple", check: false, timeoutMs: 180_000);
            Assert.True(exit == 0, $"sample exited {exit}: {stdout}{stderr}");
            return stdout;
        }
        finally
        {
            Directory.Delete(keys, recursive: true);
        }
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void On_this_machine_the_sample_reports_the_choice_and_why()
    {
        Prerequisite.RequireRoot();
        var output = RunSelectOnly();
        if (Directory.Exists("/sys/module/wireguard"))
        {
            Assert.Contains("Selected wireguard-kernel", output, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("Driver wireguard-kernel: unavailable (WireGuard kernel module not loaded", output, StringComparison.Ordinal);
            Assert.Contains("Selected wireguard-userspace: 'wireguard-userspace' chosen for 'wireguard' because 'wireguard-kernel' is unavailable", output, StringComparison.Ordinal);
        }
    }

    [KernelVmFact]
    [Trait("Category", "KernelVm")]
    public void In_the_vm_the_sample_selects_the_kernel_driver()
    {
        var output = RunSelectOnly();
        Assert.Contains("Driver wireguard-kernel: available (generic netlink family 'wireguard' resolves", output, StringComparison.Ordinal);
        Assert.Contains("Selected wireguard-kernel: 'wireguard-kernel' is the preferred 'wireguard' driver", output, StringComparison.Ordinal);
    }
}
