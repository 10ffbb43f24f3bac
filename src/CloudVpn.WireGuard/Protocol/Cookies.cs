using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>Labels and the key derivations shared by both ends of the cookie mechanism.</summary>
internal static class CookieKeys
{
    public static ReadOnlySpan<byte> Mac1Label => "mac1----"u8;

    public static ReadOnlySpan<byte> CookieLabel => "cookie--"u8;

    public static readonly TimeSpan CookieRefreshTime = TimeSpan.FromSeconds(120);

    /// <summary>mac1 key = HASH("mac1----" || public key); cookie key = HASH("cookie--" || public key).</summary>
    public static void Derive(ReadOnlySpan<byte> publicKey, Span<byte> mac1Key, Span<byte> cookieKey)
    {
        Blake2s.Hash(mac1Key, Mac1Label, publicKey);
        Blake2s.Hash(cookieKey, CookieLabel, publicKey);
    }
}

/// <summary>
/// The responder side of the cookie mechanism for one static identity: checks mac1 and mac2 of incoming handshake
/// messages and writes cookie replies. The cookie secret is random and renewed every 120 s.
/// </summary>
internal sealed class CookieChecker : IDisposable
{
    private readonly byte[] _mac1Key = new byte[32];
    private readonly byte[] _cookieKey = new byte[32];
    private readonly byte[] _secret = GC.AllocateArray<byte>(32, pinned: true);
    private readonly Lock _secretLock = new();
    private readonly Blake2sState _mac1Keyed;
    private long _secretBirth = long.MinValue;

    public CookieChecker(ReadOnlySpan<byte> localPublicKey)
    {
        CookieKeys.Derive(localPublicKey, _mac1Key, _cookieKey);

        // mac1 is checked on every handshake message before anything else, garbage included: the keyed state is
        // built once and copied per check (a value type, so no allocation and no sharing between threads)
        _mac1Keyed = new Blake2sState(Blake2s.MacLength, _mac1Key);
    }

    /// <summary>mac1 over the message up to mac1 (fixed-time compare).</summary>
    public bool CheckMac1(ReadOnlySpan<byte> message)
    {
        var mac1Offset = message.Length - (2 * Blake2s.MacLength);
        Span<byte> expected = stackalloc byte[Blake2s.MacLength];
        var state = _mac1Keyed;
        state.Update(message[..mac1Offset]);
        state.Final(expected);
        return CryptographicOperations.FixedTimeEquals(expected, message.Slice(mac1Offset, Blake2s.MacLength));
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_secret);
    }

    /// <summary>mac2 = MAC(cookie for <paramref name="source"/>, message up to mac2).</summary>
    public bool CheckMac2(ReadOnlySpan<byte> message, IPEndPoint source, long nowTicks)
    {
        var mac2Offset = message.Length - Blake2s.MacLength;
        Span<byte> cookie = stackalloc byte[Blake2s.MacLength];
        Span<byte> expected = stackalloc byte[Blake2s.MacLength];
        MakeCookie(cookie, source, nowTicks);
        Blake2s.Mac(expected, cookie, message[..mac2Offset]);
        return CryptographicOperations.FixedTimeEquals(expected, message[mac2Offset..]);
    }

    /// <summary>Writes a 64-byte cookie reply to <paramref name="message"/> (addressed to the sender index <paramref name="receiver"/>).</summary>
    public void WriteReply(Span<byte> reply, ReadOnlySpan<byte> message, uint receiver, IPEndPoint source, long nowTicks)
    {
        var mac1 = message.Slice(message.Length - (2 * Blake2s.MacLength), Blake2s.MacLength);
        Span<byte> cookie = stackalloc byte[Blake2s.MacLength];
        MakeCookie(cookie, source, nowTicks);
        MessageFormat.WriteType(reply, MessageFormat.CookieReply);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[MessageFormat.CookieReceiver..], receiver);
        var nonce = reply.Slice(MessageFormat.CookieNonce, Aead.XNonceLength);
        RandomNumberGenerator.Fill(nonce);
        Aead.XSeal(_cookieKey, nonce, cookie, mac1, reply.Slice(MessageFormat.CookieEncrypted, MessageFormat.CookieEncryptedLength));
    }

    private void MakeCookie(Span<byte> cookie, IPEndPoint source, long nowTicks)
    {
        Span<byte> encoded = stackalloc byte[18];
        var length = EncodeSource(encoded, source);
        lock (_secretLock)
        {
            if (nowTicks - _secretBirth > CookieKeys.CookieRefreshTime.Ticks || _secretBirth == long.MinValue)
            {
                RandomNumberGenerator.Fill(_secret);
                _secretBirth = nowTicks;
            }

            Blake2s.Mac(cookie, _secret, encoded[..length]);
        }
    }

    private static int EncodeSource(Span<byte> output, IPEndPoint source)
    {
        var address = source.Address;
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        address.TryWriteBytes(output, out var written);
        BinaryPrimitives.WriteUInt16BigEndian(output[written..], (ushort)source.Port);
        return written + 2;
    }
}

