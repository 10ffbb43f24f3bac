using System.Text.Json.Nodes;
using CloudVpn.KeyStores;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>
/// The "versions as properties" layout of <see cref="VaultKeyStore"/> (KV version N carries <c>value</c> and the newest
/// versions as <c>v{N}</c>), against <see cref="FakeVaultServer"/> (a fake Vault).
/// </summary>
public sealed class VaultKeyVersionPropertiesTests : IAsyncLifetime
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private FakeVaultServer _vault = null!;

    public ValueTask InitializeAsync()
    {
        _vault = new FakeVaultServer();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _vault.DisposeAsync();
    }

    [Fact]
    public async Task Each_version_carries_itself_and_the_previous_one_and_nothing_older()
    {
        var store = Store();
        for (byte i = 1; i <= 3; i++)
        {
            Assert.Equal(i, await store.PutAsync("gw", new byte[] { i, 0, 255 }, cancellationToken: Ct));
        }

        var data = _vault.PeekData("cloudvpn/gw")!;
        Assert.Equal(["v2", "v3", "value"], data.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal(B64(3, 0, 255), Text(data, "value"));
        Assert.Equal(B64(3, 0, 255), Text(data, "v3"));
        Assert.Equal(B64(2, 0, 255), Text(data, "v2"));
        using var first = await store.GetAsync("gw", 1, Ct);
        Assert.Equal([1, 0, 255], first!.Value.ToArray()); // older versions stay readable by version
    }

    [Fact]
    public async Task More_version_properties_carry_more_versions()
    {
        var store = Store(o => o.VersionProperties = 3);
        for (byte i = 1; i <= 4; i++)
        {
            await store.PutAsync("gw", new[] { i }, cancellationToken: Ct);
        }

        var data = _vault.PeekData("cloudvpn/gw")!;
        Assert.Equal(["v2", "v3", "v4", "value"], data.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal(B64(2), Text(data, "v2"));
    }

    [Fact]
    public async Task Zero_version_properties_keep_the_value_only_layout()
    {
        var store = Store(o => o.VersionProperties = 0);
        await store.PutAsync("gw", new byte[] { 1 }, cancellationToken: Ct);
        await store.PutAsync("gw", new byte[] { 2 }, cancellationToken: Ct);

        Assert.Equal(["value"], _vault.PeekData("cloudvpn/gw")!.Select(p => p.Key));
        Assert.DoesNotContain(_vault.Requests, r => r.Method == "GET" && r.Path.StartsWith("/v1/secret/data/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Keys_written_before_version_properties_stay_readable_and_the_next_write_carries_them()
    {
        var legacy = Store(o => o.VersionProperties = 0);
        await legacy.PutAsync("gw", new byte[] { 1 }, cancellationToken: Ct);
        await legacy.PutAsync("gw", new byte[] { 2 }, cancellationToken: Ct);

        var store = Store(o => o.VersionProperties = 3);
        using (var read = await store.GetAsync("gw", cancellationToken: Ct))
        {
            Assert.Equal([2], read!.Value.ToArray());
        }

        Assert.Equal(3, await store.PutAsync("gw", new byte[] { 3 }, expectedVersion: 2, Ct));

        var data = _vault.PeekData("cloudvpn/gw")!;
        Assert.Equal(B64(3), Text(data, "v3"));
        Assert.Equal(B64(2), Text(data, "v2")); // from version 2's value
        Assert.Equal(B64(1), Text(data, "v1")); // version 1 read by version: version 2 did not carry it
    }

    [Fact]
    public async Task A_writer_between_read_and_write_makes_the_write_read_again_so_the_carried_version_is_the_real_previous()
    {
        var store = Store();
        var other = Store();
        await store.PutAsync("gw", new byte[] { 1 }, cancellationToken: Ct);
        store.BetweenReadAndWrite = async ct => await other.PutAsync("gw", new byte[] { 2 }, cancellationToken: ct);

        Assert.Equal(3, await store.PutAsync("gw", new byte[] { 3 }, cancellationToken: Ct));

        var data = _vault.PeekData("cloudvpn/gw")!;
        Assert.Equal(B64(2), Text(data, "v2")); // not version 1, which this writer had read first
        Assert.Null(data["v1"]);
    }

    [Fact]
    public async Task With_an_expected_version_a_writer_in_between_is_a_conflict()
    {
        var store = Store();
        var other = Store();
        await store.PutAsync("gw", new byte[] { 1 }, cancellationToken: Ct);
        store.BetweenReadAndWrite = async ct => await other.PutAsync("gw", new byte[] { 2 }, cancellationToken: ct);

        var conflict = await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("gw", new byte[] { 3 }, expectedVersion: 1, Ct));

        Assert.Equal(1, conflict.ExpectedVersion);
        Assert.Equal(2, conflict.ActualVersion);
        using var latest = await store.GetAsync("gw", cancellationToken: Ct);
        Assert.Equal([2], latest!.Value.ToArray());
    }

    [Fact]
    public async Task A_deleted_newest_version_is_not_carried_and_the_write_follows_it()
    {
        var store = Store();
        await store.PutAsync("gw", new byte[] { 1 }, cancellationToken: Ct);
        await store.PutAsync("gw", new byte[] { 2 }, cancellationToken: Ct);
        using (var delete = new HttpRequestMessage(HttpMethod.Delete, new Uri(_vault.Address, "v1/secret/data/cloudvpn/gw")))
        {
            delete.Headers.Add("X-Vault-Token", _token);
            using var answer = await _http.SendAsync(delete, Ct);
            Assert.True(answer.IsSuccessStatusCode, answer.StatusCode.ToString());
        }

        Assert.Equal(3, await store.PutAsync("gw", new byte[] { 3 }, cancellationToken: Ct));

        var data = _vault.PeekData("cloudvpn/gw")!;
        Assert.Equal(["v3", "value"], data.Select(p => p.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Options_refuse_a_negative_or_huge_version_property_count()
    {
        var errors = VaultKeyStoreOptionsValidator.Collect("KeyStores:vault", new VaultKeyStoreOptions { Address = _vault.Address, Token = "t", VersionProperties = -1 });
        Assert.Contains(errors, e => e.StartsWith("KeyStores:vault:VersionProperties: -1", StringComparison.Ordinal));
        Assert.Contains(
            VaultKeyStoreOptionsValidator.Collect("x", new VaultKeyStoreOptions { Address = _vault.Address, Token = "t", VersionProperties = 11 }),
            e => e.Contains("VersionProperties: 11", StringComparison.Ordinal));
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string _token = string.Empty;

    private VaultKeyStore Store(Action<VaultKeyStoreOptions>? configure = null)
    {
        if (_token.Length == 0)
        {
            _token = _vault.IssueToken(TimeSpan.FromHours(1));
        }

        var options = new VaultKeyStoreOptions { Address = _vault.Address, Token = _token, RetryBaseDelay = TimeSpan.FromMilliseconds(5) };
        configure?.Invoke(options);
        return new VaultKeyStore(_http, options);
    }

    private static string B64(params byte[] bytes) => Convert.ToBase64String(bytes);

    private static string Text(JsonObject data, string name) => data[name]!.GetValue<string>();
}
