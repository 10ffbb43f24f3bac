using System.Net;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Uapi;

/// <summary>
/// What a <c>get=1</c> request answers: the device's key, port, firewall mark and peers. Owns its key copies and
/// zeroes them on <see cref="Dispose"/>; <see cref="ToString"/> shows no key material.
/// </summary>
public sealed class UapiDeviceState : IDisposable
{
    /// <summary>The device's private key, or null when none is set (then <c>private_key</c> is not written).</summary>
    public WireGuardSecretKey? PrivateKey { get; init; }

    /// <summary>The UDP port the device listens on; 0 = not written.</summary>
    public ushort ListenPort { get; init; }

    /// <summary>The firewall mark of outgoing packets; 0 = not written.</summary>
    public uint FirewallMark { get; init; }

    /// <summary>The peers, in the order they are reported.</summary>
    public IReadOnlyList<UapiPeerState> Peers { get; init; } = [];

    /// <summary>Zeroes the private key and every preshared key.</summary>
    public void Dispose()
    {
        PrivateKey?.Dispose();
        foreach (var peer in Peers)
        {
            peer.PresharedKey?.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"UapiDeviceState {{ PrivateKey = {(PrivateKey is null ? "none" : "<redacted>")}, ListenPort = {ListenPort}, FirewallMark = {FirewallMark}, Peers = {Peers.Count} }}";
}

/// <summary>One peer in a <c>get=1</c> answer.</summary>
public sealed class UapiPeerState
{
    /// <summary>The peer's public key.</summary>
    public required WireGuardPublicKey PublicKey { get; init; }

    /// <summary>The preshared key, or null for none (written as 64 zeros, as wireguard-go does).</summary>
    public WireGuardSecretKey? PresharedKey { get; init; }

    /// <summary>The current endpoint, or null when unknown (then <c>endpoint</c> is not written).</summary>
    public IPEndPoint? Endpoint { get; init; }

    /// <summary>Time of the last completed handshake, or null for never (written as 0 s, 0 ns).</summary>
    public DateTimeOffset? LastHandshake { get; init; }

    /// <summary>Bytes received from the peer.</summary>
    public ulong ReceivedBytes { get; init; }

    /// <summary>Bytes sent to the peer.</summary>
    public ulong TransmittedBytes { get; init; }

    /// <summary>Persistent keepalive interval in seconds; 0 = off.</summary>
    public ushort PersistentKeepaliveInterval { get; init; }

    /// <summary>The peer's allowed IPs (each with its host bits cleared).</summary>
    public IReadOnlyList<IPNetwork> AllowedIps { get; init; } = [];

    /// <summary>The protocol version (always 1 today).</summary>
    public int ProtocolVersion { get; init; } = 1;

    /// <inheritdoc />
    public override string ToString() =>
        $"UapiPeerState {{ PublicKey = {PublicKey}, PresharedKey = {(PresharedKey is null ? "none" : "<redacted>")}, Endpoint = {Endpoint?.ToString() ?? "none"}, AllowedIps = [{string.Join(", ", AllowedIps)}] }}";
}
