using NSubstitute;
using CloudVpn.Policy;
using CloudVpn.Scaling;
using Microsoft.Extensions.DependencyInjection;

namespace CloudVpn.Kubernetes.Tests;

public sealed class RegistrationTests
{
    [Fact]
    public void Emitter_and_scaling_register_once_on_the_builder()
    {
        var services = new ServiceCollection();
        services.AddCloudVpn().AddKubernetesPolicyEmitter().AddConnectionScaling(new ConnectionScalingOptions { MaxReplicas = 4 });
        services.AddCloudVpn().AddKubernetesPolicyEmitter().AddConnectionScaling(new ConnectionScalingOptions { MaxReplicas = 9 });
        using var provider = services.BuildServiceProvider();
        var emitter = Assert.Single(provider.GetServices<IPolicyEmitter>());
        Assert.Equal("kubernetes", emitter.Platform);
        var strategy = provider.GetRequiredService<IScalingStrategy>();
        Assert.Equal(4, strategy.DescribeAutoscaler(new AutoscalerTarget("gw", "vpn", "Deployment", "gw")).MaxReplicas);
    }

    [Fact]
    public void Without_AddCloudVpn_the_error_says_what_to_call()
    {
        var builder = NSubstitute.Substitute.For<ICloudVpnBuilder>();
        builder.Services.Returns(new ServiceCollection());
        var ex = Assert.Throws<InvalidOperationException>(() => builder.AddKubernetesPolicyEmitter());
        Assert.Contains("AddCloudVpn()", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_scaling_options_fail_at_registration()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ServiceCollection().AddCloudVpn().AddConnectionScaling(new ConnectionScalingOptions { MinReplicas = 0 }));
        Assert.Contains("minReplicas", ex.Message, StringComparison.Ordinal);
    }
}
