using System.Globalization;
using System.Text;
using k8s.Models;

namespace CloudVpn.Scaling;

/// <summary>
/// Scales gateways on connections: enough replicas that each carries at most
/// <see cref="ConnectionScalingOptions.TargetActivePeersPerReplica"/> active peers, with CPU (and optionally throughput)
/// as further signals; the largest need wins. Scale-down waits until the lower need has held for the stabilisation
/// window, because removing a replica moves its peers. The same rules, as a <c>HorizontalPodAutoscaler</c>
/// (autoscaling/v2, or v2beta2 for Kubernetes before 1.23), come from <see cref="DescribeAutoscaler"/>.
/// </summary>
/// <remarks>One instance per scaled workload: it remembers that workload's recent recommendations. Thread-safe.</remarks>
public sealed class ConnectionScalingStrategy : IScalingStrategy
{
    private readonly ConnectionScalingOptions _options;
    private readonly List<(DateTimeOffset At, int Replicas)> _recommendations = [];
    private readonly Lock _gate = new();

    /// <summary>Creates the strategy; throws when <paramref name="options"/> are invalid, naming every problem.</summary>
    public ConnectionScalingStrategy(ConnectionScalingOptions options, bool legacyAutoscalingApi = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid scaling options: {string.Join("; ", errors)}", nameof(options));
        }

