using System.Text;

namespace CloudVpn.Secrets.Vault;

/// <summary>Builds Vault API paths for KV version 2 and checks key ids.</summary>
internal static class VaultPaths
{
    /// <summary>True when <paramref name="path"/> is segments of [A-Za-z0-9._-] separated by single slashes, none "." or "..".</summary>
    public static bool IsValidPath(string path, out string why)
    {
        if (path.Length == 0)
        {
            why = "is empty";
            return false;
        }

        if (path.Length > 512)
        {
            why = "is longer than 512 characters";
            return false;
        }

        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0)
            {
                why = "has an empty segment (leading, trailing or doubled '/')";
                return false;
            }

            if (segment is "." or "..")
            {
                why = "has a '.' or '..' segment";
                return false;
            }

            foreach (var c in segment)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.'))
                {
                    why = $"has the character '{c}'; use letters, digits, '-', '_', '.' and '/'";
                    return false;
                }
            }
        }

        why = string.Empty;
        return true;
    }

    /// <summary>Throws when <paramref name="id"/> cannot be a key id.</summary>
    public static void ValidateId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (!IsValidPath(id, out var why))
        {
            throw new ArgumentException($"Key id '{id}' {why}.", nameof(id));
        }
    }

    /// <summary><c>v1/{mount}/{kind}/{prefix}/{id}</c> where kind is data, metadata, destroy, ...</summary>
    public static string Kv(string mount, string prefix, string kind, string? id)
    {
        var sb = new StringBuilder("v1/").Append(mount.Trim('/')).Append('/').Append(kind);
        var p = prefix.Trim('/');
        if (p.Length > 0)
        {
            sb.Append('/').Append(p);
        }

        if (id is not null)
        {
            sb.Append('/').Append(id);
        }

        return sb.ToString();
    }

    /// <summary><c>v1/auth/{mount}/{action}</c>.</summary>
    public static string Auth(string mount, string action) => $"v1/auth/{mount.Trim('/')}/{action}";
}
