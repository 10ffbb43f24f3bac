using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using CloudVpn.KeyStores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.Abstractions.Tests;

public sealed class FileKeyStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cloudvpn-fks-" + Guid.NewGuid().ToString("N"));
    private readonly FakeLogCollector _logs = new();

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private FileKeyStore NewStore(int maxVersions = 10, TimeProvider? time = null, TimeSpan? poll = null) =>
        new(
            new FileKeyStoreOptions { Directory = _dir, MaxVersions = maxVersions, PollInterval = poll ?? TimeSpan.FromMilliseconds(50) },
            time,
            new FakeLogger<FileKeyStore>(_logs));

    [Fact]
    public async Task Versions_grow_and_each_can_be_read_back()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero));
        var store = NewStore(time: time);

        Assert.Null(await store.GetAsync("gateway/private"));
        Assert.Equal(1, await store.PutAsync("gateway/private", "one"u8.ToArray()));
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(2, await store.PutAsync("gateway/private", "two"u8.ToArray()));

        using var latest = await store.GetAsync("gateway/private");
        using var first = await store.GetAsync("gateway/private", 1);
        Assert.Equal("two", Encoding.UTF8.GetString(latest!.Value));
        Assert.Equal(2, latest.Version);
        Assert.Equal(time.GetUtcNow(), latest.CreatedAt);
        Assert.Equal("one", Encoding.UTF8.GetString(first!.Value));
        Assert.Null(await store.GetAsync("gateway/private", 3));

        var versions = await store.ListVersionsAsync("gateway/private");
        Assert.Equal([1L, 2L], versions.Select(v => v.Version));
        Assert.Equal(TimeSpan.FromHours(1), versions[1].CreatedAt - versions[0].CreatedAt);
    }

    [Fact]
    public async Task Compare_and_swap_refuses_a_stale_expected_version()
    {
        var store = NewStore();
        Assert.Equal(1, await store.PutAsync("psk", new byte[] { 1 }, expectedVersion: 0));

        var stale = await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("psk", new byte[] { 2 }, expectedVersion: 0));
        Assert.Equal(0, stale.ExpectedVersion);
        Assert.Equal(1, stale.ActualVersion);

        Assert.Equal(2, await store.PutAsync("psk", new byte[] { 3 }, expectedVersion: 1));
        await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("psk", new byte[] { 4 }, expectedVersion: 1));
        using var latest = await store.GetAsync("psk");
        Assert.Equal([3], latest!.Value.ToArray());
    }

    [Fact]
    public async Task Old_versions_are_pruned_to_the_configured_count()
    {
        var store = NewStore(maxVersions: 3);
        for (var i = 1; i <= 7; i++)
        {
            await store.PutAsync("k", new[] { (byte)i });
        }

        Assert.Equal([5L, 6L, 7L], (await store.ListVersionsAsync("k")).Select(v => v.Version));
        Assert.Null(await store.GetAsync("k", 4));
        Assert.Equal(8, await store.PutAsync("k", new byte[] { 8 }, expectedVersion: 7));
    }

    [Fact]
    public async Task Folder_is_0700_and_files_are_0600()
    {
        Directory.CreateDirectory(_dir);
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101); // 0755: the store must tighten it
        var store = NewStore();
        await store.PutAsync("gw", new byte[32]);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dir));
        foreach (var folder in Directory.EnumerateDirectories(_dir))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(folder));
            foreach (var file in Directory.EnumerateFiles(folder))
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            }
        }
    }

    [Fact]
    public async Task Secret_never_appears_in_logs_exceptions_or_ToString()
    {
        var store = NewStore();
        var secret = RandomNumberGenerator.GetBytes(32);
        var renderings = new[] { Convert.ToBase64String(secret), Convert.ToHexString(secret), Convert.ToHexStringLower(secret) };
        await store.PutAsync("gw", secret);
        using var read = await store.GetAsync("gw");

        // damage the file so an error is raised while the secret's bytes are on hand
        var file = Directory.EnumerateFiles(Directory.EnumerateDirectories(_dir).Single(), "v*.key").Single();
        var bytes = File.ReadAllBytes(file);
        bytes[20] ^= 0xFF;
        File.WriteAllBytes(file, bytes);
        var ex = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.GetAsync("gw"));
        Assert.Contains("damaged", ex.Message, StringComparison.Ordinal);

        var texts = _logs.GetSnapshot().Select(r => r.Message).Append(ex.ToString()).Append(read!.ToString()).ToList();
        Assert.Contains(texts, t => t.Contains("written", StringComparison.Ordinal));
        foreach (var text in texts)
        {
            foreach (var rendering in renderings)
            {
                Assert.DoesNotContain(rendering, text, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Disposed_secret_is_zeroed()
    {
        var store = NewStore();
        await store.PutAsync("gw", new byte[] { 9, 9, 9 });
        var read = await store.GetAsync("gw");
        read!.Dispose();
        Assert.Throws<ObjectDisposedException>(() => read.Value.ToArray());
    }

    [Fact]
    public async Task Delete_removes_every_version()
    {
        var store = NewStore();
        await store.PutAsync("a", new byte[] { 1 });
        await store.PutAsync("a", new byte[] { 2 });

        Assert.True(await store.DeleteAsync("a"));
        Assert.False(await store.DeleteAsync("a"));
        Assert.Null(await store.GetAsync("a"));
        Assert.Empty(await store.ListVersionsAsync("a"));
        Assert.Equal(1, await store.PutAsync("a", new byte[] { 3 }, expectedVersion: 0));
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData("peer:alice@example")]
    public void Ids_map_to_names_inside_the_folder_and_back(string id)
    {
        if (id.Length == 0)
        {
            Assert.Throws<ArgumentException>(() => FileKeyStore.EncodeId(id));
            return;
        }

        var name = FileKeyStore.EncodeId(id);
        Assert.DoesNotContain('/', name);
        Assert.NotEqual(".", name);
        Assert.NotEqual("..", name);
        Assert.False(name.StartsWith('.'));
        Assert.Equal(id, FileKeyStore.DecodeId(name));
    }

    [Fact]
    public async Task Watch_reports_writes_and_deletes_from_this_and_another_instance()
    {
        var store = NewStore();
        var other = NewStore();
        await store.PutAsync("before", new byte[] { 1 });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var seen = new List<KeyStoreChange>();
        var watch = Task.Run(async () =>
        {
            await foreach (var change in store.WatchAsync(cancellationToken: cts.Token))
            {
                lock (seen)
                {
                    seen.Add(change);
                }

                if (change.Kind == KeyStoreChangeKind.Deleted)
                {
                    break;
                }
            }
        });

        await Task.Delay(200);
        await store.PutAsync("gw", new byte[] { 1 });
        await WaitForAsync(() => seen.Count >= 1, cts.Token);
        await other.PutAsync("gw", new byte[] { 2 }); // another instance: seen by polling
        await WaitForAsync(() => seen.Count >= 2, cts.Token);
        await other.DeleteAsync("gw");
        await watch.WaitAsync(cts.Token);

        Assert.Equal(
            [new KeyStoreChange("gw", KeyStoreChangeKind.Written, 1), new KeyStoreChange("gw", KeyStoreChangeKind.Written, 2), new KeyStoreChange("gw", KeyStoreChangeKind.Deleted, 0)],
            seen);
    }

    [Fact]
    public async Task Watch_of_one_id_is_driven_by_the_time_provider_for_foreign_writes()
    {
        var time = new FakeTimeProvider();
        var store = NewStore(time: time, poll: TimeSpan.FromSeconds(5));
        var other = NewStore();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var changes = store.WatchAsync("gw", cts.Token).GetAsyncEnumerator(cts.Token);
        var next = changes.MoveNextAsync().AsTask();

        await other.PutAsync("unrelated", new byte[] { 1 });
        await other.PutAsync("gw", new byte[] { 1 });
        await Task.Delay(100, cts.Token);
        Assert.False(next.IsCompleted); // not polled yet: the fake clock has not moved

        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(await next.WaitAsync(cts.Token));
        Assert.Equal(new KeyStoreChange("gw", KeyStoreChangeKind.Written, 1), changes.Current);
    }

    private static async Task WaitForAsync(Func<bool> condition, CancellationToken ct)
    {
        while (!condition())
        {
            await Task.Delay(20, ct);
        }
    }
}
