using System.Security.Cryptography;
using System.Text;

namespace CloudVpn.Kubernetes.KeyStores;

/// <summary>Maps key ids to Secret names and checks Kubernetes name syntax.</summary>
internal static class SecretNames
{
    /// <summary>An RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.</summary>
    public static bool IsDnsLabel(string? value) =>
        !string.IsNullOrEmpty(value) && value.Length <= 63
        && value.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
        && value[0] != '-' && value[^1] != '-';

    /// <summary>A label value: empty, or at most 63 of [A-Za-z0-9-_.] with alphanumerics at both ends.</summary>
    public static bool IsLabelValue(string value) =>
        value.Length == 0
        || (value.Length <= 63
            && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
            && char.IsAsciiLetterOrDigit(value[0]) && char.IsAsciiLetterOrDigit(value[^1]));

    /// <summary>
    /// The Secret name for <paramref name="id"/>: <c>{prefix}{id}</c> when the id is already a DNS label, otherwise
    /// a lower-cased slug of it plus a hash of the exact id (so "A/b" and "a-b" never share a Secret).
    /// </summary>
    public static string ForKey(string prefix, string id)
    {
        ValidateId(id);
        var direct = prefix + id;
        if (IsDnsLabel(direct))
        {
            return direct;
        }

        var slug = new StringBuilder();
        foreach (var c in id.ToLowerInvariant())
        {
            slug.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)))[..10];
        var room = 63 - prefix.Length - hash.Length - 1;
        var body = slug.ToString().Trim('-');
        if (body.Length > room)
        {
            body = body[..room].TrimEnd('-');
        }

        return body.Length == 0 ? $"{prefix}{hash}" : $"{prefix}{body}-{hash}";
    }

    /// <summary>Key ids: 1 to 200 characters of [A-Za-z0-9._/-].</summary>
    public static void ValidateId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (id.Length is 0 or > 200 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/'))
        {
            throw new ArgumentException($"Key id '{id}' must be 1 to 200 characters of letters, digits, '-', '_', '.', '/'.", nameof(id));
        }
    }
}
