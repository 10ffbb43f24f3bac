using System.Buffers.Binary;
using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s constants: initial chaining key and hash.</summary>
internal static class NoiseConstants
{
    public static ReadOnlySpan<byte> Construction => "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"u8;

    public static ReadOnlySpan<byte> Identifier => "WireGuard v1 zx2c4 Jason@zx2c4.com"u8;

    /// <summary>Ci = HASH(construction).</summary>
    public static readonly byte[] InitialChainKey = ComputeChainKey();

    /// <summary>Hi = HASH(Ci || identifier).</summary>
    public static readonly byte[] InitialHash = ComputeHash();

    private static byte[] ComputeChainKey()
    {
        var output = new byte[32];
        Blake2s.Hash(output, Construction);
        return output;
    }

    private static byte[] ComputeHash()
    {
        var output = new byte[32];
        Blake2s.Hash(output, ComputeChainKey(), Identifier);
        return output;
    }
}

/// <summary>The static identity of the local interface: private key, public key and the cookie checker bound to it.</summary>
internal sealed class StaticIdentity : IDisposable
{
    public StaticIdentity(ReadOnlySpan<byte> privateKey)
    {
        privateKey.CopyTo(PrivateKey);
        Curve25519.DerivePublic(PublicKey, PrivateKey);
        Key = Curve25519.ImportPrivate(PrivateKey);
        Cookies = new CookieChecker(PublicKey);
    }

    /// <summary>The private key imported once for DH.</summary>
    public NSec.Cryptography.Key Key { get; }

    public byte[] PrivateKey { get; } = GC.AllocateArray<byte>(32, pinned: true);

    public byte[] PublicKey { get; } = new byte[32];

    public CookieChecker Cookies { get; }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(PrivateKey);
        Key.Dispose();
        Cookies.Dispose();
    }
}

internal enum HandshakeState
{
    None,
    InitiationCreated,
    InitiationConsumed,
    ResponseCreated,
}

/// <summary>What the responder learns from an initiation before it knows (and locks) the peer.</summary>
internal ref struct ConsumedInitiation
{
    public Span<byte> Hash;
    public Span<byte> ChainKey;
    public Span<byte> RemoteStatic;
    public Span<byte> RemoteEphemeral;
    public uint Sender;
}

/// <summary>
/// The Noise IKpsk2 handshake state of one peer. Not thread-safe: the peer's handshake lock serializes every call.
/// Secrets live in pinned arrays zeroed by <see cref="Clear"/>.
/// </summary>
internal sealed class NoiseHandshake
{
    private readonly byte[] _hash = new byte[32];
    private readonly byte[] _chainKey = GC.AllocateArray<byte>(32, pinned: true);
    private NSec.Cryptography.Key? _localEphemeral;
    private readonly byte[] _remoteEphemeral = new byte[32];
    private readonly byte[] _remoteStatic;
    private readonly byte[] _initialHash = new byte[32];

    public NoiseHandshake(ReadOnlySpan<byte> remoteStatic)
    {
        _remoteStatic = remoteStatic.ToArray();
        Blake2s.Hash(_initialHash, NoiseConstants.InitialHash, _remoteStatic);
    }

    public HandshakeState State { get; private set; }

    /// <summary>DH(local static, remote static), cached; all zero when invalid.</summary>
    public byte[] StaticStatic { get; } = GC.AllocateArray<byte>(32, pinned: true);

    /// <summary>The preshared key (all zero when none).</summary>
    public byte[] PresharedKey { get; } = GC.AllocateArray<byte>(32, pinned: true);

    public uint LocalIndex { get; set; }

    public uint RemoteIndex { get; private set; }

    /// <summary>The newest initiation timestamp accepted from this peer.</summary>
    public byte[] LastTimestamp { get; } = new byte[Tai64N.Length];

    /// <summary>When (monotonic ticks) the last initiation from this peer was accepted.</summary>
    public long LastInitiationConsumed { get; set; } = long.MinValue;

    /// <summary>When (monotonic ticks) we last sent an initiation.</summary>
    public long LastSentInitiation { get; set; } = long.MinValue;