        _options = options;
        LegacyAutoscalingApi = legacyAutoscalingApi;
    }

    /// <summary>Whether the HPA is described as autoscaling/v2beta2 (clusters before 1.23).</summary>
    public bool LegacyAutoscalingApi { get; }

    /// <inheritdoc />
    public string Name => "connections";

    /// <inheritdoc />
    public ScalingDecision Decide(ScalingSignals signals)
    {
        ArgumentNullException.ThrowIfNull(signals);
        if (signals.CurrentReplicas < 0)
        {
            throw new ArgumentException($"currentReplicas: {signals.CurrentReplicas} is negative", nameof(signals));
        }

        foreach (var r in signals.Replicas)
        {
            if (r.ActivePeers < 0 || r.BytesPerSecond < 0 || r.CpuUtilization < 0 || double.IsNaN(r.BytesPerSecond) || double.IsNaN(r.CpuUtilization))
            {
                throw new ArgumentException($"replicas['{r.Replica}']: load figures must be non-negative numbers", nameof(signals));
            }
        }

        var current = Math.Max(signals.CurrentReplicas, 0);
        var reason = new StringBuilder();
        int raw;
        if (signals.Replicas.Count == 0)
        {
            raw = current;
            reason.Append("no load signals; keeping the current count");
        }
        else
        {
            var peers = signals.Replicas.Sum(r => (long)r.ActivePeers);
            var byPeers = Need(peers, _options.TargetActivePeersPerReplica, current);
            var cpu = signals.Replicas.Sum(r => r.CpuUtilization);
            var byCpu = Need(cpu * 100, _options.TargetCpuUtilizationPercent, current);
            raw = Math.Max(byPeers, byCpu);
            reason.Append(CultureInfo.InvariantCulture, $"{peers} active peers over {signals.Replicas.Count} replicas (target {_options.TargetActivePeersPerReplica} each) need {byPeers}; ");
            reason.Append(CultureInfo.InvariantCulture, $"CPU {cpu * 100 / signals.Replicas.Count:0.#}% average (target {_options.TargetCpuUtilizationPercent}%) needs {byCpu}");
            if (_options.TargetBytesPerSecondPerReplica is { } bytesTarget)
            {
                var bytes = signals.Replicas.Sum(r => r.BytesPerSecond);
                var byBytes = Need(bytes, bytesTarget, current);
                raw = Math.Max(raw, byBytes);
                reason.Append(CultureInfo.InvariantCulture, $"; {bytes:0} B/s (target {bytesTarget:0} each) needs {byBytes}");
            }
        }

        var desired = Math.Clamp(raw, _options.MinReplicas, _options.MaxReplicas);
        if (desired != raw)
        {
            reason.Append(CultureInfo.InvariantCulture, $"; bounded to {_options.MinReplicas}..{_options.MaxReplicas}: {desired}");
        }

        int held;
        lock (_gate)
        {
            _recommendations.Add((signals.Timestamp, desired));
            _recommendations.RemoveAll(r => r.At < signals.Timestamp - _options.ScaleDownStabilization);
            held = _recommendations.Max(r => r.Replicas);
        }

        if (desired < current)
        {
            // Scale down only as far as the highest recommendation within the window allows.
            if (held > desired)
            {
                var stabilized = Math.Min(held, current);
                reason.Append(CultureInfo.InvariantCulture, $"; scale-down held at {stabilized} (a recommendation of {held} within the last {_options.ScaleDownStabilization.TotalSeconds:0} s)");
                desired = stabilized;
            }
        }

        var verb = desired > current ? "scale up" : desired < current ? "scale down" : "keep";
        return new ScalingDecision(desired, $"{verb} {current} -> {desired}: {reason}");
    }

    // Replicas needed for a total load at a per-replica target; within the tolerance the current count stays.
    private int Need(double total, double perReplica, int current)
    {
        var exact = total / perReplica;
        if (current > 0 && Math.Abs((exact / current) - 1) <= _options.Tolerance)
        {
            return current;
        }

        return (int)Math.Min(Math.Ceiling(exact), int.MaxValue);
    }

    /// <inheritdoc />
    public AutoscalerDescription DescribeAutoscaler(AutoscalerTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var metrics = new List<AutoscalerMetric>
        {
            new(_options.ActivePeersMetricName, "pods", _options.TargetActivePeersPerReplica),
            new("cpu", "resource", _options.TargetCpuUtilizationPercent),
        };
        var hpa = new V2HorizontalPodAutoscaler
        {
            ApiVersion = LegacyAutoscalingApi ? "autoscaling/v2beta2" : "autoscaling/v2",
            Kind = "HorizontalPodAutoscaler",
            Metadata = new V1ObjectMeta { Name = target.Name, NamespaceProperty = target.Namespace },
            Spec = new V2HorizontalPodAutoscalerSpec
            {
                ScaleTargetRef = new V2CrossVersionObjectReference { ApiVersion = "apps/v1", Kind = target.TargetKind, Name = target.TargetName },
                MinReplicas = _options.MinReplicas,
                MaxReplicas = _options.MaxReplicas,
                Metrics =
                [
                    new V2MetricSpec
                    {
                        Type = "Pods",
                        Pods = new V2PodsMetricSource
                        {
                            Metric = new V2MetricIdentifier { Name = _options.ActivePeersMetricName },
                            Target = new V2MetricTarget { Type = "AverageValue", AverageValue = new ResourceQuantity(_options.TargetActivePeersPerReplica.ToString(CultureInfo.InvariantCulture)) },
                        },
                    },
                    new V2MetricSpec
                    {
                        Type = "Resource",
                        Resource = new V2ResourceMetricSource
                        {
                            Name = "cpu",
                            Target = new V2MetricTarget { Type = "Utilization", AverageUtilization = _options.TargetCpuUtilizationPercent },
                        },
                    },
                ],
                Behavior = new V2HorizontalPodAutoscalerBehavior
                {
                    ScaleDown = new V2HPAScalingRules
                    {
                        StabilizationWindowSeconds = (int)_options.ScaleDownStabilization.TotalSeconds,
                        SelectPolicy = "Min",
                        Policies = [new V2HPAScalingPolicy { Type = "Pods", Value = 1, PeriodSeconds = 300 }],
                    },
                    ScaleUp = new V2HPAScalingRules
                    {
                        StabilizationWindowSeconds = 0,
                        SelectPolicy = "Max",
                        Policies =
                        [
                            new V2HPAScalingPolicy { Type = "Pods", Value = 2, PeriodSeconds = 60 },
                            new V2HPAScalingPolicy { Type = "Percent", Value = 100, PeriodSeconds = 60 },
                        ],
                    },
                },
            },
        };
        return new AutoscalerDescription(_options.MinReplicas, _options.MaxReplicas, metrics, _options.ScaleDownStabilization, [hpa]);
    }
}
