using CloudVpn.KeyStores;
using CloudVpn.Tunnels;

namespace CloudVpn.KeyRotation;

/// <summary>
/// Rolls an open tunnel over to a key's new version; the driver reads the keys from the store and applies the
/// difference (idempotent). For the device's private key: <b>publish</b> adds the new version as
/// <see cref="DeviceSpec.AdditionalPrivateKey"/> (a driver that can, the userspace WireGuard, then answers handshakes
/// under both keys, so peers may move to the new public key as soon as they learn it); <b>switch</b> makes the new
/// version the key in force and keeps the previous one as the additional key; <b>retire</b> drops the previous one.
/// For preshared keys: switch re-points every peer's key reference at the new version; publish and retire change
/// nothing (a PSK only enters the next handshake).
/// </summary>
public sealed class TunnelKeyRotationParticipant(ITunnel tunnel, TunnelSpec spec) : IKeyRotationParticipant
{
    private readonly Lock _lock = new();
    private TunnelSpec _spec = spec ?? throw new ArgumentNullException(nameof(spec));

    /// <summary>The spec last applied (or given).</summary>
    public TunnelSpec CurrentSpec
    {
        get
        {
            lock (_lock)
            {
                return _spec;
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        var spec = CurrentSpec;
        if (!Matches(spec.Device.PrivateKey, step.Key) || step.PreviousVersion == 0)
        {
            return;
        }

        var device = spec.Device with { AdditionalPrivateKey = spec.Device.PrivateKey with { Version = step.NewVersion } };
        await ApplyAsync(spec with { Device = device }, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        var spec = CurrentSpec;
        var next = Repoint(spec, step);
        if (Matches(spec.Device.PrivateKey, step.Key) && step.PreviousVersion != 0)
        {
            next = next with { Device = next.Device with { AdditionalPrivateKey = spec.Device.PrivateKey with { Version = step.PreviousVersion } } };
        }

        await ApplyAsync(next, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        var spec = CurrentSpec;
        if (spec.Device.AdditionalPrivateKey is { } additional && Matches(additional, step.Key))
        {
            await ApplyAsync(spec with { Device = spec.Device with { AdditionalPrivateKey = null } }, cancellationToken);
        }
    }

    private async ValueTask ApplyAsync(TunnelSpec next, CancellationToken cancellationToken)
    {
        await tunnel.ApplyAsync(next, cancellationToken);
        lock (_lock)
        {
            _spec = next;
        }
    }

    /// <summary>The spec with every reference to the rotated key pinned to its new version.</summary>
    internal static TunnelSpec Repoint(TunnelSpec spec, KeyRotationStep step)
    {
        KeyReference Pin(KeyReference r) => Matches(r, step.Key) ? r with { Version = step.NewVersion } : r;
        var device = spec.Device with { PrivateKey = Pin(spec.Device.PrivateKey) };
        var peers = spec.Peers.Select(p => p.PresharedKey is { } psk ? p with { PresharedKey = Pin(psk) } : p).ToList();
        return spec with { Device = device, Peers = peers };
    }

    private static bool Matches(KeyReference reference, RotatedKey key) =>
        string.Equals(reference.KeyId, key.KeyId, StringComparison.Ordinal) && string.Equals(reference.Store, key.Store, StringComparison.Ordinal);
}
