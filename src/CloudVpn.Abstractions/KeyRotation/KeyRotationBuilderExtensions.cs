using System.Diagnostics.Metrics;
using CloudVpn.KeyStores;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.KeyRotation;

/// <summary>Registers the key rotation loop and its hosted service.</summary>
public static class KeyRotationBuilderExtensions
{
    /// <summary>
    /// Adds the key rotation loop (a singleton <see cref="KeyRotationLoop"/> run by a hosted service). Participants are
    /// the registered <see cref="IKeyRotationParticipant"/> services. Options are validated at start.
    /// </summary>
    public static ICloudVpnBuilder AddKeyRotation(this ICloudVpnBuilder builder, Action<KeyRotationOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.EnsureCloudVpn(nameof(AddKeyRotation));
        builder.Services.AddOptions<KeyRotationOptions>().Configure(configure).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KeyRotationOptions>, KeyRotationOptionsValidator>());
        builder.Services.TryAddSingleton<IKeyMaterialSource, RandomKeyMaterialSource>();
        builder.Services.TryAddSingleton(sp => new KeyRotationLoop(
            name => sp.GetRequiredService<IKeyStoreProvider>().GetStore(name),
            sp.GetServices<IKeyRotationParticipant>(),
            sp.GetRequiredService<IOptions<KeyRotationOptions>>().Value,
            sp.GetService<TimeProvider>(),
            sp.GetService<IKeyMaterialSource>(),
            sp.GetService<ILogger<KeyRotationLoop>>(),
            sp.GetService<IMeterFactory>()));
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, KeyRotationHostedService>());
        return builder;
    }
}

/// <summary>Runs the <see cref="KeyRotationLoop"/> for the lifetime of the host.</summary>
public sealed class KeyRotationHostedService(KeyRotationLoop loop) : BackgroundService
{
    /// <inheritdoc />
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => loop.RunAsync(stoppingToken);
}
