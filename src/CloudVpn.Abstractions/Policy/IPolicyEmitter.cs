using System.Net;

namespace CloudVpn.Policy;

/// <summary>Turns one <see cref="AccessPolicy"/> into the objects a platform enforces it with.</summary>
public interface IPolicyEmitter
{
    /// <summary>The platform the objects are for, for example <c>kubernetes</c>.</summary>
    string Platform { get; }

    /// <summary>Emits the platform objects and the gateway's own forwarding rules for <paramref name="policy"/>.</summary>
    /// <exception cref="ArgumentException">The policy is invalid; the message names the field.</exception>
    PolicyEmission Emit(AccessPolicy policy);
}

/// <summary>
/// Who may use a gateway and what they may reach: pods matching <see cref="Sources"/> may reach
/// <see cref="Destinations"/> through the gateway; nothing else may.
/// </summary>
/// <param name="Name">Policy name (DNS label); used to name emitted objects.</param>
/// <param name="Namespace">Namespace the gateway runs in.</param>
/// <param name="GatewaySelector">Labels of the gateway pods.</param>
/// <param name="Sources">Who may use the tunnel.</param>
/// <param name="Destinations">What they may reach through it.</param>
public sealed record AccessPolicy(
    string Name,
    string Namespace,
    IReadOnlyDictionary<string, string> GatewaySelector,
    IReadOnlyList<PolicySource> Sources,
    IReadOnlyList<PolicyDestination> Destinations)
{
    /// <summary>The tunnel's own port and protocol on the gateway (clients reach it there).</summary>
    public TunnelPort TunnelPort { get; init; } = new(51820, "UDP");

    /// <summary>Address ranges of VPN clients, allowed into the gateway on the tunnel port; empty: from anywhere.</summary>
    public IReadOnlyList<IPNetwork> ClientRanges { get; init; } = [];

    /// <summary>
    /// Whether everything in the gateway's namespace that the policy does not allow is denied (a default-deny
    /// policy, plus egress grants for the sources in that namespace).
    /// </summary>
    public bool DefaultDeny { get; init; } = true;
}

/// <summary>Pods allowed to use the gateway: a namespace selector and a pod selector (both must match).</summary>
/// <param name="NamespaceSelector">Namespace labels; empty matches every namespace, null means the gateway's own namespace only.</param>
/// <param name="PodSelector">Pod labels; empty matches every pod.</param>
public sealed record PolicySource(IReadOnlyDictionary<string, string>? NamespaceSelector, IReadOnlyDictionary<string, string> PodSelector);

/// <summary>A network reachable through the tunnel, optionally limited to ports.</summary>
/// <param name="Cidr">The destination prefix.</param>
/// <param name="Ports">Allowed ports; empty allows all.</param>
public sealed record PolicyDestination(IPNetwork Cidr, IReadOnlyList<TunnelPort> Ports);

/// <summary>A port and protocol (TCP, UDP or SCTP).</summary>
/// <param name="Port">Port number.</param>
/// <param name="Protocol">Protocol name in upper case.</param>
public sealed record TunnelPort(int Port, string Protocol);

/// <summary>The result of emitting a policy.</summary>
/// <param name="PlatformObjects">Objects for the platform (for Kubernetes: typed NetworkPolicy models).</param>
/// <param name="GatewayRules">Forwarding rules for the gateway itself.</param>
public sealed record PolicyEmission(IReadOnlyList<object> PlatformObjects, IReadOnlyList<GatewayRule> GatewayRules);

/// <summary>A forwarding rule the gateway enforces: traffic from <see cref="Source"/> to <see cref="Destination"/> is allowed.</summary>
/// <param name="Source">Source prefix (tunnel clients).</param>
/// <param name="Destination">Destination prefix.</param>
/// <param name="Ports">Allowed ports; empty allows all.</param>
public sealed record GatewayRule(IPNetwork Source, IPNetwork Destination, IReadOnlyList<TunnelPort> Ports);
