namespace CloudVpn.OpenVpn.Configuration;

/// <summary>One directive of an OpenVPN configuration: its name and arguments (quotes removed).</summary>
/// <param name="Name">The directive, for example <c>remote</c>.</param>
/// <param name="Arguments">Its arguments.</param>
/// <param name="LineNumber">1-based line it came from.</param>
public sealed record OpenVpnDirective(string Name, IReadOnlyList<string> Arguments, int LineNumber);

/// <summary>
/// An OpenVPN configuration file read back: directives in order and inline blocks (<c>&lt;ca&gt;...&lt;/ca&gt;</c>).
/// Used to check exported profiles and rendered configurations; it follows OpenVPN's quoting rules for the subset
/// we write (whitespace-separated arguments, double quotes, '#' and ';' comments).
/// </summary>
public sealed class OpenVpnConfigFile
{
    private OpenVpnConfigFile(IReadOnlyList<OpenVpnDirective> directives, IReadOnlyDictionary<string, string> inlineBlocks)
    {
        Directives = directives;
        InlineBlocks = inlineBlocks;
    }

    /// <summary>The directives, in file order.</summary>
    public IReadOnlyList<OpenVpnDirective> Directives { get; }

    /// <summary>Inline blocks by tag name (content without the tags).</summary>
    public IReadOnlyDictionary<string, string> InlineBlocks { get; }

    /// <summary>The first directive called <paramref name="name"/>, or null.</summary>
    public OpenVpnDirective? Find(string name) => Directives.FirstOrDefault(d => d.Name == name);

    /// <summary>Every directive called <paramref name="name"/>.</summary>
    public IEnumerable<OpenVpnDirective> FindAll(string name) => Directives.Where(d => d.Name == name);

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> naming the line for unclosed blocks or quotes.</summary>
    public static OpenVpnConfigFile Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var directives = new List<OpenVpnDirective>();
        var blocks = new Dictionary<string, string>(StringComparer.Ordinal);
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            if (line[0] == '<' && line[^1] == '>' && line[1] != '/')
            {
                var tag = line[1..^1];
                var close = $"</{tag}>";
                var start = i + 1;
                var end = start;
                while (end < lines.Length && lines[end].Trim() != close)
                {
                    end++;
                }

                if (end == lines.Length)
                {
                    throw new FormatException($"line {i + 1}: inline block <{tag}> is never closed.");
                }

                blocks[tag] = string.Join('\n', lines[start..end]) + "\n";
                i = end;
                continue;
            }

            var words = Split(line, i + 1);
            directives.Add(new OpenVpnDirective(words[0], words[1..], i + 1));
        }

        return new OpenVpnConfigFile(directives, blocks);
    }

    private static List<string> Split(string line, int lineNumber)
    {
        var words = new List<string>();
        var current = new System.Text.StringBuilder();
        var inQuotes = false;
        var hasWord = false;
        foreach (var c in line)
        {
            if (inQuotes)
            {
                if (c == '"')
                {
                    inQuotes = false;
                }
                else
                {
                    current.Append(c);
                }
            }
            else if (c == '"')
            {
                inQuotes = true;
                hasWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (hasWord)
                {
                    words.Add(current.ToString());
                    current.Clear();
                    hasWord = false;
                }
            }
            else if (c is '#' or ';' && !hasWord)
            {
                break;
            }
            else
            {
                current.Append(c);
                hasWord = true;
            }
        }

        if (inQuotes)
        {
            throw new FormatException($"line {lineNumber}: a quote is never closed.");
        }

        if (hasWord)
        {
            words.Add(current.ToString());
        }

        return words;
    }
}
