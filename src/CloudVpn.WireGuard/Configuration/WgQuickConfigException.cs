namespace CloudVpn.WireGuard.Configuration;

/// <summary>A wg-quick configuration file is malformed: names the line, the key (when one applies) and the problem.</summary>
public sealed class WgQuickConfigException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public WgQuickConfigException()
        : this(0, null, "invalid configuration")
    {
    }

    /// <summary>Creates the exception with only a problem text.</summary>
    public WgQuickConfigException(string message)
        : this(0, null, message)
    {
    }

    /// <summary>Creates the exception with only a problem text and a cause.</summary>
    public WgQuickConfigException(string message, Exception innerException)
        : base(message, innerException)
    {
        Problem = message;
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="lineNumber">1-based line number (0 when the problem is not on one line).</param>
    /// <param name="key">The key as written in the file, or null for a line without key.</param>
    /// <param name="problem">What is wrong; never contains key material.</param>
    public WgQuickConfigException(int lineNumber, string? key, string problem)
        : base(Format(lineNumber, key, problem))
    {
        LineNumber = lineNumber;
        Key = key;
        Problem = problem;
    }

    /// <summary>1-based line number of the problem (0 when it is not on one line).</summary>
    public int LineNumber { get; }

    /// <summary>The key as written in the file, or null when the problem is not about one key.</summary>
    public string? Key { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; } = string.Empty;

    private static string Format(int lineNumber, string? key, string problem)
    {
        var where = lineNumber > 0 ? $"line {lineNumber}: " : string.Empty;
        return key is null ? $"{where}{problem}" : $"{where}{key}: {problem}";
    }
}