/// <summary>
/// The initiator side for one peer: adds mac1 (and mac2 while a cookie is fresh) to outgoing handshake messages and
/// accepts cookie replies. Thread-safe.
/// </summary>
internal sealed class CookieGenerator
{
    // mac1 key | cookie key | cookie | last mac1, in one array (one object per peer instead of four)
    private readonly byte[] _state = new byte[32 + 32 + Blake2s.MacLength + Blake2s.MacLength];
    private readonly Lock _lock = new();
    private bool _hasLastMac1;
    private long _cookieTime = long.MinValue;

    public CookieGenerator(ReadOnlySpan<byte> peerPublicKey) => CookieKeys.Derive(peerPublicKey, Mac1Key, CookieKey);

    private Span<byte> Mac1Key => _state.AsSpan(0, 32);

    private Span<byte> CookieKey => _state.AsSpan(32, 32);

    private Span<byte> Cookie => _state.AsSpan(64, Blake2s.MacLength);

    private Span<byte> LastMac1 => _state.AsSpan(64 + Blake2s.MacLength, Blake2s.MacLength);

    /// <summary>Fills mac1 and mac2 (the last 32 bytes) of a handshake message.</summary>
    public void AddMacs(Span<byte> message, long nowTicks)
    {
        var mac1Offset = message.Length - (2 * Blake2s.MacLength);
        var mac2Offset = message.Length - Blake2s.MacLength;
        lock (_lock)
        {
            Blake2s.Mac(message.Slice(mac1Offset, Blake2s.MacLength), Mac1Key, message[..mac1Offset]);
            message.Slice(mac1Offset, Blake2s.MacLength).CopyTo(LastMac1);
            _hasLastMac1 = true;
            if (_cookieTime != long.MinValue && nowTicks - _cookieTime < CookieKeys.CookieRefreshTime.Ticks)
            {
                Blake2s.Mac(message[mac2Offset..], Cookie, message[..mac2Offset]);
            }
            else
            {
                message[mac2Offset..].Clear();
            }
        }
    }

    /// <summary>Whether a cookie received within the last 120 s is held (then <see cref="AddMacs"/> writes mac2).</summary>
    public bool HasCookie(long nowTicks)
    {
        lock (_lock)
        {
            return _cookieTime != long.MinValue && nowTicks - _cookieTime < CookieKeys.CookieRefreshTime.Ticks;
        }
    }

    /// <summary>Decrypts a cookie reply to the last message we sent; false when it does not authenticate.</summary>
    public bool ConsumeReply(ReadOnlySpan<byte> reply, long nowTicks)
    {
        lock (_lock)
        {
            if (!_hasLastMac1)
            {
                return false;
            }

            Span<byte> cookie = stackalloc byte[Blake2s.MacLength];
            if (!Aead.XOpen(CookieKey, reply.Slice(MessageFormat.CookieNonce, Aead.XNonceLength),
                    reply.Slice(MessageFormat.CookieEncrypted, MessageFormat.CookieEncryptedLength), LastMac1, cookie))
            {
                return false;
            }

            cookie.CopyTo(Cookie);
            _cookieTime = nowTicks;
            return true;
        }
    }
}

/// <summary>
/// Per-source handshake rate limit (token bucket, 20 per second with a burst of 5, as the reference implementations):
/// IPv4 by address, IPv6 by /64. Entries idle for a second are dropped.
/// </summary>
internal sealed class HandshakeRateLimiter
{
    private const int PacketsPerSecond = 20;
    private const int Burst = 5;
    private static readonly long PacketCost = TimeSpan.TicksPerSecond / PacketsPerSecond;
    private static readonly long MaxTokens = PacketCost * Burst;

    private readonly Dictionary<UInt128, Bucket> _buckets = [];
    private readonly Lock _lock = new();
    private long _lastSweep;

    public bool Allow(IPAddress address, long nowTicks)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        address.TryWriteBytes(bytes, out var written);
        UInt128 key = written == 4
            ? BinaryPrimitives.ReadUInt32BigEndian(bytes)
            : (UInt128)BinaryPrimitives.ReadUInt64BigEndian(bytes) << 64 | 1;

        lock (_lock)
        {
            if (nowTicks - _lastSweep > TimeSpan.TicksPerSecond)
            {
                foreach (var (k, bucket) in _buckets)
                {
                    if (nowTicks - bucket.Last > TimeSpan.TicksPerSecond)
                    {
                        _buckets.Remove(k);
                    }
                }

                _lastSweep = nowTicks;
            }

            if (!_buckets.TryGetValue(key, out var entry))
            {
                _buckets[key] = new Bucket(MaxTokens - PacketCost, nowTicks);
                return true;
            }

            var tokens = Math.Min(MaxTokens, entry.Tokens + (nowTicks - entry.Last));
            if (tokens < PacketCost)
            {
                _buckets[key] = new Bucket(tokens, nowTicks);
                return false;
            }

            _buckets[key] = new Bucket(tokens - PacketCost, nowTicks);
            return true;
        }
    }

    private readonly record struct Bucket(long Tokens, long Last);
}
