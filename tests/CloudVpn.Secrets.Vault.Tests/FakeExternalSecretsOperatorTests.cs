using System.Text;
using CloudVpn.Kubernetes.CustomResources;
using CloudVpn.Kubernetes.KeyStores;
using ExternalSecretsApi = CloudVpn.Secrets.Vault.ExternalSecrets.ExternalSecretsApi;
using ExternalSecretsVaultAuth = CloudVpn.Secrets.Vault.ExternalSecrets.ExternalSecretsVaultAuth;
using KubernetesKeyStoreTarget = CloudVpn.Secrets.Vault.ExternalSecrets.KubernetesKeyStoreTarget;
using k8s;
using k8s.Autorest;
using k8s.Models;
using NSubstitute;
using EsoExternalSecret = CloudVpn.Kubernetes.CustomResources.ExternalSecret;

namespace CloudVpn.Secrets.Vault.Tests;

/// <summary>
/// <see cref="FakeExternalSecretsOperator"/> (a fake ESO) on its own: ESO's documented Vault path rule, remoteRef
/// versions, decoding strategies and failures; and the emitter's ExternalSecret rendered after a rotation and read by
/// the gateway's Kubernetes Secret key store without an API server (the end-to-end tests use a real one).
/// </summary>
public sealed class FakeExternalSecretsOperatorTests : IAsyncLifetime
{
    private const string EsoJwt = "eyJhbGciOiJSUzI1NiJ9.eso.sig";
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private FakeVaultServer _vault = null!;
    private VaultKeyStoreOptions _options = null!;
    private VaultKeyStore _store = null!;
    private ExternalSecrets.SecretStore _secretStore = null!;
    private FakeExternalSecretsOperator _eso = null!;

    public ValueTask InitializeAsync()
    {
        _vault = new FakeVaultServer();
        _vault.AddKubernetesRole("eso-reader", EsoJwt, TimeSpan.FromHours(1));
        _options = new VaultKeyStoreOptions { Address = _vault.Address, Token = _vault.IssueToken(TimeSpan.FromHours(1)) };
        _store = new VaultKeyStore(_http, _options);
        _secretStore = ExternalSecretsApi.SecretStoreFor(_options, "vault", "vpn", new ExternalSecretsVaultAuth.Kubernetes("eso-reader", "external-secrets"));
        _eso = new FakeExternalSecretsOperator(_http, Substitute.For<IKubernetes>(), _ => EsoJwt);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _vault.DisposeAsync();
    }

    [Theory]
    [InlineData("secret", "cloudvpn/gw", "secret/data/cloudvpn/gw")]
    [InlineData("secret", "secret/cloudvpn/gw", "secret/data/cloudvpn/gw")]
    [InlineData("secret", "secret/data/cloudvpn/gw", "secret/data/cloudvpn/gw")]
    [InlineData(null, "secret/cloudvpn/gw", "secret/data/cloudvpn/gw")]
    public void Vault_paths_follow_esos_mount_rule(string? mount, string key, string expected) =>
        Assert.Equal(expected, FakeExternalSecretsOperator.DataPath(mount, key));

