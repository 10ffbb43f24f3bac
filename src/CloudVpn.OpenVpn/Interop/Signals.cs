using System.Runtime.InteropServices;

namespace CloudVpn.OpenVpn.Interop;

/// <summary>Sends POSIX signals to a child process (.NET only offers SIGKILL through Process.Kill).</summary>
internal static partial class Signals
{
    public const int SigHup = 1;
    public const int SigKill = 9;
    public const int SigUsr1 = 10;
    public const int SigUsr2 = 12;
    public const int SigTerm = 15;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when the process is gone.</summary>
    public static bool Send(int pid, int signal) => kill(pid, signal) == 0;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}
