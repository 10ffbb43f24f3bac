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
        Cookies = new CookieChecker(PublicKey);
    }

    public byte[] PrivateKey { get; } = GC.AllocateArray<byte>(32, pinned: true);

    public byte[] PublicKey { get; } = new byte[32];

    public CookieChecker Cookies { get; }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(PrivateKey);
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
/// <summary>
/// DH results computed ahead, in a batch with other handshakes' (<see cref="DhBatch"/>): a fresh ephemeral key pair
/// and the secrets that ephemeral key gives. Default (empty) means "compute them here".
/// For an initiation, <see cref="First"/> is es = DH(e, S_responder); for a response, <see cref="First"/> is
/// ee = DH(e, E_initiator) and <see cref="Second"/> se = DH(e, S_initiator). An empty secret where one is expected
/// means the DH gave zero (a low-order point) and the handshake fails, as when computed here.
/// </summary>
internal ref struct PrecomputedDh
{
    public ReadOnlySpan<byte> EphemeralPrivate;
    public ReadOnlySpan<byte> EphemeralPublic;
    public ReadOnlySpan<byte> First;
    public ReadOnlySpan<byte> Second;

    public readonly bool IsEmpty => EphemeralPrivate.IsEmpty;
}

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
    // All of the handshake's state in one pinned array (one object instead of eight: 100 000 idle peers save about
    // 25 MB), zeroed piece by piece as before: hash | chain key | remote ephemeral | initial hash | static-static |
    // preshared key | remote static | last timestamp.
    private const int StateLength = (7 * 32) + Tai64N.Length;
    private readonly byte[] _state = GC.AllocateArray<byte>(StateLength, pinned: true);
    private byte[]? _localEphemeral; // pinned, created by the first handshake, zeroed by Clear
    private bool _hasLocalEphemeral;

    public NoiseHandshake(ReadOnlySpan<byte> remoteStatic)
    {
        remoteStatic.CopyTo(RemoteStaticState);
        Blake2s.Hash(InitialHashState, NoiseConstants.InitialHash, RemoteStaticState);
    }

    public HandshakeState State { get; private set; }

    /// <summary>DH(local static, remote static), computed when a handshake first needs it; all zero when invalid or not yet computed.</summary>
    public Span<byte> StaticStatic => _state.AsSpan(128, 32);

    private StaticIdentity? _identity;
    private bool _staticStaticComputed;

    /// <summary>The preshared key (all zero when none).</summary>
    public Span<byte> PresharedKey => _state.AsSpan(160, 32);

    public uint LocalIndex { get; set; }

    public uint RemoteIndex { get; private set; }

    /// <summary>The newest initiation timestamp accepted from this peer.</summary>
    public Span<byte> LastTimestamp => _state.AsSpan(7 * 32, Tai64N.Length);

    private Span<byte> HashState => _state.AsSpan(0, 32);

    private Span<byte> ChainKeyState => _state.AsSpan(32, 32);

    private Span<byte> RemoteEphemeralState => _state.AsSpan(64, 32);

    /// <summary>
    /// Copies our ephemeral private key while an initiation of ours awaits its response (to compute the response's
    /// DH ahead, outside the lock); false otherwise.
    /// </summary>
    public bool TryCopyLocalEphemeral(Span<byte> destination)
    {
        if (State != HandshakeState.InitiationCreated || !_hasLocalEphemeral)
        {
            return false;
        }

        _localEphemeral.AsSpan().CopyTo(destination);
        return true;
    }

    /// <summary>Whether our initiation made with ephemeral private key <paramref name="localEphemeral"/> still awaits its response.</summary>
    public bool IsAwaitingResponseWith(ReadOnlySpan<byte> localEphemeral) =>
        State == HandshakeState.InitiationCreated && _hasLocalEphemeral && CryptographicOperations.FixedTimeEquals(_localEphemeral, localEphemeral);

    /// <summary>Whether an initiation with ephemeral key <paramref name="remoteEphemeral"/> is the one consumed and not yet answered.</summary>
    public bool IsAwaitingResponseTo(ReadOnlySpan<byte> remoteEphemeral) =>
        State == HandshakeState.InitiationConsumed && CryptographicOperations.FixedTimeEquals(RemoteEphemeralState, remoteEphemeral);

    private Span<byte> InitialHashState => _state.AsSpan(96, 32);

    private Span<byte> RemoteStaticState => _state.AsSpan(192, 32);

    /// <summary>When (monotonic ticks) the last initiation from this peer was accepted.</summary>
    public long LastInitiationConsumed { get; set; } = long.MinValue;

    /// <summary>When (monotonic ticks) we last sent an initiation.</summary>
    public long LastSentInitiation { get; set; } = long.MinValue;

    /// <summary>
    /// DH(additional local static, remote static) for the engine's additional identity (the key it also answers under
    /// during a key rotation's overlap), derived lazily like <see cref="StaticStatic"/>; all zero when there is none,
    /// it is invalid or not yet derived. Created only when a rotation first needs it.
    /// </summary>
    private byte[]? _additionalStaticStatic;

    private StaticIdentity? _additionalIdentity;
    private bool _additionalStaticStaticComputed;

    /// <summary>
    /// Binds the handshake to the interface's identity and, during a key rotation, its additional identity (null: none).
    /// The static-static secrets are derived lazily, by the first handshake that needs them: configuring 100 000 peers
    /// then costs no X25519 operation per peer, and a private key change does not redo one per peer either.
    /// </summary>
    public void SetIdentity(StaticIdentity? identity, StaticIdentity? additional = null)
    {
        _identity = identity;
        _staticStaticComputed = false;
        CryptographicOperations.ZeroMemory(StaticStatic);
        _additionalIdentity = additional;
        _additionalStaticStaticComputed = false;
        if (_additionalStaticStatic is not null)
        {
            CryptographicOperations.ZeroMemory(_additionalStaticStatic);
        }
    }

    /// <summary>The static-static secret of the interface's identity, derived on first use; false when it is invalid (no identity, low-order key).</summary>
    private bool HasValidStaticStatic()
    {
        if (!_staticStaticComputed)
        {
            if (_identity is null || !Curve25519.SharedSecret(StaticStatic, _identity.PrivateKey, RemoteStaticState))
            {
                CryptographicOperations.ZeroMemory(StaticStatic);
            }

            _staticStaticComputed = true;
        }

        return StaticStatic.ContainsAnyExcept((byte)0);
    }

    /// <summary>The static-static secret for <paramref name="identity"/> (derived on first use); empty when it is neither identity set or invalid.</summary>
    private ReadOnlySpan<byte> StaticStaticFor(StaticIdentity identity)
    {
        if (ReferenceEquals(identity, _identity))
        {
            return HasValidStaticStatic() ? StaticStatic : [];
        }

        if (!ReferenceEquals(identity, _additionalIdentity))
        {
            return [];
        }

        if (!_additionalStaticStaticComputed)
        {
            _additionalStaticStatic ??= GC.AllocateArray<byte>(32, pinned: true);
            if (!Curve25519.SharedSecret(_additionalStaticStatic, identity.PrivateKey, RemoteStaticState))
            {
                CryptographicOperations.ZeroMemory(_additionalStaticStatic);
            }

            _additionalStaticStaticComputed = true;
        }

        return _additionalStaticStatic!.AsSpan().ContainsAnyExcept((byte)0) ? _additionalStaticStatic : [];
    }

    public void Clear()
    {
        CryptographicOperations.ZeroMemory(HashState);
        CryptographicOperations.ZeroMemory(ChainKeyState);
        if (_localEphemeral is not null)
        {
            CryptographicOperations.ZeroMemory(_localEphemeral);
        }

        _hasLocalEphemeral = false;
        CryptographicOperations.ZeroMemory(RemoteEphemeralState);
        State = HandshakeState.None;
    }

    /// <summary>Writes an initiation (without macs) to <paramref name="message"/> (148 bytes).</summary>
    public bool CreateInitiation(Span<byte> message, StaticIdentity identity, uint localIndex, DateTimeOffset now) =>
        CreateInitiation(message, identity, localIndex, now, default);

    /// <summary>Writes an initiation with the ephemeral key and es from <paramref name="precomputed"/> (see <see cref="PrecomputedDh"/>).</summary>
    public bool CreateInitiation(Span<byte> message, StaticIdentity identity, uint localIndex, DateTimeOffset now, PrecomputedDh precomputed)
    {
        if (!HasValidStaticStatic())
        {
            return false;
        }

        Span<byte> key = stackalloc byte[32];
        Span<byte> secret = stackalloc byte[32];
        Span<byte> timestamp = stackalloc byte[Tai64N.Length];
        try
        {
            NoiseConstants.InitialChainKey.CopyTo(ChainKeyState);
            InitialHashState.CopyTo(HashState);
            var ephemeralPublic = message.Slice(MessageFormat.InitiationEphemeral, 32);
            NewLocalEphemeral(ephemeralPublic, precomputed);

            MessageFormat.WriteType(message, MessageFormat.Initiation);
            BinaryPrimitives.WriteUInt32LittleEndian(message[MessageFormat.InitiationSender..], localIndex);

            Blake2s.Kdf(ChainKeyState, ephemeralPublic, ChainKeyState);
            MixHash(ephemeralPublic);

            if (!SharedSecret(secret, precomputed, precomputed.First, _localEphemeral, RemoteStaticState))
            {
                return false;
            }

            Blake2s.Kdf(ChainKeyState, secret, ChainKeyState, key);
            var encryptedStatic = message.Slice(MessageFormat.InitiationStatic, MessageFormat.InitiationStaticLength);
            Aead.Seal(key, 0, identity.PublicKey, HashState, encryptedStatic);
            MixHash(encryptedStatic);

            Blake2s.Kdf(ChainKeyState, StaticStatic, ChainKeyState, key);
            Tai64N.Write(timestamp, now);
            var encryptedTimestamp = message.Slice(MessageFormat.InitiationTimestamp, MessageFormat.InitiationTimestampLength);
            Aead.Seal(key, 0, timestamp, HashState, encryptedTimestamp);
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
    public static bool BeginConsumeInitiation(ReadOnlySpan<byte> message, StaticIdentity identity, ref ConsumedInitiation result) =>
        BeginConsumeInitiation(message, identity, ref result, precomputed: false, []);

    /// <summary>
    /// <see cref="BeginConsumeInitiation(ReadOnlySpan{byte}, StaticIdentity, ref ConsumedInitiation)"/> with es =
    /// DH(S_responder, E_initiator) computed ahead when <paramref name="precomputed"/> (empty: it was zero).
    /// </summary>
    public static bool BeginConsumeInitiation(ReadOnlySpan<byte> message, StaticIdentity identity, ref ConsumedInitiation result, bool precomputed, ReadOnlySpan<byte> es)
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
            if (precomputed ? es.IsEmpty : !Curve25519.SharedSecret(secret, identity.PrivateKey, ephemeral))
            {
                return false;
            }

            Blake2s.Kdf(result.ChainKey, precomputed ? es : secret, result.ChainKey, key);
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
        if (staticStatic.IsEmpty)
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
            begun.Hash.CopyTo(HashState);
            begun.ChainKey.CopyTo(ChainKeyState);
            begun.RemoteEphemeral.CopyTo(RemoteEphemeralState);
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
    public bool CreateResponse(Span<byte> message, uint localIndex) => CreateResponse(message, localIndex, default);

    /// <summary>Writes a response with the ephemeral key, ee and se from <paramref name="precomputed"/> (see <see cref="PrecomputedDh"/>).</summary>
    public bool CreateResponse(Span<byte> message, uint localIndex, PrecomputedDh precomputed)
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
            NewLocalEphemeral(ephemeralPublic, precomputed);

            Blake2s.Kdf(ChainKeyState, ephemeralPublic, ChainKeyState);
            MixHash(ephemeralPublic);
            if (!SharedSecret(secret, precomputed, precomputed.First, _localEphemeral, RemoteEphemeralState))
            {
                return false;
            }

            Blake2s.Kdf(ChainKeyState, secret, ChainKeyState);
            if (!SharedSecret(secret, precomputed, precomputed.Second, _localEphemeral, RemoteStaticState))
            {
                return false;
            }

            Blake2s.Kdf(ChainKeyState, secret, ChainKeyState);
            Blake2s.Kdf(ChainKeyState, PresharedKey, ChainKeyState, tau, key);
            MixHash(tau);
            var empty = message.Slice(MessageFormat.ResponseEmpty, Aead.TagLength);
            Aead.Seal(key, 0, [], HashState, empty);
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
    public bool ConsumeResponse(ReadOnlySpan<byte> message, StaticIdentity identity) => ConsumeResponse(message, identity, precomputed: false, [], []);

    /// <summary>
    /// <see cref="ConsumeResponse(ReadOnlySpan{byte}, StaticIdentity)"/> with ee = DH(e, E_responder) and se =
    /// DH(S_initiator, E_responder) computed ahead when <paramref name="precomputed"/> (empty: it was zero).
    /// </summary>
    public bool ConsumeResponse(ReadOnlySpan<byte> message, StaticIdentity identity, bool precomputed, ReadOnlySpan<byte> ee, ReadOnlySpan<byte> se)
    {
        if (State != HandshakeState.InitiationCreated || !_hasLocalEphemeral)
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
            HashState.CopyTo(hash);
            ChainKeyState.CopyTo(chainKey);
            var ephemeral = message.Slice(MessageFormat.ResponseEphemeral, 32);
            Blake2s.Kdf(chainKey, ephemeral, chainKey);
            Blake2s.Hash(hash, hash, ephemeral);
            if (precomputed ? ee.IsEmpty : !Curve25519.SharedSecret(secret, _localEphemeral, ephemeral))
            {
                return false;
            }

            Blake2s.Kdf(chainKey, precomputed ? ee : secret, chainKey);
            if (precomputed ? se.IsEmpty : !Curve25519.SharedSecret(secret, identity.PrivateKey, ephemeral))
            {
                return false;
            }

            if (precomputed)
            {
                se.CopyTo(secret);
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
            hash.CopyTo(HashState);
            chainKey.CopyTo(ChainKeyState);
            ephemeral.CopyTo(RemoteEphemeralState);
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
            Blake2s.Kdf(ChainKeyState, [], sendKey, receiveKey);
        }
        else
        {
            Blake2s.Kdf(ChainKeyState, [], receiveKey, sendKey);
        }

        Clear();
    }

    private void MixHash(ReadOnlySpan<byte> data) => Blake2s.Hash(HashState, HashState, data);

    private void NewLocalEphemeral(Span<byte> publicKey, PrecomputedDh precomputed)
    {
        _localEphemeral ??= GC.AllocateArray<byte>(32, pinned: true);
        if (precomputed.IsEmpty)
        {
            Curve25519.GenerateEphemeral(_localEphemeral, publicKey);
        }
        else
        {
            precomputed.EphemeralPrivate[..32].CopyTo(_localEphemeral);
            precomputed.EphemeralPublic[..32].CopyTo(publicKey);
        }

        _hasLocalEphemeral = true;
    }

    /// <summary>DH(privateKey, publicKey) into <paramref name="output"/>, or the precomputed <paramref name="given"/>; false when zero.</summary>
    private static bool SharedSecret(Span<byte> output, PrecomputedDh precomputed, ReadOnlySpan<byte> given, ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey)
    {
        if (precomputed.IsEmpty)
        {
            return Curve25519.SharedSecret(output, privateKey, publicKey);
        }

        if (given.IsEmpty)
        {
            return false;
        }

        given[..32].CopyTo(output);
        return true;
    }
}

internal enum ConsumeResult
{
    Ok,
    Failed,
    Replayed,
}
