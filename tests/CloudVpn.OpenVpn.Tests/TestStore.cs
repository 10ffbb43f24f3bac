using CloudVpn.KeyStores;

namespace CloudVpn.OpenVpn.Tests;

/// <summary>A file key store in a temporary folder, removed on dispose.</summary>
internal sealed class TestStore : IDisposable
{
    public TestStore(TimeProvider? time = null)
    {
        Directory = Path.Combine(Path.GetTempPath(), "cloudvpn-ovpn-ks-" + Guid.NewGuid().ToString("N"));
        Store = new FileKeyStore(new FileKeyStoreOptions { Directory = Directory }, time);
    }

    public string Directory { get; }

    public FileKeyStore Store { get; }

    public void Dispose()
    {
        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}
