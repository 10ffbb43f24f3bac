using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudVpn.Abstractions.Tests;

public sealed class RegistrationTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cloudvpn-reg-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void AddCloudVpn_twice_registers_core_services_once_and_keeps_both_configurations()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddCloudVpn(o => o.Driver = "openvpn");
        services.AddCloudVpn(o => o.DefaultKeyStore = null);

        Assert.Single(services, d => d.ServiceType == typeof(ITunnelDriverSelector));
        Assert.Single(services, d => d.ServiceType == typeof(IKeyStoreProvider));
        Assert.Single(services, d => d.ServiceType == typeof(CloudVpnRegistry));
        Assert.Single(services, d => d.ServiceType == typeof(IValidateOptions<CloudVpnOptions>));

        using var sp = services.BuildServiceProvider();
        Assert.Equal("openvpn", sp.GetRequiredService<IOptions<CloudVpnOptions>>().Value.Driver);
    }

    [Fact]
    public void Backend_registration_without_AddCloudVpn_fails_with_a_clear_message()
    {
        var builder = new BareBuilder(new ServiceCollection());

        var ex = Assert.Throws<InvalidOperationException>(() => builder.AddFileKeyStore(_dir));

        Assert.Contains("AddFileKeyStore()", ex.Message, StringComparison.Ordinal);
        Assert.Contains("services.AddCloudVpn()", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Same_key_store_registered_twice_is_registered_once()
    {
        var services = new ServiceCollection();
        services.AddCloudVpn().AddFileKeyStore(_dir).AddFileKeyStore(_dir);

        Assert.Single(services, d => d.ServiceType == typeof(IKeyStore) && d.IsKeyedService);
    }

    [Fact]
    public void Options_validation_at_start_lists_every_error()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddCloudVpn(o =>
        {
            o.Driver = "ipsec";
            o.DefaultKeyStore = "vault";
        })
        .AddTunnelDriver<FakeDrivers.UserspaceDriver>("wireguard-userspace", "wireguard")
        .AddFileKeyStore("relative/path", configure: o => o.MaxVersions = 0);

        using var sp = services.BuildServiceProvider();
        // several option types fail: the host gets them all at once, one AggregateException of OptionsValidationExceptions
        var ex = Assert.Throws<AggregateException>(() => sp.GetRequiredService<IStartupValidator>().Validate());
        var all = string.Join("\n", ex.InnerExceptions.OfType<OptionsValidationException>().SelectMany(e => e.Failures));

        Assert.Contains("CloudVpn:Driver: 'ipsec' is neither a registered driver nor a family", all, StringComparison.Ordinal);
        Assert.Contains("CloudVpn:DefaultKeyStore: no key store is named 'vault'", all, StringComparison.Ordinal);
        Assert.Contains("KeyStores:file:Directory: 'relative/path' is not an absolute path", all, StringComparison.Ordinal);
        Assert.Contains("KeyStores:file:MaxVersions: 0 is below 1", all, StringComparison.Ordinal);
    }

    [Fact]
    public void Valid_options_pass_start_validation()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddCloudVpn()
            .AddTunnelDriver<FakeDrivers.UserspaceDriver>("wireguard-userspace", "wireguard")
            .AddFileKeyStore(_dir);

        using var sp = services.BuildServiceProvider();
        sp.GetRequiredService<IStartupValidator>().Validate();
    }

    [Fact]
    public void First_key_store_is_the_default_unless_another_is_flagged_or_configured()
    {
        var a = Path.Combine(_dir, "a");
        var b = Path.Combine(_dir, "b");

        using (var sp = Build(s => s.AddCloudVpn().AddFileKeyStore(a, "a").AddFileKeyStore(b, "b")))
        {
            Assert.Equal(a, ((FileKeyStore)sp.GetRequiredService<IKeyStore>()).RootDirectory);
            Assert.Equal(b, ((FileKeyStore)sp.GetRequiredKeyedService<IKeyStore>("b")).RootDirectory);
        }

        using (var sp = Build(s => s.AddCloudVpn().AddFileKeyStore(a, "a").AddFileKeyStore(b, "b", isDefault: true)))
        {
            Assert.Equal(b, ((FileKeyStore)sp.GetRequiredService<IKeyStore>()).RootDirectory);
        }

        using (var sp = Build(s => s.AddCloudVpn(o => o.DefaultKeyStore = "a").AddFileKeyStore(a, "a").AddFileKeyStore(b, "b", isDefault: true)))
        {
            Assert.Equal(a, ((FileKeyStore)sp.GetRequiredService<IKeyStore>()).RootDirectory);
            Assert.Equal(["a", "b"], sp.GetRequiredService<IKeyStoreProvider>().StoreNames);
        }
    }

    [Fact]
    public async Task Key_references_resolve_through_the_named_store()
    {
        using var sp = Build(s => s.AddCloudVpn().AddFileKeyStore(Path.Combine(_dir, "a"), "a").AddFileKeyStore(Path.Combine(_dir, "b"), "b"));
        var provider = sp.GetRequiredService<IKeyStoreProvider>();
        await provider.GetStore("b").PutAsync("gw", new byte[] { 1, 2, 3 });
        await provider.GetStore("b").PutAsync("gw", new byte[] { 4, 5, 6 });

        using (var latest = await provider.ResolveAsync(new KeyReference("gw", "b")))
        {
            Assert.Equal([4, 5, 6], latest.Value.ToArray());
        }

        using (var first = await provider.ResolveAsync(new KeyReference("gw", "b", 1)))
        {
            Assert.Equal([1, 2, 3], first.Value.ToArray());
        }

        var missing = await Assert.ThrowsAsync<KeyStoreException>(async () => await provider.ResolveAsync(new KeyReference("gw")));
        Assert.Contains("key store 'a'", missing.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => provider.GetStore("nope"));
    }

    private static ServiceProvider Build(Action<IServiceCollection> configure)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        configure(services);
        return services.BuildServiceProvider();
    }

    private sealed class BareBuilder(IServiceCollection services) : ICloudVpnBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
