using CloudVpn.Testing;
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

    public Task WaitForAsync(KeyStoreChange change, int timeoutSeconds = 30) =>
        Eventually.HoldsAsync(() => Seen.Contains(change), $"the watch to report {change}", timeoutSeconds * 1000, () => $"it saw: {string.Join(", ", Seen)}.");

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _drain;
        _stop.Dispose();
    }
}
