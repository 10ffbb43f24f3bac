using CloudVpn.KeyStores;
using CloudVpn.Tunnels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace CloudVpn;

/// <summary>Entry point: <c>services.AddCloudVpn(...)</c>.</summary>
public static class CloudVpnServiceCollectionExtensions
{
    /// <summary>
    /// Adds the CloudVpn core services (driver selection, key store lookup, options validated at start).
    /// Safe to call more than once: services are registered once and every <paramref name="configure"/> applies.
    /// </summary>
    public static ICloudVpnBuilder AddCloudVpn(this IServiceCollection services, Action<CloudVpnOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var registry = GetOrAddRegistry(services);

        services.AddOptions<CloudVpnOptions>().ValidateOnStart();
        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CloudVpnOptions>, CloudVpnOptionsValidator>());
        services.TryAddSingleton<ITunnelDriverSelector, TunnelDriverSelector>();
        services.TryAddSingleton<IKeyStoreProvider, KeyStoreProvider>();
        services.TryAddSingleton<IKeyStore>(sp => sp.GetRequiredService<IKeyStoreProvider>().GetStore());
        _ = registry;
        return new CloudVpnBuilder(services);
    }

    /// <summary>
    /// For backend packages: throws a clear error when <c>AddCloudVpn()</c> has not been called on
    /// <paramref name="builder"/>'s services. <paramref name="caller"/> names the backend method.
    /// </summary>
    public static CloudVpnRegistry EnsureCloudVpn(this ICloudVpnBuilder builder, string caller)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var registry = FindRegistry(builder.Services);
        return registry ?? throw new InvalidOperationException(
            $"{caller}() needs the CloudVpn core services: call services.AddCloudVpn() first and chain {caller}() on the builder it returns.");
    }

    /// <summary>Registers a tunnel driver under its name and family. Registering the same driver twice is harmless.</summary>
    public static ICloudVpnBuilder AddTunnelDriver<TDriver>(this ICloudVpnBuilder builder, string name, string family)
        where TDriver : class, ITunnelDriver
    {
        var registry = builder.EnsureCloudVpn($"AddTunnelDriver<{typeof(TDriver).Name}>");
        registry.AddDriver(name, family);
        builder.Services.TryAddSingleton<TDriver>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ITunnelDriver, TDriver>(sp => sp.GetRequiredService<TDriver>()));
        return builder;
    }

    /// <summary>
    /// Registers a key store as the keyed <see cref="IKeyStore"/> service <paramref name="name"/>. The first store
    /// registered, or the one with <paramref name="isDefault"/>, is the default (also the unkeyed service), unless
    /// <see cref="CloudVpnOptions.DefaultKeyStore"/> says otherwise. A second registration under the same name is ignored.
    /// </summary>
    public static ICloudVpnBuilder AddKeyStore(this ICloudVpnBuilder builder, string name, Func<IServiceProvider, IKeyStore> factory, bool isDefault = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        var registry = builder.EnsureCloudVpn("AddKeyStore");
        if (!registry.AddKeyStore(name))
        {
            return builder;
        }

        if (isDefault)
        {
            registry.DefaultKeyStore = name;
        }

        builder.Services.AddKeyedSingleton<IKeyStore>(name, (sp, _) => factory(sp));
        return builder;
    }

    private static CloudVpnRegistry GetOrAddRegistry(IServiceCollection services)
    {
        var existing = FindRegistry(services);
        if (existing is not null)
        {
            return existing;
        }

        var registry = new CloudVpnRegistry();
        services.AddSingleton(registry);
        return registry;
    }

    private static CloudVpnRegistry? FindRegistry(IServiceCollection services)
    {
        foreach (var descriptor in services)
        {
            if (descriptor.ServiceType == typeof(CloudVpnRegistry) && !descriptor.IsKeyedService && descriptor.ImplementationInstance is CloudVpnRegistry r)
            {
                return r;
            }
        }

        return null;
    }

    private sealed class CloudVpnBuilder(IServiceCollection services) : ICloudVpnBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
