using CloudVpn.KeyRotation;
using Microsoft.Extensions.Logging;

namespace CloudVpn.Samples.KeyRotation;

/// <summary>
/// Stands in for the parties that use the keys (tunnels, peers): it only says what it would do at each phase.
/// A gateway registers a <see cref="TunnelKeyRotationParticipant"/> for its open tunnel instead.
/// </summary>
internal sealed partial class AnnouncingParticipant(ILogger<AnnouncingParticipant> logger) : IKeyRotationParticipant
{
    public ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        LogPhase(logger, "publish", step.Key.KeyId, step.PreviousVersion, step.NewVersion);
        return ValueTask.CompletedTask;
    }

    public ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        LogPhase(logger, "switch", step.Key.KeyId, step.PreviousVersion, step.NewVersion);
        return ValueTask.CompletedTask;
    }

    public ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        LogPhase(logger, "retire", step.Key.KeyId, step.PreviousVersion, step.NewVersion);
        return ValueTask.CompletedTask;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Phase} {KeyId}: version {Previous} -> {Version}")]
    private static partial void LogPhase(ILogger logger, string phase, string keyId, long previous, long version);
}
