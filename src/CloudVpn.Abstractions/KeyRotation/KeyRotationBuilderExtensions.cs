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

/// <summary>Registers the follower of rotations made elsewhere.</summary>
public static class KeyRotationFollowerBuilderExtensions
{
    /// <summary>
    /// Adds a <see cref="KeyRotationFollower"/> run by a hosted service: for gateways whose keys are rotated by a CronJob
    /// (<see cref="KeyRotationLoop.RunOnceAsync"/>) or another replica. Participants are the registered
    /// <see cref="IKeyRotationParticipant"/> services.
    /// </summary>
    public static ICloudVpnBuilder AddKeyRotationFollower(this ICloudVpnBuilder builder, Action<KeyRotationOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.EnsureCloudVpn(nameof(AddKeyRotationFollower));
        builder.Services.AddOptions<KeyRotationOptions>().Configure(configure).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KeyRotationOptions>, KeyRotationOptionsValidator>());
        builder.Services.TryAddSingleton(sp => new KeyRotationFollower(
            name => sp.GetRequiredService<IKeyStoreProvider>().GetStore(name),
            sp.GetServices<IKeyRotationParticipant>(),
            sp.GetRequiredService<IOptions<KeyRotationOptions>>().Value,
            sp.GetService<TimeProvider>(),
            sp.GetService<ILogger<KeyRotationFollower>>()));
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, KeyRotationFollowerHostedService>());
        return builder;
    }
}

/// <summary>Runs the <see cref="KeyRotationFollower"/> for the lifetime of the host.</summary>
public sealed class KeyRotationFollowerHostedService(KeyRotationFollower follower) : BackgroundService
{
    /// <inheritdoc />
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => follower.RunAsync(stoppingToken);
}

/// <summary>Runs the <see cref="KeyRotationLoop"/> for the lifetime of the host.</summary>
public sealed class KeyRotationHostedService(KeyRotationLoop loop) : BackgroundService
{
    /// <inheritdoc />
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => loop.RunAsync(stoppingToken);
}
