using System.Runtime.InteropServices;

namespace CloudVpn.WireGuard.Tests;

/// <summary>
/// Runs code on a fresh thread that has joined a named network namespace (setns is per thread on Linux), so an
/// in-process TUN device or socket is created inside the namespace while the test process stays outside it.
/// </summary>
internal static partial class NetnsThread
{
    private const int CloneNewNet = 0x40000000;

    public static T Run<T>(string netns, Func<T> action)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                Enter(netns);
                result = action();
            }
            catch (Exception ex)
            {
                error = ex;
            }
        });
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw new InvalidOperationException($"failed inside netns {netns}: {error.Message}", error);
        }

        return result;
    }

    private static void Enter(string netns)
    {
        using var handle = File.OpenHandle($"/var/run/netns/{netns}");
        if (setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
        {
            throw new InvalidOperationException($"setns({netns}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setns(int fd, int nstype);
}
