using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>
/// Encoding and decoding of the generic netlink family <c>wireguard</c> (version 1): SET_DEVICE requests split
/// over as many messages as needed, GET_DEVICE replies coalesced into one <see cref="WireGuardDeviceState"/>.
/// Pure functions over bytes: the socket is elsewhere.
/// </summary>
internal static class WireGuardGenl
{
    public const string FamilyName = "wireguard";
    public const byte Version = 1;
    public const byte CmdGetDevice = 0;
    public const byte CmdSetDevice = 1;
    public const int GenlHeaderLength = 4;

    public const ushort DeviceIfindex = 1;
    public const ushort DeviceIfname = 2;
    public const ushort DevicePrivateKey = 3;
    public const ushort DevicePublicKey = 4;
    public const ushort DeviceFlags = 5;
    public const ushort DeviceListenPort = 6;
    public const ushort DeviceFwmark = 7;
    public const ushort DevicePeers = 8;
    public const uint DeviceFlagReplacePeers = 1;

    public const ushort PeerPublicKey = 1;
    public const ushort PeerPresharedKey = 2;
    public const ushort PeerFlags = 3;
    public const ushort PeerEndpoint = 4;
    public const ushort PeerKeepalive = 5;
    public const ushort PeerLastHandshake = 6;
    public const ushort PeerRxBytes = 7;
    public const ushort PeerTxBytes = 8;
    public const ushort PeerAllowedIps = 9;
    public const ushort PeerProtocolVersion = 10;
    public const uint PeerFlagRemoveMe = 1;
    public const uint PeerFlagReplaceAllowedIps = 2;
    public const uint PeerFlagUpdateOnly = 4;

    public const ushort AllowedIpFamily = 1;
    public const ushort AllowedIpAddress = 2;
    public const ushort AllowedIpCidrMask = 3;
    public const ushort AllowedIpFlags = 4;
    public const uint AllowedIpFlagRemoveMe = 1;

    /// <summary>Default largest SET message: well under the 64 KiB nest limit and the default socket send buffer.</summary>
    public const int DefaultMaxMessageSize = 32 * 1024;

    private const ushort AfInet = 2;
    private const ushort AfInet6 = 10;

    /// <summary>Starts a generic netlink message of the family with <paramref name="familyId"/>.</summary>
    public static NetlinkMessageBuilder Begin(ushort familyId, byte command, byte version, ushort flags = 0)
    {
        var message = new NetlinkMessageBuilder(familyId, flags, 512);
        var header = message.AppendFamilyHeader(GenlHeaderLength);
        header[0] = command;
        header[1] = version;
        return message;
    }

    /// <summary>The GET_DEVICE dump request for an interface name.</summary>
    public static NetlinkMessageBuilder EncodeGet(ushort familyId, string interfaceName)
    {
        var message = Begin(familyId, CmdGetDevice, Version, NetlinkSocket.FlagRequest | NetlinkSocket.FlagDump);
        message.PutString(DeviceIfname, interfaceName);
        return message;
    }

