using System.Threading.Channels;
using CloudVpn.KeyRotation;
using Microsoft.Extensions.Logging;

namespace CloudVpn.Samples.Gateway;

/// <summary>A request to take a given version of the gateway key into use, completed once the tunnel runs on it.</summary>
/// <param name="Version">The key store version.</param>
/// <param name="Done">Completed (or failed) by <see cref="GatewayService"/>.</param>
internal sealed record KeySwitchRequest(long Version, TaskCompletionSource Done);

/// <summary>Hands key switches from the rotation loop to the service that owns the tunnel.</summary>
internal sealed class GatewayKeySwitch
{
    private readonly Channel<KeySwitchRequest> _requests = Channel.CreateUnbounded<KeySwitchRequest>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>True when a rotation loop drives key changes (then new versions are taken at its switch, not when they appear).</summary>
    public bool DrivenByRotationLoop { get; init; }

    public async Task SwitchAsync(long version, CancellationToken cancellationToken)
    {
        var request = new KeySwitchRequest(version, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        await _requests.Writer.WriteAsync(request, cancellationToken);
        await request.Done.Task.WaitAsync(cancellationToken);
    }

    public bool TryTake(out KeySwitchRequest request) => _requests.Reader.TryRead(out request!);
}

/// <summary>
/// The gateway's part in the key rotation loop (<c>AddKeyRotation</c>): at publish it logs the new public key (clients
/// must learn it: a WireGuard peer knows its gateway by public key), at switch it has the tunnel take the new version,
/// at retire there is nothing left to do (the old private key is no longer used once switched).
/// </summary>
internal sealed partial class GatewayKeyRotationParticipant(GatewayKeySwitch keySwitch, GatewayKey key, ILogger<GatewayKeyRotationParticipant> logger) : IKeyRotationParticipant
{
    public async ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (IsGatewayKey(step) && await key.ReadAsync(step.NewVersion, cancellationToken) is { } next)
        {
            LogPublished(logger, step.NewVersion, next.PublicKey);
        }
    }

    public async ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (IsGatewayKey(step))
        {
            await keySwitch.SwitchAsync(step.NewVersion, cancellationToken);
        }
    }

    public ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    private static bool IsGatewayKey(KeyRotationStep step) => step.Key.KeyId == GatewayKey.KeyId;

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Gateway key version {Version} published (public key {PublicKey}); clients need this public key before the switch")]
    private static partial void LogPublished(ILogger logger, long version, string publicKey);
}
