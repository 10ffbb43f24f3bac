using System.Security.Cryptography;

namespace CloudVpn.OpenVpn.Supervision;

/// <summary>
/// The folder holding what a running openvpn process needs (configuration, certificates, keys, CRL, client-config
/// files, management socket): created 0700, files written atomically 0600, the whole folder deleted on dispose.
/// </summary>
internal sealed class RuntimeFolder : IDisposable
{
    private const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode FileMode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private bool _disposed;

    private RuntimeFolder(string path) => Path = path;

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>Creates a new, empty folder <c>&lt;parent&gt;/&lt;name&gt;-&lt;random&gt;</c> (0700); the parent is created 0700 when missing.</summary>
    public static RuntimeFolder Create(string parent, string name)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("The OpenVPN driver runs on Linux.");
        }

        Directory.CreateDirectory(parent, FolderMode);
        var path = System.IO.Path.Combine(parent, $"{name}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        var info = Directory.CreateDirectory(path, FolderMode);
        info.UnixFileMode = FolderMode;
        return new RuntimeFolder(path);
    }

    /// <summary>Creates a sub-folder (0700).</summary>
    public string CreateSubfolder(string name)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("The OpenVPN driver runs on Linux.");
        }

        var path = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(path, FolderMode).UnixFileMode = FolderMode;
        return path;
    }

    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/> (inside this folder) through a 0600 temporary file
    /// and a rename, so a reader (openvpn re-reading its CRL) never sees a half-written file. Returns false when the
    /// file already held exactly this content (nothing written).
    /// </summary>
    public static bool WriteAtomic(string path, ReadOnlySpan<byte> content)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("The OpenVPN driver runs on Linux.");
        }

        if (File.Exists(path))
        {
            var existing = File.ReadAllBytes(path);
            try
            {
                if (CryptographicOperations.FixedTimeEquals(existing, content))
                {
                    return false;
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(existing);
            }
        }

        var temp = $"{path}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = FileMode0600 };
        using (var stream = new FileStream(temp, options))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        return true;
    }

    /// <summary>Deletes the folder and everything in it. Calling it twice is harmless.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}
