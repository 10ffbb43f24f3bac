namespace CloudVpn;

/// <summary>
/// What backends registered through the builder, recorded at registration time so that options validation
/// can name what exists without building drivers. A singleton instance lives in the service collection.
/// </summary>
public sealed class CloudVpnRegistry
{
    private readonly List<(string Name, string Family)> _drivers = [];
    private readonly List<string> _keyStores = [];

    /// <summary>Drivers registered, as (name, family).</summary>
    public IReadOnlyList<(string Name, string Family)> DriverTypes => _drivers;

    /// <summary>The store registered with <c>isDefault: true</c>, if any.</summary>
    public string? DefaultKeyStore { get; set; }

    /// <summary>Names of the key stores registered, in registration order.</summary>
    public IReadOnlyList<string> KeyStoreNames => _keyStores;

    /// <summary>Driver names and families, for messages.</summary>
    public IEnumerable<string> DriverNamesAndFamilies => _drivers.Select(d => d.Family).Concat(_drivers.Select(d => d.Name)).Distinct(StringComparer.Ordinal);

    /// <summary>Records a driver; registering the same name twice is ignored.</summary>
    public void AddDriver(string name, string family)
    {
        if (!_drivers.Any(d => d.Name == name))
        {
            _drivers.Add((name, family));
        }
    }

    /// <summary>Records a key store name; returns false when the name is taken.</summary>
    public bool AddKeyStore(string name)
    {
        if (_keyStores.Contains(name, StringComparer.Ordinal))
        {
            return false;
        }

        _keyStores.Add(name);
        return true;
    }

    /// <summary>True when <paramref name="nameOrFamily"/> names a registered driver or family.</summary>
    public bool KnowsDriver(string nameOrFamily) =>
        _drivers.Any(d => string.Equals(d.Name, nameOrFamily, StringComparison.OrdinalIgnoreCase) || string.Equals(d.Family, nameOrFamily, StringComparison.OrdinalIgnoreCase));
}