    /// <summary>
    /// Encodes <paramref name="update"/> as SET_DEVICE messages of at most <paramref name="maxMessageSize"/> bytes.
    /// Device fields and REPLACE_PEERS go in the first message only. A peer that does not fit continues in the next
    /// message under its public key alone (plus REMOVE_ME/UPDATE_ONLY), with the remaining allowed IPs, which the
    /// kernel appends; REPLACE_ALLOWEDIPS, the preshared key, endpoint and keepalive go with the first part only.
    /// </summary>
    public static List<NetlinkMessageBuilder> EncodeSet(ushort familyId, string interfaceName, WireGuardDeviceUpdate update, int maxMessageSize = DefaultMaxMessageSize)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (maxMessageSize is < 512 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(maxMessageSize), maxMessageSize, "must be 512..65535 bytes");
        }

        var messages = new List<NetlinkMessageBuilder>();
        var message = StartSet(familyId, interfaceName);
        WriteDeviceFields(message, update);

        var peerIndex = 0;
        var allowedIndex = 0;
        var removeIndex = 0;
        var peersNest = -1;
        var peersInMessage = 0;
        while (peerIndex < update.Peers.Count)
        {
            var peer = update.Peers[peerIndex];
            if (peersNest < 0)
            {
                peersNest = message.BeginNested(DevicePeers);
                peersInMessage = 0;
            }

            var mark = message.Length;
            var firstPart = allowedIndex == 0 && removeIndex == 0;
            var peerNest = message.BeginNested(0);
            WritePeerHeader(message, peer, firstPart);
            if (message.Length > maxMessageSize)
            {
                message.Rollback(mark);
                if (peersInMessage == 0)
                {
                    throw new InvalidOperationException($"A WireGuard SET message of {maxMessageSize} bytes cannot hold the device settings and one peer.");
                }

                Flush();
                continue;
            }

            var fitsAll = true;
            var total = peer.Remove ? 0 : peer.AllowedIps.Count + peer.RemoveAllowedIps.Count;
            if (total > 0)
            {
                var listMark = message.Length;
                var list = message.BeginNested(PeerAllowedIps);
                var added = 0;
                while (!peer.Remove && allowedIndex < peer.AllowedIps.Count && TryPutAllowedIp(message, peer.AllowedIps[allowedIndex], remove: false, maxMessageSize))
                {
                    allowedIndex++;
                    added++;
                }

                while (!peer.Remove && allowedIndex == peer.AllowedIps.Count && removeIndex < peer.RemoveAllowedIps.Count && TryPutAllowedIp(message, peer.RemoveAllowedIps[removeIndex], remove: true, maxMessageSize))
                {
                    removeIndex++;
                    added++;
                }

                fitsAll = allowedIndex == peer.AllowedIps.Count && removeIndex == peer.RemoveAllowedIps.Count;
                if (added == 0)
                {
                    // Not even one allowed IP fits after this peer's header: move the whole part to a new message.
                    message.Rollback(peersInMessage == 0 ? listMark : mark);
                    if (peersInMessage == 0)
                    {
                        throw new InvalidOperationException($"A WireGuard SET message of {maxMessageSize} bytes cannot hold one peer with one allowed IP.");
                    }

                    Flush();
                    continue;
                }

                message.EndNested(list);
            }

            message.EndNested(peerNest);
            peersInMessage++;
            if (!fitsAll)
            {
                Flush();
                continue;
            }

            peerIndex++;
            allowedIndex = 0;
            removeIndex = 0;
        }

        if (peersNest >= 0)
        {
            message.EndNested(peersNest);
        }

        messages.Add(message);
        return messages;

        void Flush()
        {
            if (peersNest >= 0)
            {
                message.EndNested(peersNest);
            }

            messages.Add(message);
            message = StartSet(familyId, interfaceName);
            peersNest = -1;
            peersInMessage = 0;
        }
    }

    /// <summary>Decodes the family id and version from a CTRL_CMD_NEWFAMILY answer.</summary>
    public static (ushort FamilyId, uint Version) DecodeFamily(in NetlinkMessage reply)
    {
        ushort id = 0;
        uint version = 0;
        foreach (var attribute in reply.Attributes(GenlHeaderLength))
        {
            switch (attribute.Type)
            {
                case 1: // CTRL_ATTR_FAMILY_ID
                    id = attribute.U16;
                    break;
                case 3: // CTRL_ATTR_VERSION
                    version = attribute.U32;
                    break;
            }
        }

        return id != 0 ? (id, version) : throw new NetlinkProtocolException("CTRL_CMD_GETFAMILY answer without a family id.");
    }

    /// <summary>Starts a CTRL_CMD_GETFAMILY request for <paramref name="name"/>.</summary>
    public static NetlinkMessageBuilder EncodeGetFamily(string name)
    {
        var message = Begin(0x10, 3, 1); // GENL_ID_CTRL, CTRL_CMD_GETFAMILY
        message.PutString(2, name);      // CTRL_ATTR_FAMILY_NAME
        return message;
    }

    /// <summary>Adds one GET_DEVICE reply message to <paramref name="device"/>, merging a peer continued from the previous message.</summary>
    public static void DecodeGetPart(in NetlinkMessage reply, WireGuardDeviceState device)
    {
        foreach (var attribute in reply.Attributes(GenlHeaderLength))
        {
            switch (attribute.Type)
            {
                case DeviceIfindex:
                    device.Index = (int)attribute.U32;
                    break;
                case DeviceIfname:
                    device.Name = attribute.String;
                    break;
                case DevicePrivateKey:
                    device.PrivateKey?.Dispose();
                    device.PrivateKey = new WireGuardSecretKey(attribute.Expect(32));
                    break;
                case DevicePublicKey:
                    device.PublicKey = new WireGuardPublicKey(attribute.Expect(32));
                    break;
                case DeviceListenPort:
                    device.ListenPort = attribute.U16;
                    break;
                case DeviceFwmark:
                    device.FirewallMark = attribute.U32;
                    break;
                case DevicePeers:
                    foreach (var peerAttribute in attribute.Nested)
                    {
                        DecodePeer(peerAttribute.Nested, device);
                    }

                    break;
            }
        }
    }

    internal static IPEndPoint DecodeEndpoint(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 2)
        {
            throw new NetlinkProtocolException($"WGPEER_A_ENDPOINT of {sockaddr.Length} bytes.");
        }

        var family = BinaryPrimitives.ReadUInt16LittleEndian(sockaddr);
        if (family == AfInet && sockaddr.Length >= 16)
        {
            return new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]));
        }

        if (family == AfInet6 && sockaddr.Length >= 28)
        {
            var scope = BinaryPrimitives.ReadUInt32LittleEndian(sockaddr[24..]);
            return new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16), scope), BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]));
        }

        throw new NetlinkProtocolException($"WGPEER_A_ENDPOINT has address family {family} in {sockaddr.Length} bytes.");
    }

    internal static byte[] EncodeEndpoint(IPEndPoint endpoint)
    {
        var address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var bytes = new byte[16]; // sockaddr_in
            BinaryPrimitives.WriteUInt16LittleEndian(bytes, AfInet);
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)endpoint.Port);
            address.TryWriteBytes(bytes.AsSpan(4), out _);
            return bytes;
        }

        var v6 = new byte[28]; // sockaddr_in6
        BinaryPrimitives.WriteUInt16LittleEndian(v6, AfInet6);
        BinaryPrimitives.WriteUInt16BigEndian(v6.AsSpan(2), (ushort)endpoint.Port);
        address.TryWriteBytes(v6.AsSpan(8), out _);
        BinaryPrimitives.WriteUInt32LittleEndian(v6.AsSpan(24), (uint)address.ScopeId);
        return v6;
    }

    private static NetlinkMessageBuilder StartSet(ushort familyId, string interfaceName)
    {
        var message = Begin(familyId, CmdSetDevice, Version, NetlinkSocket.FlagRequest | NetlinkSocket.FlagAck);
        message.PutString(DeviceIfname, interfaceName);
        return message;
    }

    private static void WriteDeviceFields(NetlinkMessageBuilder message, WireGuardDeviceUpdate update)
    {
        if (update.PrivateKey is { } key)
        {
            message.PutBytes(DevicePrivateKey, key.Bytes);
        }

        if (update.ListenPort is { } port)
        {
            message.PutU16(DeviceListenPort, port);
        }

        if (update.FirewallMark is { } mark)
        {
            message.PutU32(DeviceFwmark, mark);
        }

        if (update.ReplacePeers)
        {
            message.PutU32(DeviceFlags, DeviceFlagReplacePeers);
        }
    }

    private static void WritePeerHeader(NetlinkMessageBuilder message, WireGuardPeerUpdate peer, bool firstPart)
    {
        message.PutBytes(PeerPublicKey, peer.PublicKey.Bytes);
        var flags = 0u;
        if (peer.Remove)
        {
            flags |= PeerFlagRemoveMe;
        }

        if (peer.UpdateOnly)
        {
            flags |= PeerFlagUpdateOnly;
        }

        if (firstPart && !peer.Remove)
        {
            if (peer.ReplaceAllowedIps)
            {
                flags |= PeerFlagReplaceAllowedIps;
            }

            if (peer.PresharedKey is { } psk)
            {
                message.PutBytes(PeerPresharedKey, psk.Bytes);
            }

            if (peer.Endpoint is { } endpoint)
            {
                message.PutBytes(PeerEndpoint, EncodeEndpoint(endpoint));
            }

            if (peer.PersistentKeepaliveInterval is { } keepalive)
            {
                message.PutU16(PeerKeepalive, keepalive);
            }
        }

        if (flags != 0)
        {
            message.PutU32(PeerFlags, flags);
        }
    }

    private static bool TryPutAllowedIp(NetlinkMessageBuilder message, IPNetwork network, bool remove, int maxMessageSize)
    {
        var mark = message.Length;
        var nest = message.BeginNested(0);
        var v4 = network.BaseAddress.AddressFamily == AddressFamily.InterNetwork;
        message.PutU16(AllowedIpFamily, v4 ? AfInet : AfInet6);
        message.PutBytes(AllowedIpAddress, network.BaseAddress.GetAddressBytes());
        message.PutU8(AllowedIpCidrMask, (byte)network.PrefixLength);
        if (remove)
        {
            message.PutU32(AllowedIpFlags, AllowedIpFlagRemoveMe);
        }

        message.EndNested(nest);
        if (message.Length > maxMessageSize)
        {
            message.Rollback(mark);
            return false;
        }

        return true;
    }

    private static void DecodePeer(NetlinkAttributes attributes, WireGuardDeviceState device)
    {
        WireGuardPeerState? peer = null;
        foreach (var attribute in attributes)
        {
            if (attribute.Type == PeerPublicKey)
            {
                var key = new WireGuardPublicKey(attribute.Expect(32));
                // A peer split over two messages comes again with only its key and more allowed IPs.
                peer = device.Peers.Count > 0 && device.Peers[^1].PublicKey == key ? device.Peers[^1] : null;
                if (peer is null)
                {
                    peer = new WireGuardPeerState(key);
                    device.Peers.Add(peer);
                }

                break;
            }
        }

        if (peer is null)
        {
            throw new NetlinkProtocolException("WireGuard GET_DEVICE reply has a peer without WGPEER_A_PUBLIC_KEY.");
        }

        foreach (var attribute in attributes)
        {
            switch (attribute.Type)
            {
                case PeerPresharedKey:
                    peer.PresharedKey?.Dispose();
                    peer.PresharedKey = new WireGuardSecretKey(attribute.Expect(32));
                    break;
                case PeerEndpoint:
                    peer.Endpoint = DecodeEndpoint(attribute.Payload);
                    break;
                case PeerKeepalive:
                    peer.PersistentKeepaliveInterval = attribute.U16;
                    break;
                case PeerLastHandshake:
                    var time = attribute.Expect(16);
                    var seconds = BinaryPrimitives.ReadInt64LittleEndian(time);
                    var nanoseconds = BinaryPrimitives.ReadInt64LittleEndian(time[8..]);
                    peer.LastHandshake = seconds == 0 && nanoseconds == 0
                        ? null
                        : DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(nanoseconds / 100);
                    break;
                case PeerRxBytes:
                    peer.ReceivedBytes = attribute.U64;
                    break;
                case PeerTxBytes:
                    peer.TransmittedBytes = attribute.U64;
                    break;
                case PeerProtocolVersion:
                    peer.ProtocolVersion = attribute.U32;
                    break;
                case PeerAllowedIps:
                    foreach (var entry in attribute.Nested)
                    {
                        peer.AllowedIps.Add(DecodeAllowedIp(entry.Nested));
                    }

                    break;
            }
        }
    }

    private static IPNetwork DecodeAllowedIp(NetlinkAttributes attributes)
    {
        ushort family = 0;
        IPAddress? address = null;
        int? cidr = null;
        foreach (var attribute in attributes)
        {
            switch (attribute.Type)
            {
                case AllowedIpFamily:
                    family = attribute.U16;
                    break;
                case AllowedIpAddress:
                    address = new IPAddress(attribute.Payload);
                    break;
                case AllowedIpCidrMask:
                    cidr = attribute.U8;
                    break;
            }
        }

        if (address is null || cidr is null || (family == AfInet) != (address.AddressFamily == AddressFamily.InterNetwork))
        {
            throw new NetlinkProtocolException($"WireGuard allowed IP entry is incomplete or inconsistent (family {family}, address {address}, mask {cidr}).");
        }

        return new IPNetwork(address, cidr.Value);
    }
}