    /// <summary>
    /// DH(additional local static, remote static), cached for the engine's additional identity (the key it also answers
    /// under during a key rotation's overlap); all zero when there is none or it is invalid.
    /// </summary>
    public byte[] AdditionalStaticStatic { get; } = GC.AllocateArray<byte>(32, pinned: true);

    private StaticIdentity? _identity;
    private StaticIdentity? _additionalIdentity;

    /// <summary>Caches the static-static secrets for the engine's identity and its additional identity (if any).</summary>
    public void SetIdentity(StaticIdentity? identity, StaticIdentity? additional = null)
    {
        _identity = identity;
        if (identity is null || !Curve25519.SharedSecret(StaticStatic, identity.Key, _remoteStatic))
        {
            CryptographicOperations.ZeroMemory(StaticStatic);
        }

        _additionalIdentity = additional;
        if (additional is null || !Curve25519.SharedSecret(AdditionalStaticStatic, additional.Key, _remoteStatic))
        {
            CryptographicOperations.ZeroMemory(AdditionalStaticStatic);
        }
    }

    /// <summary>The cached static-static secret for <paramref name="identity"/>; empty when it is neither identity set.</summary>
    private ReadOnlySpan<byte> StaticStaticFor(StaticIdentity identity) =>
        ReferenceEquals(identity, _identity) ? StaticStatic
        : ReferenceEquals(identity, _additionalIdentity) ? AdditionalStaticStatic
        : [];

    public void Clear()
    {
        CryptographicOperations.ZeroMemory(_hash);
        CryptographicOperations.ZeroMemory(_chainKey);
        _localEphemeral?.Dispose();
        _localEphemeral = null;
        CryptographicOperations.ZeroMemory(_remoteEphemeral);
        State = HandshakeState.None;
    }

