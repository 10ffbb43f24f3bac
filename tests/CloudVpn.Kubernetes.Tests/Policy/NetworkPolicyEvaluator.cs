using System.Net;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Policy;

/// <summary>A pod: namespace, labels, IP.</summary>
internal sealed record Pod(string Namespace, IReadOnlyDictionary<string, string> Labels, IPAddress Ip)
{
    public override string ToString() => $"pod {Ip} in {Namespace} {{{string.Join(",", Labels.Select(kv => $"{kv.Key}={kv.Value}"))}}}";
}

/// <summary>
/// A small NetworkPolicy evaluator following the Kubernetes semantics: a pod not selected by any policy of a direction
/// allows everything in that direction; a selected pod allows what any selecting policy's rules allow (union).
/// Peers: ipBlock (cidr minus except), podSelector (policy's namespace), namespaceSelector, or both (AND).
/// Ports: none listed allows every port; protocol defaults to TCP.
/// </summary>
internal sealed class NetworkPolicyEvaluator(IEnumerable<V1NetworkPolicy> policies, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> namespaceLabels)
{
    private readonly List<V1NetworkPolicy> _policies = [.. policies];

    public bool Egress(Pod from, IPAddress to, int port, string protocol, Pod? toPod = null)
    {
        var selecting = Selecting(from, "Egress").ToList();
        return selecting.Count == 0 || selecting.Any(p => (p.Spec.Egress ?? []).Any(r =>
            PortsMatch(r.Ports, port, protocol) && (r.To is null || r.To.Count == 0 || r.To.Any(peer => PeerMatches(peer, p.Metadata.NamespaceProperty, to, toPod)))));
    }

    public bool Ingress(Pod to, IPAddress from, int port, string protocol, Pod? fromPod = null)
    {
        var selecting = Selecting(to, "Ingress").ToList();
        return selecting.Count == 0 || selecting.Any(p => (p.Spec.Ingress ?? []).Any(r =>
            PortsMatch(r.Ports, port, protocol) && (r.FromProperty is null || r.FromProperty.Count == 0 || r.FromProperty.Any(peer => PeerMatches(peer, p.Metadata.NamespaceProperty, from, fromPod)))));
    }

    private IEnumerable<V1NetworkPolicy> Selecting(Pod pod, string type) => _policies.Where(p =>
        p.Metadata.NamespaceProperty == pod.Namespace
        && (p.Spec.PolicyTypes ?? ["Ingress"]).Contains(type)
        && Matches(p.Spec.PodSelector, pod.Labels));

    private bool PeerMatches(V1NetworkPolicyPeer peer, string policyNamespace, IPAddress address, Pod? pod)
    {
        if (peer.IpBlock is { } block)
        {
            var cidr = IPNetwork.Parse(block.Cidr);
            return cidr.Contains(address) && !(block.Except ?? []).Any(e => IPNetwork.Parse(e).Contains(address));
        }

        if (pod is null)
        {
            return false;
        }

        var namespaceOk = peer.NamespaceSelector is null
            ? pod.Namespace == policyNamespace
            : Matches(peer.NamespaceSelector, namespaceLabels.TryGetValue(pod.Namespace, out var l) ? l : new Dictionary<string, string>());
        var podOk = peer.PodSelector is null || Matches(peer.PodSelector, pod.Labels);
        return namespaceOk && podOk;
    }

    private static bool PortsMatch(IList<V1NetworkPolicyPort>? ports, int port, string protocol) =>
        ports is null || ports.Count == 0 || ports.Any(p =>
            (p.Protocol ?? "TCP") == protocol && (p.Port is null || int.Parse(p.Port.Value, System.Globalization.CultureInfo.InvariantCulture) == port));

    public static bool Matches(V1LabelSelector selector, IReadOnlyDictionary<string, string> labels)
    {
        if (selector.MatchExpressions is { Count: > 0 })
        {
            throw new NotSupportedException("matchExpressions are not emitted");
        }

        return (selector.MatchLabels ?? new Dictionary<string, string>()).All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);
    }
}
