using System.Text;
using CloudVpn.KeyStores;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>The Vault key store against <see cref="FakeVaultServer"/> (a fake Vault, see its remarks) over real HTTP on loopback.</summary>
public sealed class VaultKeyStoreTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
    private readonly HttpClient _http = new() { Timeout = Timeout.InfiniteTimeSpan };
    private readonly TimeProvider _clock = TimeProvider.System;
    private FakeVaultServer _vault = null!;

    public ValueTask InitializeAsync()
    {
        _vault = new FakeVaultServer(_clock);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _vault.DisposeAsync();
    }

    [Fact]
    public async Task Put_then_get_round_trips_bytes_and_versions_grow_by_one()
    {
        var store = TokenStore();
        byte[] v1 = [1, 2, 3, 0, 255];
        byte[] v2 = [9, 8, 7];

        Assert.Equal(1, await store.PutAsync("gw/private", v1, cancellationToken: Ct));
        Assert.Equal(2, await store.PutAsync("gw/private", v2, cancellationToken: Ct));

        using var latest = await store.GetAsync("gw/private", cancellationToken: Ct);
        using var first = await store.GetAsync("gw/private", 1, Ct);
        Assert.NotNull(latest);
        Assert.Equal(2, latest.Version);
        Assert.Equal(v2, latest.Value.ToArray());
        Assert.Equal(v1, first!.Value.ToArray());
        Assert.Null(await store.GetAsync("gw/private", 3, Ct));
        Assert.Null(await store.GetAsync("absent", cancellationToken: Ct));

        // The wire format is KV v2 data {"value": base64} under the prefix.
        Assert.Equal(Convert.ToBase64String(v2), _vault.PeekData("cloudvpn/gw/private")!["value"]!.GetValue<string>());
        var kvRequests = _vault.Requests.Where(r => r.Path.StartsWith("/v1/secret/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(kvRequests);
        Assert.All(kvRequests, r => Assert.StartsWith("hvs.", r.Token));
        Assert.Contains(kvRequests, r => r.Method == "POST" && r.Path == "/v1/secret/data/cloudvpn/gw/private");
        Assert.Contains(kvRequests, r => r.Method == "GET" && r.Path == "/v1/secret/data/cloudvpn/gw/private?version=1");
    }

    [Fact]
    public async Task Cas_conflicts_report_the_version_found()
    {
        var store = TokenStore();
        Assert.Equal(1, await store.PutAsync("psk", new byte[] { 1 }, expectedVersion: 0, Ct));

        var again = await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("psk", new byte[] { 2 }, expectedVersion: 0, Ct));
        Assert.Equal(0, again.ExpectedVersion);
        Assert.Equal(1, again.ActualVersion);

        Assert.Equal(2, await store.PutAsync("psk", new byte[] { 3 }, expectedVersion: 1, Ct));
        var stale = await Assert.ThrowsAsync<KeyStoreConflictException>(async () => await store.PutAsync("psk", new byte[] { 4 }, expectedVersion: 1, Ct));
        Assert.Equal(2, stale.ActualVersion);

        using var latest = await store.GetAsync("psk", cancellationToken: Ct);
        Assert.Equal([3], latest!.Value.ToArray());
    }

    [Fact]
    public async Task Versions_are_listed_kept_to_max_versions_and_destroyed_on_request()
    {
        var store = TokenStore(o => o.MaxVersions = 3);
        for (var i = 1; i <= 5; i++)
        {
            await store.PutAsync("ca", new[] { (byte)i }, cancellationToken: Ct);
        }

        var versions = await store.ListVersionsAsync("ca", Ct);
        Assert.Equal([3L, 4L, 5L], versions.Select(v => v.Version));
        Assert.All(versions, v => Assert.True(v.CreatedAt > _clock.GetUtcNow().AddMinutes(-5)));

        Assert.Equal(2, await store.PruneAsync("ca", keep: 1, Ct));
        Assert.Equal([5L], (await store.ListVersionsAsync("ca", Ct)).Select(v => v.Version));
        Assert.Null(await store.GetAsync("ca", 3, Ct));

        Assert.True(await store.DeleteAsync("ca", Ct));
        Assert.False(await store.DeleteAsync("ca", Ct));
        Assert.Empty(await store.ListVersionsAsync("ca", Ct));
        Assert.Null(await store.GetAsync("ca", cancellationToken: Ct));
    }

    [Fact]
    public async Task A_refused_request_carries_Vaults_error_text_and_never_the_secret()
    {
        var store = TokenStore();
        _vault.Deny("/v1/secret/data/cloudvpn/locked");
        var secret = Encoding.ASCII.GetBytes("very-secret-key-material-0123456789");

        var ex = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.PutAsync("locked", secret, cancellationToken: Ct));

        Assert.Contains("403", ex.Message, StringComparison.Ordinal);
        Assert.Contains("permission denied", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(secret), ex.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("very-secret", ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Five_hundreds_are_retried_then_succeed()
    {
        var store = TokenStore();
        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        _vault.InjectedFailures.Enqueue((503, "Vault is sealed"));
        _vault.InjectedFailures.Enqueue((500, "internal error"));
        var before = _vault.Requests.Count;

        using var read = await store.GetAsync("k", cancellationToken: Ct);

        Assert.Equal([1], read!.Value.ToArray());
        Assert.Equal(3, _vault.Requests.Count - before);
    }

    [Fact]
    public async Task Persistent_five_hundreds_fail_after_the_retries_with_Vaults_text()
    {
        var store = TokenStore(o => o.MaxRetries = 2);
        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        for (var i = 0; i < 3; i++)
        {
            _vault.InjectedFailures.Enqueue((503, "Vault is sealed"));
        }

        var before = _vault.Requests.Count;
        var ex = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.GetAsync("k", cancellationToken: Ct));

        Assert.Equal(3, _vault.Requests.Count - before);
        Assert.Contains("503", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Vault is sealed", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(400, "invalid request")]
    [InlineData(403, "permission denied")]
    [InlineData(412, "required index state not present")]
    public async Task Four_hundreds_are_never_retried(int status, string error)
    {
        var store = TokenStore();
        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        _vault.InjectedFailures.Enqueue((status, error));
        var before = _vault.Requests.Count;

        var ex = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.GetAsync("k", cancellationToken: Ct));

        Assert.Equal(1, _vault.Requests.Count - before);
        Assert.Contains(error, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_timed_out_attempt_is_retried()
    {
        var store = TokenStore(o => o.AttemptTimeout = TimeSpan.FromMilliseconds(300));
        await store.PutAsync("k", new byte[] { 7 }, cancellationToken: Ct);
        _vault.InjectedDelays.Enqueue(TimeSpan.FromSeconds(3));
        var before = _vault.Requests.Count;

        using var read = await store.GetAsync("k", cancellationToken: Ct);

        Assert.Equal([7], read!.Value.ToArray());
        Assert.Equal(2, _vault.Requests.Count - before);
    }

    [Fact]
    public async Task Kubernetes_login_exchanges_the_service_account_jwt_and_a_bad_jwt_is_refused()
    {
        var jwtFile = Path.Combine(Path.GetTempPath(), $"cv-jwt-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(jwtFile, "eyJhbGciOiJSUzI1NiJ9.sa-token.sig\n", Ct);
        try
        {
            _vault.AddKubernetesRole("cloudvpn-gateway", "eyJhbGciOiJSUzI1NiJ9.sa-token.sig", TimeSpan.FromHours(1));
            var store = Store(o =>
            {
                o.AuthMethod = VaultAuthMethod.Kubernetes;
                o.KubernetesRole = "cloudvpn-gateway";
                o.KubernetesJwtPath = jwtFile;
            });

            await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
            using var read = await store.GetAsync("k", cancellationToken: Ct);
            Assert.Equal(1, _vault.LoginCount);
            Assert.Contains(_vault.Requests, r => r.Method == "POST" && r.Path == "/v1/auth/kubernetes/login" && r.Token is null);

            await File.WriteAllTextAsync(jwtFile, "someone-else", Ct);
            var other = Store(o =>
            {
                o.AuthMethod = VaultAuthMethod.Kubernetes;
                o.KubernetesRole = "cloudvpn-gateway";
                o.KubernetesJwtPath = jwtFile;
            });
            var ex = await Assert.ThrowsAsync<KeyStoreException>(async () => await other.GetAsync("k", cancellationToken: Ct));
            Assert.Contains("Kubernetes login failed", ex.Message, StringComparison.Ordinal);
            Assert.Contains("permission denied", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("someone-else", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(jwtFile);
        }
    }

    [Fact]
    public async Task AppRole_login_works_and_a_revoked_token_is_replaced_by_a_new_login()
    {
        _vault.AddAppRole("role-123", "secret-456", TimeSpan.FromHours(1));
        var store = Store(o =>
        {
            o.AuthMethod = VaultAuthMethod.AppRole;
            o.AppRoleRoleId = "role-123";
            o.AppRoleSecretId = "secret-456";
        });

        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        var token = _vault.Requests.Last(r => r.Path.StartsWith("/v1/secret/", StringComparison.Ordinal)).Token!;
        _vault.RevokeToken(token);

        using var read = await store.GetAsync("k", cancellationToken: Ct);

        Assert.Equal([1], read!.Value.ToArray());
        Assert.Equal(2, _vault.LoginCount);
        Assert.NotEqual(token, _vault.Requests.Last().Token);
    }

    [Fact]
    public async Task AppRole_with_a_wrong_secret_id_reports_Vaults_answer()
    {
        _vault.AddAppRole("role-123", "secret-456", TimeSpan.FromHours(1));
        var store = Store(o =>
        {
            o.AuthMethod = VaultAuthMethod.AppRole;
            o.AppRoleRoleId = "role-123";
            o.AppRoleSecretId = "wrong";
        });

        var ex = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.GetAsync("k", cancellationToken: Ct));
        Assert.Contains("400", ex.Message, StringComparison.Ordinal);
        Assert.Contains("invalid role or secret ID", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_token_is_renewed_before_it_expires()
    {
        var time = new FakeTimeProvider(Start);
        await using var vault = new FakeVaultServer(time);
        var token = vault.IssueToken(TimeSpan.FromHours(1), renewable: true);
        var store = new VaultKeyStore(_http, Options(vault.Address, o => o.Token = token), time);

        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        Assert.Equal(0, vault.RenewCount);

        time.Advance(TimeSpan.FromMinutes(39));
        await store.GetAsync("k", cancellationToken: Ct);
        Assert.Equal(0, vault.RenewCount);

        time.Advance(TimeSpan.FromMinutes(2)); // 41 min > 2/3 of the hour
        await store.GetAsync("k", cancellationToken: Ct);
        Assert.Equal(1, vault.RenewCount);

        // Without the renewal the token would have died at 60 min; it lives on.
        time.Advance(TimeSpan.FromMinutes(30));
        using var read = await store.GetAsync("k", cancellationToken: Ct);
        Assert.Equal([1], read!.Value.ToArray());
        Assert.Equal(1, vault.RenewCount);
    }

    [Fact]
    public async Task A_login_token_at_its_max_ttl_is_replaced_by_a_new_login()
    {
        var time = new FakeTimeProvider(Start);
        await using var vault = new FakeVaultServer(time);
        vault.AddAppRole("r", "s", TimeSpan.FromMinutes(30)); // the fake caps login tokens at 3 x ttl = 90 min
        var store = new VaultKeyStore(_http, Options(vault.Address, o =>
        {
            o.AuthMethod = VaultAuthMethod.AppRole;
            o.AppRoleRoleId = "r";
            o.AppRoleSecretId = "s";
        }), time);

        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        for (var i = 0; i < 8; i++)
        {
            time.Advance(TimeSpan.FromMinutes(21));
            using var read = await store.GetAsync("k", cancellationToken: Ct);
            Assert.NotNull(read);
            Assert.True(time.GetUtcNow() < store.TokenLease.ExpiresAt);
        }

        Assert.True(vault.RenewCount >= 2);
        Assert.True(vault.LoginCount >= 2);
    }

    [Fact]
    public async Task An_expired_static_token_says_so()
    {
        var time = new FakeTimeProvider(Start);
        await using var vault = new FakeVaultServer(time);
        var token = vault.IssueToken(TimeSpan.FromMinutes(10), renewable: false);
        var store = new VaultKeyStore(_http, Options(vault.Address, o => o.Token = token), time);
        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);

        time.Advance(TimeSpan.FromMinutes(11));

        var ex = await Assert.ThrowsAsync<KeyStoreException>(async () => await store.GetAsync("k", cancellationToken: Ct));
        Assert.Contains("expired", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(token, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_sees_writes_and_deletes_by_another_client()
    {
        var watcher = TokenStore(o => o.PollInterval = TimeSpan.FromMilliseconds(50));
        var writer = TokenStore();
        await writer.PutAsync("a/one", new byte[] { 1 }, cancellationToken: Ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        cts.CancelAfter(TimeSpan.FromSeconds(20));
        var seen = new List<KeyStoreChange>();
        var watching = Task.Run(
            async () =>
            {
                await foreach (var change in watcher.WatchAsync(cancellationToken: cts.Token))
                {
                    lock (seen)
                    {
                        seen.Add(change);
                    }
                }
            },
            Ct);

        await Task.Delay(200, Ct); // let the watch take its first snapshot
        await writer.PutAsync("a/one", new byte[] { 2 }, cancellationToken: Ct);
        await writer.PutAsync("b", new byte[] { 3 }, cancellationToken: Ct);
        await WaitUntil(() => seen.Count >= 2);
        await writer.DeleteAsync("a/one", Ct);
        await WaitUntil(() => seen.Count >= 3);
        await cts.CancelAsync();
        await watching;

        lock (seen)
        {
            Assert.Contains(new KeyStoreChange("a/one", KeyStoreChangeKind.Written, 2), seen);
            Assert.Contains(new KeyStoreChange("b", KeyStoreChangeKind.Written, 1), seen);
            Assert.Contains(new KeyStoreChange("a/one", KeyStoreChangeKind.Deleted, 0), seen);
            Assert.DoesNotContain(new KeyStoreChange("a/one", KeyStoreChangeKind.Written, 1), seen);
        }

        async Task WaitUntil(Func<bool> condition)
        {
            while (true)
            {
                lock (seen)
                {
                    if (condition())
                    {
                        return;
                    }
                }

                await Task.Delay(20, cts.Token);
            }
        }
    }

    [Fact]
    public async Task The_namespace_header_is_sent_when_configured()
    {
        var store = TokenStore(o => o.Namespace = "team-a");
        await store.PutAsync("k", new byte[] { 1 }, cancellationToken: Ct);
        Assert.NotEmpty(_vault.Requests);
        Assert.All(_vault.Requests, r => Assert.Equal("team-a", r.Namespace));
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private VaultKeyStore TokenStore(Action<VaultKeyStoreOptions>? configure = null)
    {
        var token = _vault.IssueToken(TimeSpan.FromHours(1));
        return Store(o =>
        {
            o.Token = token;
            configure?.Invoke(o);
        });
    }

    private VaultKeyStore Store(Action<VaultKeyStoreOptions> configure) => new(_http, Options(_vault.Address, configure));

    private static VaultKeyStoreOptions Options(Uri address, Action<VaultKeyStoreOptions> configure)
    {
        var options = new VaultKeyStoreOptions
        {
            Address = address,
            RetryBaseDelay = TimeSpan.FromMilliseconds(5),
            AttemptTimeout = TimeSpan.FromSeconds(5),
        };
        configure(options);
        return options;
    }
}
