namespace CloudVpn.Testing;

/// <summary>
/// Waits for a condition with a deadline instead of sleeping for a fixed time: polls every 50 ms and fails the test,
/// naming what it waited for, when the deadline passes. Elapsed time comes from the monotonic clock.
/// </summary>
internal static class Eventually
{
    /// <summary>
    /// Polls <paramref name="condition"/> every <paramref name="pollMs"/> ms on this thread until it holds (true) or the
    /// deadline passes (false), for synchronous callers that decide themselves what a timeout means.
    /// </summary>
    public static bool Within(Func<bool> condition, int timeoutMs, int pollMs = 50)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            if (TimeProvider.System.GetElapsedTime(started).TotalMilliseconds > timeoutMs)
            {
                return false;
            }

            Thread.Sleep(pollMs);
        }

        return true;
    }

    public static Task HoldsAsync(Func<bool> condition, string what, int timeoutMs = 15_000, Func<string>? explain = null) =>
        HoldsAsync(() => Task.FromResult(condition()), what, timeoutMs, explain);

    /// <param name="condition">Polled until true.</param>
    /// <param name="what">What is awaited, for the failure message.</param>
    /// <param name="timeoutMs">The deadline.</param>
    /// <param name="explain">More for the failure message, computed only on failure.</param>
    public static async Task HoldsAsync(Func<Task<bool>> condition, string what, int timeoutMs = 15_000, Func<string>? explain = null)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (!await condition())
        {
            if (TimeProvider.System.GetElapsedTime(started).TotalMilliseconds > timeoutMs)
            {
                Assert.Fail($"timed out after {timeoutMs} ms waiting for {what}. {explain?.Invoke()}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Retries <paramref name="attempt"/> until it returns a value (null: not yet), and returns that value.</summary>
    public static async Task<T> ReturnsAsync<T>(Func<Task<T?>> attempt, string what, int timeoutMs = 15_000)
        where T : class
    {
        T? result = null;
        await HoldsAsync(async () => (result = await attempt()) is not null, what, timeoutMs);
        return result!;
    }
}
