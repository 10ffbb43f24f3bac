using CloudVpn.Scaling;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Scaling;

public sealed class ConnectionScalingStrategyTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    private static ScalingSignals Load(DateTimeOffset at, int current, params (int Peers, double Cpu)[] replicas) =>
        new(current, [.. replicas.Select((r, i) => new ReplicaLoad($"gw-{i}", r.Peers, 1e6, r.Cpu))], at);

    private static ConnectionScalingStrategy Strategy(ConnectionScalingOptions? options = null) =>
        new(options ?? new ConnectionScalingOptions { MinReplicas = 2, MaxReplicas = 10, TargetActivePeersPerReplica = 100, TargetCpuUtilizationPercent = 70 });

    [Fact]
    public void Scales_up_on_active_peers_and_says_why()
    {
        var decision = Strategy().Decide(Load(T0, 2, (250, 0.2), (230, 0.2)));
        Assert.Equal(5, decision.DesiredReplicas); // 480 peers / 100 per replica
        Assert.Contains("scale up 2 -> 5", decision.Reason, StringComparison.Ordinal);
        Assert.Contains("480 active peers", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Cpu_wins_when_it_needs_more()
    {
        var decision = Strategy().Decide(Load(T0, 2, (10, 1.4), (10, 1.4)));
        Assert.Equal(4, decision.DesiredReplicas); // 280 % CPU / 70 % per replica
        Assert.Contains("CPU", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Throughput_drives_scaling_only_when_a_target_is_set()
    {
        var signals = new ScalingSignals(2, [new ReplicaLoad("a", 10, 9e8, 0.1), new ReplicaLoad("b", 10, 9e8, 0.1)], T0);
        Assert.Equal(2, Strategy().Decide(signals).DesiredReplicas);
        var withBytes = Strategy(new ConnectionScalingOptions { TargetActivePeersPerReplica = 100, TargetBytesPerSecondPerReplica = 5e8 });
        Assert.Equal(4, withBytes.Decide(signals).DesiredReplicas);
    }

    [Fact]
    public void Stays_within_the_tolerance_and_the_bounds()
    {
        Assert.Equal(3, Strategy().Decide(Load(T0, 3, (105, 0.3), (105, 0.3), (105, 0.3))).DesiredReplicas); // 5 % over target
        var max = Strategy().Decide(Load(T0, 5, (900, 0.5), (900, 0.5), (900, 0.5), (900, 0.5), (900, 0.5)));
        Assert.Equal(10, max.DesiredReplicas);
        Assert.Contains("bounded to 2..10", max.Reason, StringComparison.Ordinal);
        Assert.Equal(2, Strategy().Decide(Load(T0, 2, (0, 0), (0, 0))).DesiredReplicas);
    }

    [Fact]
    public void Scale_down_waits_for_the_stabilisation_window()
    {
        var strategy = Strategy(new ConnectionScalingOptions { MinReplicas = 1, MaxReplicas = 10, TargetActivePeersPerReplica = 100, ScaleDownStabilization = TimeSpan.FromMinutes(10) });
        Assert.Equal(6, strategy.Decide(Load(T0, 6, (100, 0.1), (100, 0.1), (100, 0.1), (100, 0.1), (100, 0.1), (100, 0.1))).DesiredReplicas);

        // Load drops to 200 peers: the 6 recommended five minutes ago still holds.
        var held = strategy.Decide(Load(T0.AddMinutes(5), 6, (40, 0.1), (40, 0.1), (40, 0.1), (40, 0.1), (20, 0.1), (20, 0.1)));
        Assert.Equal(6, held.DesiredReplicas);
        Assert.Contains("scale-down held at 6", held.Reason, StringComparison.Ordinal);

        // Eleven minutes after the high recommendation it has left the window.
        var down = strategy.Decide(Load(T0.AddMinutes(11), 6, (40, 0.1), (40, 0.1), (40, 0.1), (40, 0.1), (20, 0.1), (20, 0.1)));
        Assert.Equal(2, down.DesiredReplicas);
        Assert.Contains("scale down 6 -> 2", down.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Scale_up_is_never_held_back()
    {
        var strategy = Strategy();
        strategy.Decide(Load(T0, 2, (10, 0.1), (10, 0.1)));
        Assert.Equal(8, strategy.Decide(Load(T0.AddSeconds(30), 2, (400, 0.1), (400, 0.1))).DesiredReplicas);
    }

    [Fact]
    public void Describes_the_hpa_on_active_peers_and_cpu()
    {
        var options = new ConnectionScalingOptions { MinReplicas = 3, MaxReplicas = 7, TargetActivePeersPerReplica = 150, TargetCpuUtilizationPercent = 60, ScaleDownStabilization = TimeSpan.FromMinutes(15) };
        var description = new ConnectionScalingStrategy(options).DescribeAutoscaler(new AutoscalerTarget("gw", "vpn", "Deployment", "gw"));
        Assert.Equal(TimeSpan.FromMinutes(15), description.ScaleDownStabilization);
        Assert.Equal(["cloudvpn_active_peers", "cpu"], description.Metrics.Select(m => m.Name));
        var hpa = Assert.IsType<V2HorizontalPodAutoscaler>(Assert.Single(description.PlatformObjects));
        Assert.Equal("autoscaling/v2", hpa.ApiVersion);
        Assert.Equal(900, hpa.Spec.Behavior.ScaleDown.StabilizationWindowSeconds);
        Assert.Equal("150", hpa.Spec.Metrics[0].Pods.Target.AverageValue.ToString());
        Assert.Equal(60, hpa.Spec.Metrics[1].Resource.Target.AverageUtilization);
        Assert.Equal("autoscaling/v2beta2", ((V2HorizontalPodAutoscaler)new ConnectionScalingStrategy(options, legacyAutoscalingApi: true).DescribeAutoscaler(new AutoscalerTarget("gw", "vpn", "Deployment", "gw")).PlatformObjects[0]).ApiVersion);
    }

    [Fact]
    public void Invalid_options_and_signals_are_named()
    {
        var ex = Assert.Throws<ArgumentException>(() => new ConnectionScalingStrategy(new ConnectionScalingOptions { MinReplicas = 5, MaxReplicas = 2, TargetCpuUtilizationPercent = 0 }));
        Assert.Contains("maxReplicas", ex.Message, StringComparison.Ordinal);
        Assert.Contains("targetCpuUtilizationPercent", ex.Message, StringComparison.Ordinal);
        var bad = Assert.Throws<ArgumentException>(() => Strategy().Decide(new ScalingSignals(2, [new ReplicaLoad("gw-1", -1, 0, 0)], T0)));
        Assert.Contains("gw-1", bad.Message, StringComparison.Ordinal);
    }
}