    [Fact]
    public async Task The_emitted_ExternalSecret_after_a_rotation_is_read_by_the_gateway_store_as_current_and_previous()
    {
        byte[] k1 = [0, 1, 2, 251, 252, 253, 254, 255];
        byte[] k2 = [.. Enumerable.Range(0, 32).Select(i => (byte)(i * 31))];
        await _store.PutAsync("gw/private", k1, expectedVersion: 0, Ct);
        await _store.PutAsync("gw/private", k2, expectedVersion: 1, Ct);
        var target = new KubernetesKeyStoreTarget("gateway", "vpn-gw", "cloudvpn-key-");
        var external = Strict(ExternalSecretsApi.ExternalSecretFor(_options, _secretStore, "gw/private", target));

        var secret = await _eso.RenderAsync(external, _secretStore, "vpn", Ct);

        Assert.Equal("cloudvpn-key-gateway", secret.Metadata.Name);
        Assert.Equal(["v1", "v2", "value"], secret.Data.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("ExternalSecret", Assert.Single(secret.Metadata.OwnerReferences).Kind);

        // As the API server would store and return it.
        var stored = KubernetesJson.Deserialize<V1Secret>(KubernetesJson.Serialize(secret));
        var client = Substitute.For<IKubernetes>();
        client.CoreV1.ReadNamespacedSecretWithHttpMessagesAsync("cloudvpn-key-gateway", "vpn", Arg.Any<bool?>(), Arg.Any<IReadOnlyDictionary<string, IReadOnlyList<string>>>(), Arg.Any<CancellationToken>())
            .Returns(_ => new HttpOperationResponse<V1Secret> { Body = KubernetesJson.Deserialize<V1Secret>(KubernetesJson.Serialize(stored)) });
        var gateway = new KubernetesSecretKeyStore(client, new KubernetesSecretKeyStoreOptions { Namespace = "vpn", NamePrefix = target.NamePrefix, StoreLabel = target.StoreLabel });

        using var current = await gateway.GetAsync("gateway", cancellationToken: Ct);
        using var previous = await gateway.GetAsync("gateway", 1, Ct);
        Assert.Equal(2, current!.Version);
        Assert.Equal(k2, current.Value.ToArray());
        Assert.Equal(k1, previous!.Value.ToArray());
        Assert.Equal([1L, 2L], (await gateway.ListVersionsAsync("gateway", Ct)).Select(v => v.Version));
    }

    [Fact]
    public async Task A_data_entry_reads_one_property_of_one_version_and_decodes_it()
    {
        await _store.PutAsync("psk", new byte[] { 1, 2, 3 }, cancellationToken: Ct);
        await _store.PutAsync("psk", new byte[] { 4, 5 }, cancellationToken: Ct);

        var secret = await _eso.RenderAsync(External(data: [Entry("old", "cloudvpn/psk", "value", version: "1", decoding: "Base64"), Entry("raw", "cloudvpn/psk", "value", version: null, decoding: null)]), _secretStore, "vpn", Ct);

        Assert.Equal([1, 2, 3], secret.Data["old"]);
        Assert.Equal(Convert.ToBase64String([4, 5]), Encoding.ASCII.GetString(secret.Data["raw"])); // None keeps the text
        Assert.Equal("Opaque", secret.Type);
    }

    [Fact]
    public async Task Decoding_fails_the_sync_for_Base64_and_falls_back_for_Auto()
    {
        using (var put = new HttpRequestMessage(HttpMethod.Post, new Uri(_vault.Address, "v1/secret/data/cloudvpn/mixed")))
        {
            put.Headers.Add("X-Vault-Token", _options.Token);
            put.Content = new StringContent("""{"data":{"plain":"not base64!","encoded":"aGk="}}""", Encoding.UTF8, "application/json");
            using var answer = await _http.SendAsync(put, Ct);
            Assert.True(answer.IsSuccessStatusCode);
        }

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => _eso.RenderAsync(External(extract: ("cloudvpn/mixed", "Base64")), _secretStore, "vpn", Ct));
        Assert.Contains("property 'plain'", failure.Message, StringComparison.Ordinal);

        var auto = await _eso.RenderAsync(External(extract: ("cloudvpn/mixed", "Auto")), _secretStore, "vpn", Ct);
        Assert.Equal("not base64!", Encoding.ASCII.GetString(auto.Data["plain"]));
        Assert.Equal("hi", Encoding.ASCII.GetString(auto.Data["encoded"]));
    }

    [Fact]
    public async Task A_destroyed_version_or_a_missing_key_fails_the_sync()
    {
        await _store.PutAsync("psk", new byte[] { 1 }, cancellationToken: Ct);
        await _store.PutAsync("psk", new byte[] { 2 }, cancellationToken: Ct);
        await _store.PutAsync("psk", new byte[] { 3 }, cancellationToken: Ct);
        await _store.PruneAsync("psk", keep: 2, Ct);

        var destroyed = await Assert.ThrowsAsync<InvalidOperationException>(() => _eso.RenderAsync(External(data: [Entry("v1", "cloudvpn/psk", "value", "1", "Base64")]), _secretStore, "vpn", Ct));
        Assert.Contains("version 1", destroyed.Message, StringComparison.Ordinal);
        var missing = await Assert.ThrowsAsync<InvalidOperationException>(() => _eso.RenderAsync(External(extract: ("cloudvpn/absent", "Base64")), _secretStore, "vpn", Ct));
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static EsoExternalSecret Strict(ExternalSecrets.ExternalSecret emitted) =>
        KubernetesJson.Deserialize<EsoExternalSecret>(KubernetesJson.Serialize(emitted));

    private static ExternalSecretData Entry(string secretKey, string key, string property, string? version, string? decoding) => new()
    {
        SecretKey = secretKey,
        RemoteRef = new ExternalSecretDataRemoteRef { Key = key, Property = property, Version = version, DecodingStrategy = decoding },
    };

    private static EsoExternalSecret External(IList<ExternalSecretData>? data = null, (string Key, string Decoding)? extract = null) => new()
    {
        Metadata = new V1ObjectMeta { Name = "test" },
        Spec = new ExternalSecretSpec
        {
            SecretStoreRef = new ExternalSecretStoreRef { Name = "vault", Kind = "SecretStore" },
            Target = new ExternalSecretTarget { Name = "test" },
            Data = data,
            DataFrom = extract is { } e ? [new ExternalSecretDataFromSource { Extract = new ExternalSecretDataRemoteRef { Key = e.Key, DecodingStrategy = e.Decoding } }] : null,
        },
    };
}
