using CloudVpn.KeyStores;
using CloudVpn.Tunnels;

namespace CloudVpn.KeyRotation;

/// <summary>
/// Switches an open tunnel to a key's new version: the device's private key and every peer's preshared key that point
/// at the rotated key are re-pointed at the new version and the spec is applied (an idempotent diff; the driver reads
/// the key from the store). Publishing and retiring change nothing on the tunnel itself.
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
    public ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <inheritdoc />
    public async ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(step);
        var next = Repoint(CurrentSpec, step);
        await tunnel.ApplyAsync(next, cancellationToken);
        lock (_lock)
        {
            _spec = next;
        }
    }

    /// <inheritdoc />
    public ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken) => ValueTask.CompletedTask;

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
