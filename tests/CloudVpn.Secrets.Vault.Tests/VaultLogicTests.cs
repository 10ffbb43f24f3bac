using System.Net;
using System.Text;
using CloudVpn.KeyStores;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Timeout;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>The logic under the Vault store, without any server.</summary>
public sealed class VaultLogicTests
{
    [Theory]
    [InlineData("gw/private", true)]
    [InlineData("a.b-c_d/e", true)]
    [InlineData("", false)]
    [InlineData("/lead", false)]
    [InlineData("trail/", false)]
    [InlineData("a//b", false)]
    [InlineData("a/../b", false)]
    [InlineData("a?b", false)]
    [InlineData("sp ace", false)]
    public void Key_ids_are_path_segments_of_safe_characters(string id, bool valid) =>
        Assert.Equal(valid, VaultPaths.IsValidPath(id, out _));

    [Fact]
    public void Kv_paths_follow_the_kv2_layout()
    {
        Assert.Equal("v1/secret/data/cloudvpn/gw/private", VaultPaths.Kv("secret", "cloudvpn", "data", "gw/private"));
        Assert.Equal("v1/kv/metadata/x", VaultPaths.Kv("/kv/", string.Empty, "metadata", "x"));
        Assert.Equal("v1/secret/metadata/a/b", VaultPaths.Kv("secret", "a/b/", "metadata", null));
        Assert.Equal("v1/auth/k8s-east/login", VaultPaths.Auth("k8s-east", "login"));
    }

