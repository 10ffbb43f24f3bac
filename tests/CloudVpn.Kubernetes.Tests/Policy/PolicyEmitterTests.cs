using System.Net;
using CloudVpn.Policy;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Policy;

public sealed class PolicyEmitterTests
{
    private static readonly Dictionary<string, string> Gateway = new() { ["app.kubernetes.io/name"] = "cloudvpn-gateway", ["app.kubernetes.io/component"] = "gateway" };

    private static readonly IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> Namespaces = new Dictionary<string, IReadOnlyDictionary<string, string>>
    {
        ["vpn"] = new Dictionary<string, string> { ["team"] = "net" },
        ["data"] = new Dictionary<string, string> { ["team"] = "data" },
        ["web"] = new Dictionary<string, string> { ["team"] = "web" },
        ["bare"] = new Dictionary<string, string>(),
    };

    private static readonly string[] NamespaceNames = ["vpn", "data", "web", "bare"];
    private static readonly (string Key, string Value)[] LabelPool = [("app", "a"), ("app", "b"), ("app", "c"), ("tier", "x"), ("tier", "y")];
    private static readonly string[] CidrPool = ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "192.0.2.128/25", "2001:db8::/32", "0.0.0.0/0"];
    private static readonly string[] AddressPool = ["10.1.2.3", "10.200.0.1", "192.0.2.200", "192.0.2.5", "203.0.113.9", "2001:db8::1", "2001:db9::1"];
    private static readonly TunnelPort[] PortPool = [new(443, "TCP"), new(22, "TCP"), new(53, "UDP"), new(80, "TCP"), new(443, "UDP")];
    private static readonly string[] ClientRangePool = ["198.51.100.0/24", "198.51.100.128/25", "2001:db8:100::/48"];
    private static readonly string[] ClientAddressPool = ["198.51.100.7", "198.51.100.200", "203.0.113.50", "2001:db8:100::9"];

    private static readonly AccessPolicy Example = new(
        "vpn-gateway",
        "vpn",
        Gateway,
        [new PolicySource(null, new Dictionary<string, string> { ["app"] = "billing" }), new PolicySource(new Dictionary<string, string> { ["team"] = "data" }, new Dictionary<string, string>())],
        [new PolicyDestination(IPNetwork.Parse("10.20.0.0/16"), [new TunnelPort(5432, "TCP")])])
    {
        ClientRanges = [IPNetwork.Parse("198.51.100.0/24")],
    };

    [Fact]
    public void Emits_default_deny_gateway_and_client_policies_with_their_rules()
    {
        var emission = new KubernetesPolicyEmitter().Emit(Example);
        var policies = emission.PlatformObjects.Cast<V1NetworkPolicy>().ToDictionary(p => p.Metadata.Name);
        Assert.Equal(["vpn-gateway-client-0", "vpn-gateway-client-1", "vpn-gateway-default-deny", "vpn-gateway-gateway"], policies.Keys.Order(StringComparer.Ordinal));
        Assert.All(policies.Values, p => Assert.Equal("vpn", p.Metadata.NamespaceProperty));
        Assert.Null(policies["vpn-gateway-default-deny"].Spec.PodSelector.MatchLabels);
        var gateway = policies["vpn-gateway-gateway"].Spec;
        Assert.Equal("198.51.100.0/24", gateway.Ingress[0].FromProperty.Single().IpBlock.Cidr);
        Assert.Equal("51820", gateway.Ingress[0].Ports.Single().Port.Value);
        Assert.Equal("5432", gateway.Ingress[1].Ports.Single().Port.Value);
        Assert.Equal("data", gateway.Ingress[1].FromProperty[1].NamespaceSelector.MatchLabels["team"]);
        Assert.Null(gateway.Ingress[1].FromProperty[0].NamespaceSelector); // own namespace only
        Assert.Equal("10.20.0.0/16", gateway.Egress[0].To.Single().IpBlock.Cidr);
        var rule = Assert.Single(emission.GatewayRules);
        Assert.Equal(IPNetwork.Parse("198.51.100.0/24"), rule.Source);
        Assert.Equal(IPNetwork.Parse("10.20.0.0/16"), rule.Destination);
    }

    [Fact]
    public void Without_default_deny_only_the_gateway_is_restricted()
    {
        var emission = new KubernetesPolicyEmitter().Emit(Example with { DefaultDeny = false });
        Assert.Equal("vpn-gateway-gateway", Assert.Single(emission.PlatformObjects.Cast<V1NetworkPolicy>()).Metadata.Name);
    }

    [Fact]
    public void Invalid_policies_fail_naming_every_field()
    {
        var bad = new AccessPolicy(
            "Vpn_Gateway",
            "vpn",
            new Dictionary<string, string>(),
            [new PolicySource(null, new Dictionary<string, string> { ["bad key!"] = "x" })],
            [new PolicyDestination(IPNetwork.Parse("10.0.0.0/8"), [new TunnelPort(70000, "TCP"), new TunnelPort(80, "tcp")])]);
        var ex = Assert.Throws<ArgumentException>(() => new KubernetesPolicyEmitter().Emit(bad));
        foreach (var named in new[] { "name:", "gatewaySelector:", "sources[0].podSelector", "destinations[0].ports[0].port", "destinations[0].ports[1].protocol" })
        {
            Assert.Contains(named, ex.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("10.0.0.0")]
    [InlineData("10.0.0.1/8")]
    [InlineData("10.0.0.0/33")]
    [InlineData("banana/8")]
    public void A_cidr_that_does_not_parse_is_named(string cidr)
    {
        var ex = Assert.Throws<ArgumentException>(() => AccessPolicyValidation.ParseCidr(cidr, "destinations[2].cidr"));
        Assert.Contains("destinations[2].cidr", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generated_policies_allow_exactly_what_the_access_policy_says()
    {
        var emitter = new KubernetesPolicyEmitter();
        var checkedCases = 0;
        var allowedCases = 0;
        for (var seed = 1; seed <= 400; seed++)
        {
            var random = new Random(seed);
            var policy = RandomPolicy(random);
            var emission = emitter.Emit(policy);
            var evaluator = new NetworkPolicyEvaluator(emission.PlatformObjects.Cast<V1NetworkPolicy>(), Namespaces);
            var gatewayPod = new Pod("vpn", Gateway, IPAddress.Parse("10.244.0.10"));
            for (var c = 0; c < 60; c++)
            {
                var (pod, target, port) = RandomCase(random, policy, c);

                var expected = Expected(policy, pod, target, port);
                var actual = evaluator.Egress(pod, target, port.Port, port.Protocol)
                    && evaluator.Ingress(gatewayPod, pod.Ip, port.Port, port.Protocol, pod)
                    && evaluator.Egress(gatewayPod, target, port.Port, port.Protocol);
                Assert.True(expected == actual, $"seed {seed} case {c}: {pod} -> {target}:{port.Port}/{port.Protocol}: policy says {(expected ? "allow" : "deny")}, NetworkPolicies {(actual ? "allow" : "deny")}\n{Describe(policy)}");
                checkedCases++;
                allowedCases += expected ? 1 : 0;

                // The gateway's own forwarding rules say the same for traffic from a VPN client.
                var tunnelClient = IPAddress.Parse(ClientAddressPool[random.Next(ClientAddressPool.Length)]);
                // (an IP packet has one family: an IPv6 client never sends to an IPv4 destination)
                var fromClientExpected = tunnelClient.AddressFamily == target.AddressFamily
                    && (policy.ClientRanges.Count == 0 || policy.ClientRanges.Any(r => r.Contains(tunnelClient)))
                    && policy.Destinations.Any(d => d.Cidr.Contains(target) && (d.Ports.Count == 0 || d.Ports.Contains(port)));
                var fromClientActual = emission.GatewayRules.Any(r => r.Source.Contains(tunnelClient) && r.Destination.Contains(target) && (r.Ports.Count == 0 || r.Ports.Contains(port)));
                Assert.True(fromClientExpected == fromClientActual, $"seed {seed} case {c}: gateway rules for {tunnelClient} -> {target}:{port.Port}/{port.Protocol}");

                // VPN clients reach the tunnel port only from the client ranges (anywhere when none are given).
                var client = IPAddress.Parse(ClientAddressPool[random.Next(ClientAddressPool.Length)]);
                var clientExpected = policy.ClientRanges.Count == 0 || policy.ClientRanges.Any(r => r.Contains(client));
                Assert.Equal(clientExpected, evaluator.Ingress(gatewayPod, client, policy.TunnelPort.Port, policy.TunnelPort.Protocol));
                Assert.False(evaluator.Ingress(gatewayPod, client, 22, "TCP") && !policy.Sources.Any() && policy.Destinations.Any(), $"seed {seed}: a client reached port 22 of the gateway");
            }
        }

        // the generator must produce both outcomes in quantity, or the property says little
        Assert.InRange(allowedCases, checkedCases / 10, checkedCases - (checkedCases / 10));
    }

    // Half the cases start from a source and a destination of the policy (then perturbed at random), so that both
    // outcomes, and the boundaries between them, are well represented.
    private static (Pod Pod, IPAddress Target, TunnelPort Port) RandomCase(Random random, AccessPolicy policy, int c)
    {
        var ns = NamespaceNames[random.Next(NamespaceNames.Length)];
        var labels = RandomLabels(random, 3);
        if (policy.Sources.Count > 0 && random.Next(2) == 0)
        {
            var source = policy.Sources[random.Next(policy.Sources.Count)];
            var fitting = NamespaceNames.Where(n => source.NamespaceSelector is null ? n == policy.Namespace : source.NamespaceSelector.All(kv => Namespaces[n].TryGetValue(kv.Key, out var v) && v == kv.Value)).ToList();
            if (fitting.Count > 0 && random.Next(4) != 0)
            {
                ns = fitting[random.Next(fitting.Count)];
            }

            foreach (var (k, v) in source.PodSelector)
            {
                labels[k] = random.Next(5) == 0 ? "other" : v;
            }
        }

        var target = IPAddress.Parse(AddressPool[random.Next(AddressPool.Length)]);
        var port = PortPool[random.Next(PortPool.Length)];
        if (policy.Destinations.Count > 0 && random.Next(2) == 0)
        {
            var destination = policy.Destinations[random.Next(policy.Destinations.Count)];
            var inside = AddressPool.Select(IPAddress.Parse).Where(destination.Cidr.Contains).ToList();
            if (inside.Count > 0)
            {
                target = inside[random.Next(inside.Count)];
            }

            if (destination.Ports.Count > 0 && random.Next(3) != 0)
            {
                port = destination.Ports[random.Next(destination.Ports.Count)];
            }
        }

        return (new Pod(ns, labels, IPAddress.Parse($"10.244.1.{c + 1}")), target, port);
    }

    private static bool Expected(AccessPolicy policy, Pod pod, IPAddress target, TunnelPort port)
    {
        var isSource = policy.Sources.Any(s =>
            (s.NamespaceSelector is null ? pod.Namespace == policy.Namespace : s.NamespaceSelector.All(kv => Namespaces[pod.Namespace].TryGetValue(kv.Key, out var v) && v == kv.Value))
            && s.PodSelector.All(kv => pod.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value));
        var reachable = policy.Destinations.Any(d => d.Cidr.Contains(target) && (d.Ports.Count == 0 || d.Ports.Contains(port)));
        return isSource && reachable;
    }

    private static AccessPolicy RandomPolicy(Random random)
    {
        var sources = Enumerable.Range(0, random.Next(0, 4)).Select(_ => new PolicySource(
            random.Next(3) switch
            {
                0 => null,
                1 => new Dictionary<string, string>(),
                _ => new Dictionary<string, string> { ["team"] = new[] { "net", "data", "web" }[random.Next(3)] },
            },
            RandomLabels(random, 2))).ToList();
        var destinations = Enumerable.Range(0, random.Next(0, 4)).Select(_ => new PolicyDestination(
            IPNetwork.Parse(CidrPool[random.Next(CidrPool.Length)]),
            PortPool.Where(_ => random.Next(3) == 0).ToList())).ToList();
        return new AccessPolicy("gw", "vpn", Gateway, sources, destinations)
        {
            DefaultDeny = random.Next(2) == 0,
            ClientRanges = [.. ClientRangePool.Where(_ => random.Next(3) == 0).Select(IPNetwork.Parse)],
        };
    }

    private static Dictionary<string, string> RandomLabels(Random random, int max)
    {
        var labels = new Dictionary<string, string>();
        for (var i = random.Next(0, max + 1); i > 0; i--)
        {
            var (k, v) = LabelPool[random.Next(LabelPool.Length)];
            labels[k] = v;
        }

        return labels;
    }

    private static string Describe(AccessPolicy p) =>
        $"defaultDeny={p.DefaultDeny} sources=[{string.Join("; ", p.Sources.Select(s => $"ns={(s.NamespaceSelector is null ? "own" : string.Join(",", s.NamespaceSelector))} pods={string.Join(",", s.PodSelector)}"))}] " +
        $"destinations=[{string.Join("; ", p.Destinations.Select(d => $"{d.Cidr} {string.Join(",", d.Ports.Select(x => $"{x.Port}/{x.Protocol}"))}"))}]";
}
