namespace CloudVpn.WireGuard.Protocol;

/// <summary>Why the engine dropped a packet (a label for metrics).</summary>
public enum WireGuardDropReason
{
    /// <summary>A datagram too short for any message, or a handshake message of the wrong size.</summary>
    InvalidLength,
    /// <summary>A message type other than 1..4 (or non-zero reserved bytes).</summary>
    UnknownType,
    /// <summary>mac1 of a handshake message did not verify.</summary>
    InvalidMac1,
    /// <summary>Under load, a handshake message without a valid mac2: answered with a cookie reply instead.</summary>
    CookieRequired,
    /// <summary>Under load, a source address exceeded the handshake rate limit.</summary>
    RateLimited,
    /// <summary>A handshake message that failed to decrypt, named an unknown peer or came from a bad key.</summary>
    HandshakeFailed,
    /// <summary>An initiation whose timestamp is not newer than the last one accepted (a replay), or one within 20 ms of the last.</summary>
    HandshakeReplayed,
    /// <summary>A response, cookie reply or transport message for a receiver index we do not know.</summary>
    UnknownReceiverIndex,
    /// <summary>A cookie reply that failed to decrypt.</summary>
    InvalidCookieReply,
    /// <summary>A transport message that failed authentication.</summary>
    DecryptFailed,
    /// <summary>A transport counter seen before or too old for the replay window.</summary>
    ReplayedCounter,
    /// <summary>A transport message for a keypair past Reject-After-Time or Reject-After-Messages.</summary>
    KeypairExpired,
    /// <summary>A decrypted packet that is not a valid IPv4 or IPv6 packet.</summary>
    InvalidInnerPacket,
    /// <summary>A decrypted packet whose source address is outside the peer's allowed IPs.</summary>
    SourceNotAllowed,
    /// <summary>A packet from the TUN device that is not a valid IP packet.</summary>
    InvalidTunPacket,
    /// <summary>A packet from the TUN device whose destination matches no peer's allowed IPs.</summary>
    NoRoute,
    /// <summary>A packet for a peer without a known endpoint.</summary>
    NoEndpoint,
    /// <summary>A packet waiting for a handshake pushed out of the (bounded) per-peer queue, or dropped on give-up.</summary>
    QueueOverflow,
    /// <summary>The engine has no private key.</summary>
    NoPrivateKey,
    /// <summary>An unexpected error while handling the packet (a bug or a failing transport); logged.</summary>
    InternalError,
}

/// <summary>Counters of the engine (monotonic, thread-safe): drops by reason and handshakes by outcome.</summary>
public sealed class WireGuardEngineCounters
{
    private readonly long[] _drops = new long[Enum.GetValues<WireGuardDropReason>().Length];
    private long _initiationsSent;
    private long _initiationsReceived;
    private long _responsesSent;
    private long _responsesReceived;
    private long _cookieRepliesSent;
    private long _cookieRepliesReceived;
    private long _handshakesCompleted;
    private long _handshakeGiveUps;
    private long _keepalivesSent;
    private long _initiationLaneGroups;
    private long _responseLaneGroups;

    /// <summary>Packets dropped for <paramref name="reason"/>.</summary>
    public long Drops(WireGuardDropReason reason) => Volatile.Read(ref _drops[(int)reason]);

    /// <summary>All dropped packets.</summary>
    public long TotalDrops
    {
        get
        {
            long sum = 0;
            for (var i = 0; i < _drops.Length; i++)
            {
                sum += Volatile.Read(ref _drops[i]);
            }

            return sum;
        }
    }

    /// <summary>Handshake initiations sent (first attempts and retries).</summary>
    public long HandshakeInitiationsSent => Volatile.Read(ref _initiationsSent);

    /// <summary>Handshake initiations received and accepted.</summary>
    public long HandshakeInitiationsReceived => Volatile.Read(ref _initiationsReceived);

    /// <summary>Handshake responses sent.</summary>
    public long HandshakeResponsesSent => Volatile.Read(ref _responsesSent);

    /// <summary>Handshake responses received and accepted.</summary>
    public long HandshakeResponsesReceived => Volatile.Read(ref _responsesReceived);

    /// <summary>Cookie replies sent (under load).</summary>
    public long CookieRepliesSent => Volatile.Read(ref _cookieRepliesSent);

    /// <summary>Cookie replies received and accepted.</summary>
    public long CookieRepliesReceived => Volatile.Read(ref _cookieRepliesReceived);

    /// <summary>Sessions derived (as initiator or responder).</summary>
    public long HandshakesCompleted => Volatile.Read(ref _handshakesCompleted);

    /// <summary>Times a peer gave up after Rekey-Attempt-Time without an answer.</summary>
    public long HandshakeGiveUps => Volatile.Read(ref _handshakeGiveUps);

    /// <summary>Keepalives sent (passive and persistent).</summary>
    public long KeepalivesSent => Volatile.Read(ref _keepalivesSent);

    /// <summary>
    /// Groups of eight X25519 run in AVX-512 lanes for bursts of initiations (several in one UDP batch): es, then the
    /// responses' ephemeral keys, ee and se.
    /// </summary>
    public long InitiationLaneGroups => Volatile.Read(ref _initiationLaneGroups);

    /// <summary>Groups of eight X25519 run in AVX-512 lanes for bursts of responses to our initiations (ee and se).</summary>
    public long ResponseLaneGroups => Volatile.Read(ref _responseLaneGroups);

    internal void InitiationLanes(int groups) => Interlocked.Add(ref _initiationLaneGroups, groups);

    internal void ResponseLanes(int groups) => Interlocked.Add(ref _responseLaneGroups, groups);

    internal void Drop(WireGuardDropReason reason) => Interlocked.Increment(ref _drops[(int)reason]);

    internal void InitiationSent() => Interlocked.Increment(ref _initiationsSent);

    internal void InitiationReceived() => Interlocked.Increment(ref _initiationsReceived);

    internal void ResponseSent() => Interlocked.Increment(ref _responsesSent);

    internal void ResponseReceived() => Interlocked.Increment(ref _responsesReceived);

    internal void CookieReplySent() => Interlocked.Increment(ref _cookieRepliesSent);

    internal void CookieReplyReceived() => Interlocked.Increment(ref _cookieRepliesReceived);

    internal void HandshakeCompleted() => Interlocked.Increment(ref _handshakesCompleted);

    internal void HandshakeGaveUp() => Interlocked.Increment(ref _handshakeGiveUps);

    internal void KeepaliveSent() => Interlocked.Increment(ref _keepalivesSent);
}
