namespace CloudVpn.WireGuard.Protocol;

/// <summary>The protocol's timer constants and message limits.</summary>
internal static class WireGuardTimers
{
    public const ulong RekeyAfterMessages = 1UL << 60;
    public const ulong RejectAfterMessages = ulong.MaxValue - (1UL << 13);
    public static readonly TimeSpan RekeyAfterTime = TimeSpan.FromSeconds(120);
    public static readonly TimeSpan RejectAfterTime = TimeSpan.FromSeconds(180);
    public static readonly TimeSpan RekeyAttemptTime = TimeSpan.FromSeconds(90);
    public static readonly TimeSpan RekeyTimeout = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan KeepaliveTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan CookieRefreshTime = TimeSpan.FromSeconds(120);
    public static readonly TimeSpan HandshakeInitiationRate = TimeSpan.FromMilliseconds(20);
    public const int MaxJitterMilliseconds = 333;

    /// <summary>
    /// Rekey-Attempt-Time / Rekey-Timeout. The retransmit timer gives up when the retry count is already past it,
    /// so there are 19 retries (20 initiations) as in the kernel and wireguard-go.
    /// </summary>
    public const int MaxHandshakeAttempts = 18;

    /// <summary>Receive-side rekey threshold: Reject-After-Time - Keepalive-Timeout - Rekey-Timeout (165 s).</summary>
    public static readonly TimeSpan RekeyOnReceiveAge = RejectAfterTime - KeepaliveTimeout - RekeyTimeout;

    /// <summary>Key material is erased after 3 x Reject-After-Time without a new handshake.</summary>
    public static readonly TimeSpan ZeroKeyMaterialAfter = RejectAfterTime * 3;

    /// <summary>Packets kept per peer while a handshake is pending.</summary>
    public const int MaxStagedPackets = 128;
}