    /// <summary>Writes an initiation (without macs) to <paramref name="message"/> (148 bytes).</summary>
    public bool CreateInitiation(Span<byte> message, StaticIdentity identity, uint localIndex, DateTimeOffset now)
    {
        if (!StaticStatic.AsSpan().ContainsAnyExcept((byte)0))
        {
            return false;
        }

        Span<byte> key = stackalloc byte[32];
        Span<byte> secret = stackalloc byte[32];
        Span<byte> timestamp = stackalloc byte[Tai64N.Length];
        try
        {
            NoiseConstants.InitialChainKey.CopyTo(_chainKey, 0);
            _initialHash.CopyTo(_hash, 0);
            var ephemeralPublic = message.Slice(MessageFormat.InitiationEphemeral, 32);
            _localEphemeral?.Dispose();
            _localEphemeral = Curve25519.GenerateEphemeral(ephemeralPublic);

            MessageFormat.WriteType(message, MessageFormat.Initiation);
            BinaryPrimitives.WriteUInt32LittleEndian(message[MessageFormat.InitiationSender..], localIndex);

            Blake2s.Kdf(_chainKey, ephemeralPublic, _chainKey);
            MixHash(ephemeralPublic);

            if (!Curve25519.SharedSecret(secret, _localEphemeral, _remoteStatic))
            {
                return false;
            }

            Blake2s.Kdf(_chainKey, secret, _chainKey, key);
            var encryptedStatic = message.Slice(MessageFormat.InitiationStatic, MessageFormat.InitiationStaticLength);
            Aead.Seal(key, 0, identity.PublicKey, _hash, encryptedStatic);
            MixHash(encryptedStatic);

            Blake2s.Kdf(_chainKey, StaticStatic, _chainKey, key);
            Tai64N.Write(timestamp, now);
            var encryptedTimestamp = message.Slice(MessageFormat.InitiationTimestamp, MessageFormat.InitiationTimestampLength);
            Aead.Seal(key, 0, timestamp, _hash, encryptedTimestamp);
            MixHash(encryptedTimestamp);

            LocalIndex = localIndex;
            State = HandshakeState.InitiationCreated;
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>
    /// First half of consuming an initiation, before the peer is known: decrypts the initiator's static key. The
    /// output spans (32 bytes each) are the caller's.
    /// </summary>
    public static bool BeginConsumeInitiation(ReadOnlySpan<byte> message, StaticIdentity identity, ref ConsumedInitiation result)
    {
        Span<byte> key = stackalloc byte[32];
        Span<byte> secret = stackalloc byte[32];
        try
        {
            NoiseConstants.InitialChainKey.CopyTo(result.ChainKey);
            Blake2s.Hash(result.Hash, NoiseConstants.InitialHash, identity.PublicKey);
            var ephemeral = message.Slice(MessageFormat.InitiationEphemeral, 32);
            ephemeral.CopyTo(result.RemoteEphemeral);
            result.Sender = BinaryPrimitives.ReadUInt32LittleEndian(message[MessageFormat.InitiationSender..]);

            Blake2s.Kdf(result.ChainKey, ephemeral, result.ChainKey);
            Blake2s.Hash(result.Hash, result.Hash, ephemeral);
            if (!Curve25519.SharedSecret(secret, identity.Key, ephemeral))
            {
                return false;
            }

            Blake2s.Kdf(result.ChainKey, secret, result.ChainKey, key);
            var encryptedStatic = message.Slice(MessageFormat.InitiationStatic, MessageFormat.InitiationStaticLength);
            if (!Aead.Open(key, 0, encryptedStatic, result.Hash, result.RemoteStatic))
            {
                return false;
            }

            Blake2s.Hash(result.Hash, result.Hash, encryptedStatic);
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>Second half: decrypts the timestamp with this peer's cached static-static secret and applies the replay and flood checks.</summary>
    /// <remarks><paramref name="identity"/> is the local identity the initiation was addressed to (its mac1 matched).</remarks>
    public ConsumeResult FinishConsumeInitiation(ReadOnlySpan<byte> message, ref ConsumedInitiation begun, StaticIdentity identity, long nowTicks, long floodTicks)
    {
        var staticStatic = StaticStaticFor(identity);
        if (!staticStatic.ContainsAnyExcept((byte)0))
        {
            return ConsumeResult.Failed;
        }

        Span<byte> key = stackalloc byte[32];
        Span<byte> timestamp = stackalloc byte[Tai64N.Length];
        try
        {
            Blake2s.Kdf(begun.ChainKey, staticStatic, begun.ChainKey, key);
            var encryptedTimestamp = message.Slice(MessageFormat.InitiationTimestamp, MessageFormat.InitiationTimestampLength);
            if (!Aead.Open(key, 0, encryptedTimestamp, begun.Hash, timestamp))
            {
                return ConsumeResult.Failed;
            }

            Blake2s.Hash(begun.Hash, begun.Hash, encryptedTimestamp);
            var replay = !Tai64N.IsAfter(timestamp, LastTimestamp);
            var flood = LastInitiationConsumed != long.MinValue && nowTicks - LastInitiationConsumed <= floodTicks;
            if (replay || flood)
            {
                return ConsumeResult.Replayed;
            }

            timestamp.CopyTo(LastTimestamp);
            LastInitiationConsumed = nowTicks;
            begun.Hash.CopyTo(_hash);
            begun.ChainKey.CopyTo(_chainKey);
            begun.RemoteEphemeral.CopyTo(_remoteEphemeral);
            RemoteIndex = begun.Sender;
            State = HandshakeState.InitiationConsumed;
            return ConsumeResult.Ok;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Writes a response (without macs) to <paramref name="message"/> (92 bytes) after an initiation was consumed.</summary>
    public bool CreateResponse(Span<byte> message, uint localIndex)
    {
        if (State != HandshakeState.InitiationConsumed)
        {
            return false;
        }

        Span<byte> secret = stackalloc byte[32];
        Span<byte> tau = stackalloc byte[32];
        Span<byte> key = stackalloc byte[32];
        try
        {
            MessageFormat.WriteType(message, MessageFormat.Response);
            BinaryPrimitives.WriteUInt32LittleEndian(message[MessageFormat.ResponseSender..], localIndex);
            BinaryPrimitives.WriteUInt32LittleEndian(message[MessageFormat.ResponseReceiver..], RemoteIndex);
            var ephemeralPublic = message.Slice(MessageFormat.ResponseEphemeral, 32);
            _localEphemeral?.Dispose();
            _localEphemeral = Curve25519.GenerateEphemeral(ephemeralPublic);

            Blake2s.Kdf(_chainKey, ephemeralPublic, _chainKey);
            MixHash(ephemeralPublic);
            if (!Curve25519.SharedSecret(secret, _localEphemeral, _remoteEphemeral))
            {
                return false;
            }

            Blake2s.Kdf(_chainKey, secret, _chainKey);
            if (!Curve25519.SharedSecret(secret, _localEphemeral, _remoteStatic))
            {
                return false;
            }

            Blake2s.Kdf(_chainKey, secret, _chainKey);
            Blake2s.Kdf(_chainKey, PresharedKey, _chainKey, tau, key);
            MixHash(tau);
            var empty = message.Slice(MessageFormat.ResponseEmpty, Aead.TagLength);
            Aead.Seal(key, 0, [], _hash, empty);
            MixHash(empty);

            LocalIndex = localIndex;
            State = HandshakeState.ResponseCreated;
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
            CryptographicOperations.ZeroMemory(tau);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Consumes a response to our initiation; on success the state is ready for <see cref="DeriveTransportKeys"/>.</summary>
    public bool ConsumeResponse(ReadOnlySpan<byte> message, StaticIdentity identity)
    {
        if (State != HandshakeState.InitiationCreated || _localEphemeral is null)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[32];
        Span<byte> chainKey = stackalloc byte[32];
        Span<byte> secret = stackalloc byte[32];
        Span<byte> tau = stackalloc byte[32];
        Span<byte> key = stackalloc byte[32];
        try
        {
            _hash.CopyTo(hash);
            _chainKey.CopyTo(chainKey);
            var ephemeral = message.Slice(MessageFormat.ResponseEphemeral, 32);
            Blake2s.Kdf(chainKey, ephemeral, chainKey);
            Blake2s.Hash(hash, hash, ephemeral);
            if (!Curve25519.SharedSecret(secret, _localEphemeral, ephemeral))
            {
                return false;
            }

            Blake2s.Kdf(chainKey, secret, chainKey);
            if (!Curve25519.SharedSecret(secret, identity.Key, ephemeral))
            {
                return false;
            }

            Blake2s.Kdf(chainKey, secret, chainKey);
            Blake2s.Kdf(chainKey, PresharedKey, chainKey, tau, key);
            Blake2s.Hash(hash, hash, tau);
            var empty = message.Slice(MessageFormat.ResponseEmpty, Aead.TagLength);
            if (!Aead.Open(key, 0, empty, hash, []))
            {
                return false;
            }

            Blake2s.Hash(hash, hash, empty);
            hash.CopyTo(_hash);
            chainKey.CopyTo(_chainKey);
            ephemeral.CopyTo(_remoteEphemeral);
            RemoteIndex = BinaryPrimitives.ReadUInt32LittleEndian(message[MessageFormat.ResponseSender..]);
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(chainKey);
            CryptographicOperations.ZeroMemory(secret);
            CryptographicOperations.ZeroMemory(tau);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>(T_send, T_recv) from KDF2(C, empty), swapped for the responder; then clears the handshake.</summary>
    public void DeriveTransportKeys(bool initiator, Span<byte> sendKey, Span<byte> receiveKey)
    {
        if (initiator)
        {
            Blake2s.Kdf(_chainKey, [], sendKey, receiveKey);
        }
        else
        {
            Blake2s.Kdf(_chainKey, [], receiveKey, sendKey);
        }

        Clear();
    }

    private void MixHash(ReadOnlySpan<byte> data) => Blake2s.Hash(_hash, _hash, data);
}

internal enum ConsumeResult
{
    Ok,
    Failed,
    Replayed,
}
