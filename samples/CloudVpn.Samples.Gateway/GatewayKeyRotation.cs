using System.Threading.Channels;
using CloudVpn.KeyRotation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CloudVpn.Samples.Gateway;

/// <summary>A request to take a given version of the gateway key into use, completed once the tunnel runs on it.</summary>
/// <param name="Version">The key store version in force.</param>
/// <param name="AdditionalVersion">A version also accepted (a rotation's overlap; the userspace driver answers
/// handshakes under both), or null.</param>
/// <param name="Done">Completed (or failed) by <see cref="GatewayService"/>.</param>
internal sealed record KeySwitchRequest(long Version, long? AdditionalVersion, TaskCompletionSource Done);

/// <summary>Hands key switches from the rotation loop to the service that owns the tunnel.</summary>
internal sealed class GatewayKeySwitch
{
    private readonly Channel<KeySwitchRequest> _requests = Channel.CreateUnbounded<KeySwitchRequest>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>True when a rotation loop drives key changes (then new versions are taken at its switch, not when they appear).</summary>
    public bool DrivenByRotationLoop { get; init; }

    public async Task SwitchAsync(long version, long? additionalVersion, CancellationToken cancellationToken)
    {
        var request = new KeySwitchRequest(version, additionalVersion, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        await _requests.Writer.WriteAsync(request, cancellationToken);
        await request.Done.Task.WaitAsync(cancellationToken);
    }

    public bool TryTake(out KeySwitchRequest request) => _requests.Reader.TryRead(out request!);
}

/// <summary>
/// The gateway's part in the key rotation loop (<c>AddKeyRotation</c>): at publish it logs the new public key (clients
/// must learn it: a WireGuard peer knows its gateway by public key) and has the tunnel accept the new key next to the
/// old one (the userspace driver answers handshakes under both, so a client may move as soon as it learns the key;
/// the kernel driver ignores the second key), at switch the new key is the one in force and the old one still
/// accepted, at retire the old one is dropped.
/// </summary>
/// <remarks>The key store is resolved on first use: hosted services (and so this participant) are built before options
/// validation, and a bad data folder must surface as a settings error.</remarks>
internal sealed partial class GatewayKeyRotationParticipant(GatewayKeySwitch keySwitch, IServiceProvider services, ILogger<GatewayKeyRotationParticipant> logger) : IKeyRotationParticipant
{
    public async ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (IsGatewayKey(step) && await services.GetRequiredService<GatewayKey>().ReadAsync(step.NewVersion, cancellationToken) is { } next)
        {
            LogPublished(logger, step.NewVersion, next.PublicKey);
            if (step.PreviousVersion > 0)
            {
                await keySwitch.SwitchAsync(step.PreviousVersion, step.NewVersion, cancellationToken);
            }
        }
    }

    public async ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (IsGatewayKey(step))
        {
            await keySwitch.SwitchAsync(step.NewVersion, step.PreviousVersion > 0 ? step.PreviousVersion : null, cancellationToken);
        }
    }

    public async ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (IsGatewayKey(step))
        {
            await keySwitch.SwitchAsync(step.NewVersion, null, cancellationToken);
        }
    }

    private static bool IsGatewayKey(KeyRotationStep step) => step.Key.KeyId == GatewayKey.KeyId;

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Gateway key version {Version} published (public key {PublicKey}); clients need this public key before the switch")]
    private static partial void LogPublished(ILogger logger, long version, string publicKey);
}
