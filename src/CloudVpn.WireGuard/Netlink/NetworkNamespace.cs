using System.Runtime.InteropServices;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>
/// Runs a short piece of code inside another network namespace: on a dedicated thread that enters the namespace
/// (setns), so no pool thread is ever left in the wrong one. Sockets and /proc/sys/net files opened there stay
/// bound to that namespace after the thread returns.
/// </summary>
public static class NetworkNamespace
{
    /// <summary>The path of a named namespace as <c>ip netns add NAME</c> creates it.</summary>
    public static string PathOf(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return name.Contains('/', StringComparison.Ordinal) ? name : $"/run/netns/{name}";
    }

    /// <summary>Runs <paramref name="action"/> inside the namespace at <paramref name="path"/> (or named so) and returns its result.</summary>
    public static T Run<T>(string path, Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        var nsPath = PathOf(path);
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                var fd = NetlinkSyscalls.Open(nsPath, NetlinkSyscalls.ORdonly | NetlinkSyscalls.OCloexec);
                if (fd < 0)
                {
                    throw new NetlinkException($"open network namespace '{nsPath}'", Marshal.GetLastPInvokeError());
                }

                try
                {
                    if (NetlinkSyscalls.SetNs(fd, NetlinkSyscalls.CloneNewNet) != 0)
                    {
                        throw new NetlinkException($"setns('{nsPath}')", Marshal.GetLastPInvokeError());
                    }
                }
                finally
                {
                    _ = NetlinkSyscalls.Close(fd);
                }

                // This thread now lives in the other namespace and ends right after: nothing to restore.
                result = action();
            }
#pragma warning disable CA1031 // rethrown on the calling thread
            catch (Exception e)
#pragma warning restore CA1031
            {
                failure = e;
            }
        })
        {
            IsBackground = true,
            Name = "cloudvpn-netns",
        };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        return result;
    }
}
