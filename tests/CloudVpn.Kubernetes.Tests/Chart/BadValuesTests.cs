namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>Wrong values fail helm template (and so helm install) with a message naming the value.</summary>
[Trait("Category", "Integration")]
public sealed class BadValuesTests
{
    [Theory]
    [InlineData("server.publicEndpoint=203.0.113.1", "server.publicEndpoint")]
    [InlineData("server.publicEndpoint=203.0.113.1:70000", "server.publicEndpoint")]
    [InlineData("driver=ipsec", "driver")]
    [InlineData("accessPolicy.destinations[0].cidr=10.0.0.300/8", "accessPolicy.destinations.0.cidr")]
    [InlineData("accessPolicy.destinations[0].cidr=10.0.0.0", "accessPolicy.destinations.0.cidr")]
    [InlineData("accessPolicy.clientRanges[0]=not-a-cidr", "accessPolicy.clientRanges.0")]
    [InlineData("server.addresses[0]=10.200.0.1/33", "server.addresses.0")]
    [InlineData("server.protocol=TCP", "server.protocol")]
    [InlineData("server.listenPort=0", "server.listenPort")]
    [InlineData("keys.source=file", "keys.source")]
    [InlineData("keys.source=vault", "keys.vault.address")]
    [InlineData("keys.source=externalSecret", "keys.externalSecret.secretStoreRef.name")]
    [InlineData("autoscaling.enabled=true,autoscaling.minReplicas=5,autoscaling.maxReplicas=2", "autoscaling.minReplicas")]
    [InlineData("service.type=Ingress", "service.type")]
    [InlineData("replicaCount=1", "podDisruptionBudget.minAvailable")]
    [InlineData("autoscaling.enabled=true,autoscaling.minReplicas=1", "podDisruptionBudget.minAvailable")]
    [InlineData("autoscaling.activePeersMetric=bad-name", "autoscaling.activePeersMetric")]
    [InlineData("nodeAffinity.mode=sometimes", "nodeAffinity.mode")]
    [InlineData("resources.requests.cpu=lots", "resources.requests.cpu")]
    public void Fails_naming_the_value(string set, string named)
    {
        HelmChart.RequireHelm();
        var sets = new List<string>();
        if (!set.StartsWith("server.publicEndpoint", StringComparison.Ordinal))
        {
            sets.Add($"server.publicEndpoint={HelmChart.PublicEndpoint}");
        }

        sets.Add(set);
        var (exit, stdout, stderr) = HelmChart.Template([], "1.31.0", sets: sets);
        Assert.NotEqual(0, exit);
        Assert.Contains(named, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("kind: Deployment", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_without_a_public_endpoint_fails_naming_it()
    {
        HelmChart.RequireHelm();
        var (exit, _, stderr) = HelmChart.Template([], "1.31.0");
        Assert.NotEqual(0, exit);
        Assert.Contains("server.publicEndpoint", stderr, StringComparison.Ordinal);
    }
}
