using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace CloudVpn.Policy;

/// <summary>Checks an <see cref="AccessPolicy"/> against what Kubernetes accepts; every error names its field.</summary>
public static partial class AccessPolicyValidation
{
    /// <summary>Longest policy name: the emitted names add up to 13 characters (<c>-default-deny</c>).</summary>
    public const int MaxNameLength = 50;

    /// <summary>Lists every problem of <paramref name="policy"/>; empty when it is valid.</summary>
    public static IReadOnlyList<string> Validate(AccessPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var errors = new List<string>();
        if (!IsDnsLabel(policy.Name) || policy.Name.Length > MaxNameLength)
        {
            errors.Add($"name: '{policy.Name}' is not a DNS label of at most {MaxNameLength} characters (lower case letters, digits, '-')");
        }

        if (!IsDnsLabel(policy.Namespace))
        {
            errors.Add($"namespace: '{policy.Namespace}' is not a DNS label");
        }

        if (policy.GatewaySelector is null || policy.GatewaySelector.Count == 0)
        {
            errors.Add("gatewaySelector: must name at least one label (an empty selector would select every pod)");
        }
        else
        {
            CheckLabels(policy.GatewaySelector, "gatewaySelector", errors);
        }

        CheckPort(policy.TunnelPort, "tunnelPort", errors);
        for (var i = 0; i < policy.ClientRanges.Count; i++)
        {
            CheckNetwork(policy.ClientRanges[i], $"clientRanges[{i}]", errors);
        }

        for (var i = 0; i < policy.Sources.Count; i++)
        {
            var source = policy.Sources[i];
            if (source is null)
            {
                errors.Add($"sources[{i}]: is null");
                continue;
            }

            CheckLabels(source.PodSelector, $"sources[{i}].podSelector", errors);
            if (source.NamespaceSelector is not null)
            {
                CheckLabels(source.NamespaceSelector, $"sources[{i}].namespaceSelector", errors);
            }
        }

        for (var i = 0; i < policy.Destinations.Count; i++)
        {
            var destination = policy.Destinations[i];
            if (destination is null)
            {
                errors.Add($"destinations[{i}]: is null");
                continue;
            }

            CheckNetwork(destination.Cidr, $"destinations[{i}].cidr", errors);
            for (var j = 0; j < destination.Ports.Count; j++)
            {
                CheckPort(destination.Ports[j], $"destinations[{i}].ports[{j}]", errors);
            }
        }

        return errors;
    }

    /// <summary>Throws an <see cref="ArgumentException"/> listing every problem of <paramref name="policy"/>.</summary>
    public static void ThrowIfInvalid(AccessPolicy policy)
    {
        var errors = Validate(policy);
        if (errors.Count > 0)
        {
            throw new ArgumentException($"Access policy '{policy.Name}' is invalid: {string.Join("; ", errors)}", nameof(policy));
        }
    }

    /// <summary>Whether <paramref name="value"/> is an RFC 1123 label (what Kubernetes names and namespaces are).</summary>
    public static bool IsDnsLabel(string? value) => value is { Length: > 0 and <= 63 } && DnsLabel().IsMatch(value);

    /// <summary>Parses a prefix such as <c>10.0.0.0/8</c>, naming <paramref name="field"/> when it is not one.</summary>
    public static IPNetwork ParseCidr(string? value, string field)
    {
        if (string.IsNullOrWhiteSpace(value) || !value.Contains('/', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{field}: '{value}' is not a CIDR prefix (address/length)", field);
        }

        if (!IPNetwork.TryParse(value, out var network) || !IPAddress.TryParse(value.AsSpan(0, value.IndexOf('/', StringComparison.Ordinal)), out var address))
        {
            throw new ArgumentException($"{field}: '{value}' is not a CIDR prefix (address/length)", field);
        }

        if (!network.BaseAddress.Equals(address))
        {
            throw new ArgumentException($"{field}: '{value}' has host bits set (the prefix is {network})", field);
        }

        return network;
    }

    private static void CheckLabels(IReadOnlyDictionary<string, string>? labels, string field, List<string> errors)
    {
        if (labels is null)
        {
            errors.Add($"{field}: is null");
            return;
        }

        foreach (var (key, value) in labels)
        {
            var slash = key.IndexOf('/', StringComparison.Ordinal);
            var name = slash < 0 ? key : key[(slash + 1)..];
            var prefix = slash < 0 ? null : key[..slash];
            if (!IsLabelName(name) || (prefix is not null && (prefix.Length > 253 || !DnsSubdomain().IsMatch(prefix))))
            {
                errors.Add($"{field}: label key '{key}' is not a valid Kubernetes label key");
            }

            if (value is null || (value.Length > 0 && !IsLabelName(value)))
            {
                errors.Add($"{field}['{key}']: label value '{value}' is not valid (at most 63 letters, digits, '-', '_', '.')");
            }
        }
    }

    private static void CheckPort(TunnelPort? port, string field, List<string> errors)
    {
        if (port is null)
        {
            errors.Add($"{field}: is null");
            return;
        }

        if (port.Port is < 1 or > 65535)
        {
            errors.Add($"{field}.port: {port.Port.ToString(CultureInfo.InvariantCulture)} is outside 1..65535");
        }

        if (port.Protocol is not ("TCP" or "UDP" or "SCTP"))
        {
            errors.Add($"{field}.protocol: '{port.Protocol}' is not TCP, UDP or SCTP");
        }
    }

    private static void CheckNetwork(IPNetwork network, string field, List<string> errors)
    {
        if (network.BaseAddress is null)
        {
            errors.Add($"{field}: no prefix given");
        }
    }

    private static bool IsLabelName(string value) => value.Length is > 0 and <= 63 && LabelName().IsMatch(value);

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex DnsLabel();

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant)]
    private static partial Regex DnsSubdomain();

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex LabelName();
}
