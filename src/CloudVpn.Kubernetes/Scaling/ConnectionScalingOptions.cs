namespace CloudVpn.Scaling;

/// <summary>Targets and bounds of <see cref="ConnectionScalingStrategy"/> (the chart's <c>autoscaling.*</c> values).</summary>
public sealed record ConnectionScalingOptions
{
    /// <summary>Default name of the per-pod connection metric the HPA reads (as the custom-metrics API serves it).</summary>
    public const string ActivePeersMetric = "cloudvpn_active_peers";

    /// <summary>
    /// Name of the per-pod active-peers metric in the custom-metrics API (a metrics adapter may rename the gateway's
    /// Prometheus series to it).
    /// </summary>
    public string ActivePeersMetricName { get; init; } = ActivePeersMetric;

    /// <summary>Fewest replicas.</summary>
    public int MinReplicas { get; init; } = 2;

    /// <summary>Most replicas.</summary>
    public int MaxReplicas { get; init; } = 10;

    /// <summary>Active peers one replica should carry (<c>autoscaling.targetActivePeersPerPod</c>).</summary>
    public int TargetActivePeersPerReplica { get; init; } = 200;

    /// <summary>CPU use as a percentage of the request one replica should run at.</summary>
    public int TargetCpuUtilizationPercent { get; init; } = 70;

    /// <summary>Throughput one replica should carry; null: throughput does not drive scaling.</summary>
    public double? TargetBytesPerSecondPerReplica { get; init; }

    /// <summary>A lower recommendation must hold this long before replicas are removed (peers move when they are).</summary>
    public TimeSpan ScaleDownStabilization { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Relative change below which the replica count stays (as the HPA's 10 % tolerance).</summary>
    public double Tolerance { get; init; } = 0.1;

    /// <summary>Lists every problem; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(ActivePeersMetricName) || !ActivePeersMetricName.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':'))
        {
            errors.Add($"activePeersMetric: '{ActivePeersMetricName}' is not a metric name");
        }

        if (MinReplicas < 1)
        {
            errors.Add($"minReplicas: {MinReplicas} must be at least 1");
        }

        if (MaxReplicas < MinReplicas)
        {
            errors.Add($"maxReplicas: {MaxReplicas} is less than minReplicas {MinReplicas}");
        }

        if (TargetActivePeersPerReplica < 1)
        {
            errors.Add($"targetActivePeersPerReplica: {TargetActivePeersPerReplica} must be at least 1");
        }

        if (TargetCpuUtilizationPercent is < 1 or > 100)
        {
            errors.Add($"targetCpuUtilizationPercent: {TargetCpuUtilizationPercent} is outside 1..100");
        }

        if (TargetBytesPerSecondPerReplica is <= 0 or double.NaN)
        {
            errors.Add($"targetBytesPerSecondPerReplica: {TargetBytesPerSecondPerReplica} must be positive");
        }

        if (ScaleDownStabilization < TimeSpan.Zero || ScaleDownStabilization > TimeSpan.FromHours(1))
        {
            errors.Add($"scaleDownStabilization: {ScaleDownStabilization} is outside 0..1h (the HPA's limit)");
        }

        if (Tolerance is < 0 or >= 1 or double.NaN)
        {
            errors.Add($"tolerance: {Tolerance} is outside [0, 1)");
        }

        return errors;
    }
}
