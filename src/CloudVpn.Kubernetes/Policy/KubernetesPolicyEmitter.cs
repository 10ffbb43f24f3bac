using System.Globalization;
using System.Net;
using System.Net.Sockets;
using k8s.Models;

namespace CloudVpn.Policy;

/// <summary>
/// Emits Kubernetes NetworkPolicies (typed <see cref="V1NetworkPolicy"/> models) for an <see cref="AccessPolicy"/>:
/// <list type="bullet">
/// <item><c>&lt;name&gt;-default-deny</c>: when <see cref="AccessPolicy.DefaultDeny"/>, nothing in the gateway's namespace
/// sends or receives unless another policy allows it;</item>
/// <item><c>&lt;name&gt;-gateway</c>: the gateway accepts the tunnel port from the client ranges and forwarded traffic only
/// from the sources (on the destinations' ports), and sends only to the destinations and DNS;</item>
/// <item><c>&lt;name&gt;-client-&lt;i&gt;</c>: under default deny, the pods of source <c>i</c> in the gateway's namespace
/// may send to the gateway and the destinations.</item>
/// </list>
/// The Helm chart <c>deploy/helm/cloudvpn-gateway</c> renders the same objects.
/// </summary>
public sealed class KubernetesPolicyEmitter : IPolicyEmitter
{
    /// <summary>DNS stays reachable for every pod the policies select (UDP and TCP 53), at the cluster DNS pods only.</summary>
    public static IReadOnlyList<TunnelPort> DnsPorts { get; } = [new(53, "UDP"), new(53, "TCP")];

    /// <summary>Labels of the cluster DNS pods (CoreDNS and kube-dns keep <c>k8s-app: kube-dns</c>), in any namespace.</summary>
    public static IReadOnlyDictionary<string, string> ClusterDnsSelector { get; } = new Dictionary<string, string> { ["k8s-app"] = "kube-dns" };

    /// <summary>
    /// The egress rule to the cluster DNS: to pods, not to addresses, so that port 53 is no way around the destinations.
    /// </summary>
    public static V1NetworkPolicyEgressRule ClusterDnsRule() => new()
    {
        To = [new V1NetworkPolicyPeer { NamespaceSelector = new V1LabelSelector(), PodSelector = Selector(ClusterDnsSelector) }],
        Ports = [.. DnsPorts.Select(Port)],
    };

    /// <inheritdoc />
    public string Platform => "kubernetes";

    /// <inheritdoc />
    public PolicyEmission Emit(AccessPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        AccessPolicyValidation.ThrowIfInvalid(policy);

        var objects = new List<object>();
        if (policy.DefaultDeny)
        {
            objects.Add(NewPolicy(policy, "default-deny", new V1LabelSelector(), ["Ingress", "Egress"]));
        }

        objects.Add(GatewayPolicy(policy));

        if (policy.DefaultDeny && policy.Destinations.Count > 0)
        {
            for (var i = 0; i < policy.Sources.Count; i++)
            {
                // A policy selects pods of its own namespace only: this one lets the source's pods in the gateway's
                // namespace send (pods elsewhere are governed by their namespace's policies). For a source with a
                // namespace selector the grant is egress only; the gateway's ingress still checks the namespace.
                var source = policy.Sources[i];
                var client = NewPolicy(policy, $"client-{i.ToString(CultureInfo.InvariantCulture)}", Selector(source.PodSelector), ["Egress"]);
                var egress = new List<V1NetworkPolicyEgressRule>
                {
                    new() { To = [new V1NetworkPolicyPeer { PodSelector = Selector(policy.GatewaySelector) }] },
                };
                egress.AddRange(DestinationRules(policy));
                client.Spec.Egress = egress;
                objects.Add(client);
            }
        }

        return new PolicyEmission(objects, GatewayRules(policy));
    }

    private static V1NetworkPolicy GatewayPolicy(AccessPolicy policy)
    {
        var gateway = NewPolicy(policy, "gateway", Selector(policy.GatewaySelector), ["Ingress", "Egress"]);
        var tunnel = new V1NetworkPolicyIngressRule { Ports = [Port(policy.TunnelPort)] };
        if (policy.ClientRanges.Count > 0)
        {
            tunnel.FromProperty = [.. policy.ClientRanges.Select(r => new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = Cidr(r) } })];
        }

        var ingress = new List<V1NetworkPolicyIngressRule> { tunnel };
        if (policy.Sources.Count > 0 && policy.Destinations.Count > 0)
        {
            var forwarded = new V1NetworkPolicyIngressRule
            {
                FromProperty = [.. policy.Sources.Select(s => new V1NetworkPolicyPeer
                {
                    PodSelector = Selector(s.PodSelector),
                    NamespaceSelector = s.NamespaceSelector is null ? null : Selector(s.NamespaceSelector),
                })],
            };
            if (policy.Destinations.All(d => d.Ports.Count > 0))
            {
                forwarded.Ports = [.. policy.Destinations.SelectMany(d => d.Ports).Distinct().Select(Port)];
            }

            ingress.Add(forwarded);
        }

        gateway.Spec.Ingress = ingress;
        gateway.Spec.Egress = [.. DestinationRules(policy)];
        return gateway;
    }

    private static IEnumerable<V1NetworkPolicyEgressRule> DestinationRules(AccessPolicy policy)
    {
        foreach (var destination in policy.Destinations)
        {
            yield return new V1NetworkPolicyEgressRule
            {
                To = [new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = Cidr(destination.Cidr) } }],
                Ports = destination.Ports.Count == 0 ? null : [.. destination.Ports.Select(Port)],
            };
        }

        yield return ClusterDnsRule();
    }

    private static List<GatewayRule> GatewayRules(AccessPolicy policy)
    {
        var rules = new List<GatewayRule>();
        foreach (var destination in policy.Destinations)
        {
            var family = destination.Cidr.BaseAddress.AddressFamily;
            var sources = policy.ClientRanges.Where(r => r.BaseAddress.AddressFamily == family).ToList();
            if (policy.ClientRanges.Count == 0)
            {
                sources.Add(family == AddressFamily.InterNetwork ? new IPNetwork(IPAddress.Any, 0) : new IPNetwork(IPAddress.IPv6Any, 0));
            }

            rules.AddRange(sources.Select(s => new GatewayRule(s, destination.Cidr, destination.Ports)));
        }

        return rules;
    }

    private static V1NetworkPolicy NewPolicy(AccessPolicy policy, string suffix, V1LabelSelector podSelector, List<string> types) => new()
    {
        ApiVersion = "networking.k8s.io/v1",
        Kind = "NetworkPolicy",
        Metadata = new V1ObjectMeta { Name = $"{policy.Name}-{suffix}", NamespaceProperty = policy.Namespace },
        Spec = new V1NetworkPolicySpec { PodSelector = podSelector, PolicyTypes = types },
    };

    internal static V1LabelSelector Selector(IReadOnlyDictionary<string, string> labels) =>
        labels.Count == 0 ? new V1LabelSelector() : new V1LabelSelector { MatchLabels = new Dictionary<string, string>(labels) };

    private static V1NetworkPolicyPort Port(TunnelPort port) => new() { Port = port.Port, Protocol = port.Protocol };

    private static string Cidr(IPNetwork network) => network.ToString();
}
