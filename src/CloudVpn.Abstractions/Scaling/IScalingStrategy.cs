namespace CloudVpn.Scaling;

/// <summary>Turns load signals into a replica count, and describes the autoscaler that enforces it.</summary>
public interface IScalingStrategy
{
    /// <summary>Strategy name, for logs.</summary>
    string Name { get; }

    /// <summary>Decides the replica count for the given load; the decision says why.</summary>
    ScalingDecision Decide(ScalingSignals signals);

    /// <summary>Describes the platform autoscaler for <paramref name="target"/>.</summary>
    AutoscalerDescription DescribeAutoscaler(AutoscalerTarget target);
}

/// <summary>Load of one replica.</summary>
/// <param name="Replica">Replica (pod) name.</param>
/// <param name="ActivePeers">Peers with a handshake in the last few minutes.</param>
/// <param name="BytesPerSecond">Tunnel throughput, both directions.</param>
/// <param name="CpuUtilization">CPU use as a fraction of the request (0..n).</param>
public sealed record ReplicaLoad(string Replica, int ActivePeers, double BytesPerSecond, double CpuUtilization);

/// <summary>Load signals for a decision.</summary>
/// <param name="CurrentReplicas">Replicas running now.</param>
/// <param name="Replicas">Per-replica load.</param>
/// <param name="Timestamp">When the signals were taken.</param>
public sealed record ScalingSignals(int CurrentReplicas, IReadOnlyList<ReplicaLoad> Replicas, DateTimeOffset Timestamp);

/// <summary>A replica decision.</summary>
/// <param name="DesiredReplicas">How many replicas to run.</param>
/// <param name="Reason">Why, in words for logs and events.</param>
public sealed record ScalingDecision(int DesiredReplicas, string Reason);

/// <summary>What the autoscaler scales.</summary>
/// <param name="Name">Autoscaler name.</param>
/// <param name="Namespace">Namespace.</param>
/// <param name="TargetKind">Kind of the scaled object (Deployment).</param>
/// <param name="TargetName">Name of the scaled object.</param>
public sealed record AutoscalerTarget(string Name, string Namespace, string TargetKind, string TargetName);

/// <summary>The autoscaler a strategy asks for.</summary>
/// <param name="MinReplicas">Lower bound.</param>
/// <param name="MaxReplicas">Upper bound.</param>
/// <param name="Metrics">Metric targets, e.g. <c>cloudvpn_active_peers</c> per pod.</param>
/// <param name="ScaleDownStabilization">How long a lower recommendation must hold before scaling down.</param>
/// <param name="PlatformObjects">The platform object(s) that enforce it (for Kubernetes a typed HorizontalPodAutoscaler).</param>
public sealed record AutoscalerDescription(
    int MinReplicas,
    int MaxReplicas,
    IReadOnlyList<AutoscalerMetric> Metrics,
    TimeSpan ScaleDownStabilization,
    IReadOnlyList<object> PlatformObjects);

/// <summary>One autoscaler metric target.</summary>
/// <param name="Name">Metric name.</param>
/// <param name="Kind">pods, resource or external.</param>
/// <param name="TargetAverageValue">Target per pod (or utilization percent for resources).</param>
public sealed record AutoscalerMetric(string Name, string Kind, double TargetAverageValue);
