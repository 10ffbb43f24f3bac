namespace CloudVpn.KeyRotation;

/// <summary>One rotation of one key: the version in force before and the version that replaces it.</summary>
/// <param name="Key">The key.</param>
/// <param name="PreviousVersion">The version in force so far (0 when the key is new).</param>
/// <param name="NewVersion">The new version.</param>
public sealed record KeyRotationStep(RotatedKey Key, long PreviousVersion, long NewVersion);

/// <summary>
/// Something that uses a rotated key: a tunnel, a peer registry, a notifier. The loop calls every participant, in
/// order, at each phase; a phase is complete only when all participants succeeded, and a failed phase is retried
/// (the previous version stays in force until every participant has switched).
/// </summary>
public interface IKeyRotationParticipant
{
    /// <summary>The new version exists: let the other party learn it (for example accept it next to the old one). Must be idempotent.</summary>
    ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken);

    /// <summary>Start using the new version. Must be idempotent.</summary>
    ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken);

    /// <summary>The overlap is over: stop accepting the previous version. Must be idempotent.</summary>
    ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken);
}

/// <summary>Stores that can drop old versions of a key implement this; the rotation loop uses it to keep the history short.</summary>
public interface IKeyHistoryPruning
{
    /// <summary>Removes all but the newest <paramref name="keep"/> versions of <paramref name="id"/>; returns how many were removed.</summary>
    ValueTask<int> PruneAsync(string id, int keep, CancellationToken cancellationToken = default);
}

/// <summary>Makes new key material for a rotated key.</summary>
public interface IKeyMaterialSource
{
    /// <summary>Fills <paramref name="destination"/> (32 bytes) with a new key of the given kind.</summary>
    void Generate(RotatedKeyKind kind, Span<byte> destination);
}

/// <summary>Random 32-byte keys from the OS CSPRNG; private keys clamped as X25519 (RFC 7748) requires.</summary>
public sealed class RandomKeyMaterialSource : IKeyMaterialSource
{
    /// <inheritdoc />
    public void Generate(RotatedKeyKind kind, Span<byte> destination)
    {
        if (destination.Length != 32)
        {
            throw new ArgumentException("Keys are 32 bytes.", nameof(destination));
        }

        System.Security.Cryptography.RandomNumberGenerator.Fill(destination);
        if (kind == RotatedKeyKind.PrivateKey)
        {
            destination[0] &= 248;
            destination[31] &= 127;
            destination[31] |= 64;
        }
    }
}
