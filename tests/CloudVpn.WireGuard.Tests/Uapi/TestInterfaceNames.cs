namespace CloudVpn.WireGuard.Tests.Uapi;

/// <summary>Interface names unique across test classes and concurrent test processes on one machine (max 15 chars).</summary>
internal static class TestInterfaceNames
{
    private static int s_counter;

    public static string Next(string prefix) => $"{prefix}{Environment.ProcessId % 100000}x{Interlocked.Increment(ref s_counter)}";
}