    [Fact]
    public void Vault_error_bodies_are_parsed_and_garbage_gives_no_text()
    {
        Assert.Equal(["permission denied", "second"], VaultAnswer.ParseErrors("{\"warnings\":null,\"errors\":[\"permission denied\",\"second\"]}"u8));
        Assert.Empty(VaultAnswer.ParseErrors("{\"errors\":[]}"u8));
        Assert.Empty(VaultAnswer.ParseErrors("<html>bad gateway</html>"u8));
        Assert.Empty(VaultAnswer.ParseErrors(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void An_error_message_names_request_status_and_text()
    {
        using var answer = new VaultAnswer("POST", "v1/secret/data/x", HttpStatusCode.Forbidden, Encoding.UTF8.GetBytes("{\"errors\":[\"permission denied\"]}"));
        var ex = answer.ToException("Writing key 'x'");
        Assert.Equal("Writing key 'x': Vault answered 403 (Forbidden) to POST /v1/secret/data/x: permission denied", ex.Message);
    }

    [Theory]
    [InlineData(HttpStatusCode.InternalServerError, true)]
    [InlineData(HttpStatusCode.BadGateway, true)]
    [InlineData(HttpStatusCode.ServiceUnavailable, true)]
    [InlineData(HttpStatusCode.BadRequest, false)]
    [InlineData(HttpStatusCode.Forbidden, false)]
    [InlineData(HttpStatusCode.NotFound, false)]
    [InlineData(HttpStatusCode.PreconditionFailed, false)]
    [InlineData(HttpStatusCode.TooManyRequests, false)]
    [InlineData(HttpStatusCode.OK, false)]
    public void Only_5xx_statuses_are_transient(HttpStatusCode status, bool transient) =>
        Assert.Equal(transient, VaultApi.IsTransient(status));

    [Fact]
    public void Timeouts_and_connection_failures_are_transient_but_the_callers_cancellation_is_not()
    {
        Assert.True(VaultApi.IsTransient(Outcome.FromException<HttpResponseMessage>(new TimeoutRejectedException()), CancellationToken.None));
        Assert.True(VaultApi.IsTransient(Outcome.FromException<HttpResponseMessage>(new HttpRequestException("refused")), CancellationToken.None));
        Assert.True(VaultApi.IsTransient(Outcome.FromException<HttpResponseMessage>(new TaskCanceledException()), CancellationToken.None));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.False(VaultApi.IsTransient(Outcome.FromException<HttpResponseMessage>(new TaskCanceledException()), cancelled.Token));
        Assert.False(VaultApi.IsTransient(Outcome.FromException<HttpResponseMessage>(new InvalidOperationException()), CancellationToken.None));
    }

    [Fact]
    public void A_lease_is_refreshed_after_the_fraction_and_a_zero_lease_never()
    {
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var lease = new VaultTokenLease(start, TimeSpan.FromHours(3), true);
        Assert.Equal(start.AddHours(2), lease.RefreshAt(2.0 / 3.0));
        Assert.False(lease.IsRefreshDue(start.AddMinutes(119), 2.0 / 3.0));
        Assert.True(lease.IsRefreshDue(start.AddMinutes(120), 2.0 / 3.0));
        Assert.Equal(start.AddHours(3), lease.ExpiresAt);

        var root = new VaultTokenLease(start, TimeSpan.Zero, false);
        Assert.False(root.IsRefreshDue(start.AddYears(10), 0.5));
        Assert.Equal(DateTimeOffset.MaxValue, root.ExpiresAt);
    }

    [Theory]
    [InlineData("2018-03-22T02:24:06.945319214Z", 2018, 3, 22, 2, 24, 6, 9453192)]
    [InlineData("2018-03-22T02:24:06Z", 2018, 3, 22, 2, 24, 6, 0)]
    [InlineData("2018-03-22T02:24:06.5+01:00", 2018, 3, 22, 1, 24, 6, 5000000)]
    public void Vault_times_with_nanoseconds_parse(string text, int y, int mo, int d, int h, int mi, int s, long fractionTicks)
    {
        var expected = new DateTimeOffset(y, mo, d, h, mi, s, TimeSpan.Zero).AddTicks(fractionTicks);
        Assert.Equal(expected, VaultKeyStore.ParseVaultTime(text));
    }

    [Fact]
    public void The_cas_mismatch_error_is_recognised()
    {
        Assert.True(VaultKeyStore.IsCasMismatch(["check-and-set parameter did not match the current version"]));
        Assert.False(VaultKeyStore.IsCasMismatch(["permission denied"]));
    }

    [Fact]
    public void Options_validation_lists_every_problem()
    {
        var options = new VaultKeyStoreOptions
        {
            Address = new Uri("ftp://vault"),
            MountPath = "a//b",
            AuthMethod = VaultAuthMethod.AppRole,
            RenewAfterFraction = 1.5,
            MaxRetries = -1,
            PollInterval = TimeSpan.Zero,
        };

        var result = new VaultKeyStoreOptionsValidator().Validate("vault", options);

        Assert.True(result.Failed);
        var failures = result.Failures!.ToList();
        Assert.Contains(failures, f => f.StartsWith("KeyStores:vault:Address:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("KeyStores:vault:MountPath:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("KeyStores:vault:AppRoleRoleId:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("KeyStores:vault:AppRoleSecretId:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("KeyStores:vault:RenewAfterFraction:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("KeyStores:vault:MaxRetries:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("KeyStores:vault:PollInterval:", StringComparison.Ordinal));
        Assert.Equal(7, failures.Count);
    }

    [Fact]
    public void Token_auth_needs_exactly_one_token_source()
    {
        var both = new VaultKeyStoreOptions { Address = new Uri("https://vault:8200"), Token = "t", TokenPath = "/x" };
        var none = new VaultKeyStoreOptions { Address = new Uri("https://vault:8200") };
        var one = new VaultKeyStoreOptions { Address = new Uri("https://vault:8200"), Token = "t" };
        Assert.True(new VaultKeyStoreOptionsValidator().Validate("v", both).Failed);
        Assert.True(new VaultKeyStoreOptionsValidator().Validate("v", none).Failed);
        Assert.True(new VaultKeyStoreOptionsValidator().Validate("v", one).Succeeded);
    }

    [Fact]
    public void AddVaultKeyStore_registers_a_keyed_store_and_bad_options_fail_with_every_error()
    {
        var services = new ServiceCollection();
        services.AddCloudVpn()
            .AddVaultKeyStore(o =>
            {
                o.Address = new Uri("https://vault.vault.svc:8200");
                o.Token = "hvs.x";
            })
            .AddVaultKeyStore(o => o.AuthMethod = VaultAuthMethod.Kubernetes, name: "broken");
        using var provider = services.BuildServiceProvider();

        Assert.IsType<VaultKeyStore>(provider.GetRequiredKeyedService<IKeyStore>("vault"));
        Assert.IsType<VaultKeyStore>(provider.GetRequiredService<IKeyStore>());
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptionsMonitor<VaultKeyStoreOptions>>().Get("broken"));
        Assert.Contains(ex.Failures, f => f.Contains("Address", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("KubernetesRole", StringComparison.Ordinal));
    }

    [Fact]
    public void AddVaultKeyStore_without_AddCloudVpn_says_what_to_do()
    {
        var builder = NSubstitute.Substitute.For<ICloudVpnBuilder>();
        NSubstitute.SubstituteExtensions.Returns(builder.Services, new ServiceCollection());
        var ex = Assert.Throws<InvalidOperationException>(() => builder.AddVaultKeyStore(o => { }));
        Assert.Contains("AddCloudVpn", ex.Message, StringComparison.Ordinal);
    }
}
