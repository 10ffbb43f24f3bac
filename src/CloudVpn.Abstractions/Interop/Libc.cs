using System.Runtime.InteropServices;

namespace CloudVpn.Interop;

/// <summary>The few libc calls the file key store needs that .NET does not expose (directory fsync).</summary>
internal static partial class Libc
{
    private const int ORdonly = 0;
    private const int ODirectory = 0x10000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    /// <summary>Flushes a directory's entries (a rename or unlink inside it) to disk. Best effort off Linux.</summary>
    public static void FsyncDirectory(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fd = open(path, ORdonly | ODirectory);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory '{path}' to flush it: errno {Marshal.GetLastPInvokeError()}.");
        }

        try
        {
            if (fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{path}' failed: errno {Marshal.GetLastPInvokeError()}.");
            }
        }
        finally
        {
            _ = close(fd);
        }
    }
}
