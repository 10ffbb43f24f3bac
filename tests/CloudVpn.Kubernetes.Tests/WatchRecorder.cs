using CloudVpn.KeyStores;

namespace CloudVpn.Kubernetes.Tests;

/// <summary>Drains a key store watch in the background and lets a test wait for a given change.</summary>
internal sealed class WatchRecorder : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<KeyStoreChange> _seen = [];
    private readonly Task _drain;

    public WatchRecorder(IAsyncEnumerable<KeyStoreChange> watch)
    {
        _drain = Task.Run(async () =>
        {
            try
            {
                await foreach (var change in watch.WithCancellation(_stop.Token))
                {
                    lock (_seen)
                    {
                        _seen.Add(change);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
    }

    public IReadOnlyList<KeyStoreChange> Seen
    {
        get
        {
            lock (_seen)
            {
                return [.. _seen];
            }
        }
    }

    public async Task WaitForAsync(KeyStoreChange change, int timeoutSeconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (!Seen.Contains(change))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The watch did not report {change} within {timeoutSeconds} s; it saw: {string.Join(", ", Seen)}.");
            }

            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _drain;
        _stop.Dispose();
    }
}
