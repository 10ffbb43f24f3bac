using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace CloudVpn.WireGuard.Netlink;

/// <summary>
/// rtnetlink (NETLINK_ROUTE) for tunnel devices: links (create by kind, delete, MTU, up/down), addresses and
/// device routes, in the caller's network namespace or a named one. Every kernel refusal becomes a
/// <see cref="NetlinkException"/> naming the request and the errno.
/// </summary>
public sealed class RtNetlink : IDisposable
{
    internal const ushort RtmNewLink = 16;
    internal const ushort RtmDelLink = 17;
    internal const ushort RtmGetLink = 18;
    internal const ushort RtmNewAddr = 20;
    internal const ushort RtmDelAddr = 21;
    internal const ushort RtmGetAddr = 22;
    internal const ushort RtmNewRoute = 24;
    internal const ushort RtmDelRoute = 25;
    internal const ushort RtmGetRoute = 26;

    internal const ushort IflaIfname = 3;
    internal const ushort IflaMtu = 4;
    internal const ushort IflaLinkinfo = 18;
    internal const ushort IflaInfoKind = 1;
    internal const ushort IfaAddress = 1;
    internal const ushort IfaLocal = 2;
    internal const ushort RtaDst = 1;
    internal const ushort RtaOif = 4;
    internal const ushort RtaTable = 15;

    internal const int IfInfoMsgLength = 16;
    internal const int IfAddrMsgLength = 8;
    internal const int RtMsgLength = 12;

    private const uint IffUp = 0x1;
    private const byte RtTableMain = 254;
    private const byte RtProtStatic = 4;
    private const byte RtScopeUniverse = 0;
    private const byte RtScopeLink = 253;
    private const byte RtnUnicast = 1;
    private const int Enodev = 19;
    private const int Eexist = 17;
    private const int Eaddrnotavail = 99;

    private readonly NetlinkSocket _socket;

    private RtNetlink(NetlinkSocket socket) => _socket = socket;

    /// <summary>Opens rtnetlink in the caller's network namespace.</summary>
    public static RtNetlink Open() => new(NetlinkSocket.Open(NetlinkSocket.NetlinkRoute));

    /// <summary>Opens rtnetlink in another network namespace (a path such as <c>/proc/1234/ns/net</c> or an <c>ip netns</c> name).</summary>
    public static RtNetlink Open(string networkNamespace) => new(NetlinkSocket.Open(NetlinkSocket.NetlinkRoute, NetworkNamespace.PathOf(networkNamespace)));

    /// <summary>The index of the link called <paramref name="name"/>; -1 when there is none.</summary>
    public int GetLinkIndex(string name)
    {
        ValidateName(name);
        var message = new NetlinkMessageBuilder(RtmGetLink, 0);
        message.AppendFamilyHeader(IfInfoMsgLength);
        message.PutString(IflaIfname, name);
        var index = -1;
        try
        {
            _socket.Query(message, $"RTM_GETLINK {name}", (in NetlinkMessage reply) =>
            {
                if (reply.Type == RtmNewLink && reply.Payload.Length >= IfInfoMsgLength)
                {
                    index = BinaryPrimitives.ReadInt32LittleEndian(reply.Payload[4..]);
                }
            });
        }
        catch (NetlinkException e) when (e.Errno == Enodev)
        {
            return -1;
        }

        return index;
    }

    /// <summary>Creates a link of <paramref name="kind"/> (for example <c>wireguard</c>) and returns its index.</summary>
    /// <exception cref="NetlinkException">EEXIST when the name is taken; EOPNOTSUPP when the kernel lacks that link kind (module not loaded).</exception>
    public int CreateLink(string name, string kind)
    {
        ValidateName(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        var message = new NetlinkMessageBuilder(RtmNewLink, NetlinkSocket.FlagCreate | NetlinkSocket.FlagExclusive);
        message.AppendFamilyHeader(IfInfoMsgLength);
        message.PutString(IflaIfname, name);
        var linkInfo = message.BeginNested(IflaLinkinfo);
        message.PutString(IflaInfoKind, kind);
        message.EndNested(linkInfo);
        _socket.Request(message, $"RTM_NEWLINK {name} type {kind}");
        var index = GetLinkIndex(name);
        return index > 0 ? index : throw new NetlinkException($"RTM_NEWLINK {name} type {kind}: link not found after creation", Enodev);
    }

    /// <summary>Deletes the link with <paramref name="index"/>.</summary>
    public void DeleteLink(int index)
    {
        var message = LinkMessage(RtmDelLink, index, 0, 0);
        _socket.Request(message, $"RTM_DELLINK index {index}");
    }

    /// <summary>Sets the MTU of a link.</summary>
    public void SetLinkMtu(int index, int mtu)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 68);
        var message = LinkMessage(RtmNewLink, index, 0, 0);
        message.PutU32(IflaMtu, (uint)mtu);
        _socket.Request(message, $"RTM_NEWLINK index {index} mtu {mtu}");
    }

    /// <summary>Brings a link up or down.</summary>
    public void SetLinkUp(int index, bool up)
    {
        var message = LinkMessage(RtmNewLink, index, up ? IffUp : 0, IffUp);
        _socket.Request(message, $"RTM_NEWLINK index {index} {(up ? "up" : "down")}");
    }

    /// <summary>Reads a link's MTU and whether it is administratively up; null when the index does not exist.</summary>
    public (int Mtu, bool IsUp)? GetLinkState(int index)
    {
        var message = LinkMessage(RtmGetLink, index, 0, 0);
        (int, bool)? state = null;
        try
        {
            _socket.Query(message, $"RTM_GETLINK index {index}", (in NetlinkMessage reply) =>
            {
                if (reply.Type != RtmNewLink)
                {
                    return;
                }

                var flags = BinaryPrimitives.ReadUInt32LittleEndian(reply.Payload[8..]);
                var mtu = 0;
                foreach (var attribute in reply.Attributes(IfInfoMsgLength))
                {
                    if (attribute.Type == IflaMtu)
                    {
                        mtu = (int)attribute.U32;
                    }
                }

                state = (mtu, (flags & IffUp) != 0);
            });
        }
        catch (NetlinkException e) when (e.Errno == Enodev)
        {
            return null;
        }

        return state;
    }

    /// <summary>Adds an address to a link; an address that is already there is not an error.</summary>
    public void AddAddress(int index, IPAddress address, int prefixLength)
    {
        var message = AddressMessage(RtmNewAddr, NetlinkSocket.FlagCreate | NetlinkSocket.FlagExclusive, index, address, prefixLength);
        try
        {
            _socket.Request(message, $"RTM_NEWADDR {address}/{prefixLength} index {index}");
        }
        catch (NetlinkException e) when (e.Errno == Eexist)
        {
        }
    }

    /// <summary>Removes an address from a link.</summary>
    public void DeleteAddress(int index, IPAddress address, int prefixLength)
    {
        var message = AddressMessage(RtmDelAddr, 0, index, address, prefixLength);
        _socket.Request(message, $"RTM_DELADDR {address}/{prefixLength} index {index}");
    }

    /// <summary>The addresses of a link (IPv4 and IPv6, including kernel-assigned link-local ones).</summary>
    public IReadOnlyList<(IPAddress Address, int PrefixLength)> GetAddresses(int index)
    {
        var message = new NetlinkMessageBuilder(RtmGetAddr, 0);
        message.AppendFamilyHeader(IfAddrMsgLength);
        var result = new List<(IPAddress, int)>();
        _socket.Dump(message, $"RTM_GETADDR index {index}", (in NetlinkMessage reply) =>
        {
            if (reply.Type != RtmNewAddr || reply.Payload.Length < IfAddrMsgLength)
            {
                return;
            }

            var family = reply.Payload[0];
            var prefix = reply.Payload[1];
            var linkIndex = BinaryPrimitives.ReadInt32LittleEndian(reply.Payload[4..]);
            if (linkIndex != index)
            {
                return;
            }

            IPAddress? local = null;
            IPAddress? peer = null;
            foreach (var attribute in reply.Attributes(IfAddrMsgLength))
            {
                if (attribute.Type == IfaLocal)
                {
                    local = new IPAddress(attribute.Payload);
                }
                else if (attribute.Type == IfaAddress)
                {
                    peer = new IPAddress(attribute.Payload);
                }
            }

            // IPv4 keeps the interface's own address in IFA_LOCAL (IFA_ADDRESS is the peer on point-to-point links).
            var address = family == (byte)AddressFamily.InterNetwork ? local ?? peer : peer ?? local;
            if (address is not null)
            {
                result.Add((address, prefix));
            }
        });
        return result;
    }

    /// <summary>Adds or replaces (NLM_F_REPLACE) the main-table route to <paramref name="destination"/> through the link.</summary>
    public void ReplaceRoute(int index, IPNetwork destination)
    {
        var message = RouteMessage(RtmNewRoute, NetlinkSocket.FlagCreate | NetlinkSocket.FlagReplace, index, destination);
        _socket.Request(message, $"RTM_NEWROUTE {destination} index {index}");
    }

    /// <summary>Deletes the main-table route to <paramref name="destination"/> through the link.</summary>
    public void DeleteRoute(int index, IPNetwork destination)
    {
        var message = RouteMessage(RtmDelRoute, 0, index, destination);
        _socket.Request(message, $"RTM_DELROUTE {destination} index {index}");
    }

    /// <summary>Deletes the route when present; false when there was none.</summary>
    public bool TryDeleteRoute(int index, IPNetwork destination)
    {
        try
        {
            DeleteRoute(index, destination);
            return true;
        }
        catch (NetlinkException e) when (e.Errno is 3 or Eaddrnotavail)
        {
            return false;
        }
    }

    /// <summary>The main-table routes whose output device is the link (destination prefixes only).</summary>
    public IReadOnlyList<IPNetwork> GetRoutes(int index)
    {
        var result = new List<IPNetwork>();
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            var message = new NetlinkMessageBuilder(RtmGetRoute, 0);
            var header = message.AppendFamilyHeader(RtMsgLength);
            header[0] = (byte)(family == AddressFamily.InterNetwork ? 2 : 10);
            _socket.Dump(message, $"RTM_GETROUTE family {family}", (in NetlinkMessage reply) =>
            {
                if (reply.Type != RtmNewRoute || reply.Payload.Length < RtMsgLength)
                {
                    return;
                }

                var dstLength = reply.Payload[1];
                uint table = reply.Payload[4];
                var type = reply.Payload[7];
                IPAddress? destination = null;
                var oif = -1;
                foreach (var attribute in reply.Attributes(RtMsgLength))
                {
                    switch (attribute.Type)
                    {
                        case RtaDst:
                            destination = new IPAddress(attribute.Payload);
                            break;
                        case RtaOif:
                            oif = attribute.I32;
                            break;
                        case RtaTable:
                            table = attribute.U32;
                            break;
                    }
                }

                if (oif == index && table == RtTableMain && type == RtnUnicast)
                {
                    destination ??= family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
                    result.Add(new IPNetwork(destination, dstLength));
                }
            });
        }

        return result;
    }

    /// <inheritdoc />
    public void Dispose() => _socket.Dispose();

    internal static NetlinkMessageBuilder LinkMessage(ushort type, int index, uint flags, uint change)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(index);
        var message = new NetlinkMessageBuilder(type, 0);
        var header = message.AppendFamilyHeader(IfInfoMsgLength);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], index);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], change);
        return message;
    }

    internal static NetlinkMessageBuilder AddressMessage(ushort type, ushort flags, int index, IPAddress address, int prefixLength)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(index);
        var maxPrefix = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (prefixLength < 0 || prefixLength > maxPrefix)
        {
            throw new ArgumentOutOfRangeException(nameof(prefixLength), prefixLength, $"prefix length of {address} must be 0..{maxPrefix}");
        }

        var message = new NetlinkMessageBuilder(type, flags);
        var header = message.AppendFamilyHeader(IfAddrMsgLength);
        header[0] = FamilyByte(address);
        header[1] = (byte)prefixLength;
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], index);
        var bytes = address.GetAddressBytes();
        message.PutBytes(IfaLocal, bytes);
        message.PutBytes(IfaAddress, bytes);
        return message;
    }

    internal static NetlinkMessageBuilder RouteMessage(ushort type, ushort flags, int index, IPNetwork destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(index);
        var message = new NetlinkMessageBuilder(type, flags);
        var header = message.AppendFamilyHeader(RtMsgLength);
        var v4 = destination.BaseAddress.AddressFamily == AddressFamily.InterNetwork;
        header[0] = FamilyByte(destination.BaseAddress);
        header[1] = (byte)destination.PrefixLength;
        header[4] = RtTableMain;
        header[5] = RtProtStatic;
        header[6] = v4 ? RtScopeLink : RtScopeUniverse;
        header[7] = RtnUnicast;
        message.PutBytes(RtaDst, destination.BaseAddress.GetAddressBytes());
        message.PutU32(RtaOif, (uint)index);
        return message;
    }

    private static byte FamilyByte(IPAddress address) => address.AddressFamily switch
    {
        AddressFamily.InterNetwork => 2,
        AddressFamily.InterNetworkV6 => 10,
        _ => throw new ArgumentException($"Address {address} is neither IPv4 nor IPv6.", nameof(address)),
    };

    private static void ValidateName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Length > 15 || name.Contains('/', StringComparison.Ordinal) || name.Any(char.IsWhiteSpace))
        {
            throw new ArgumentException($"Interface name '{name}' is invalid: at most 15 characters, no '/' or whitespace.", nameof(name));
        }
    }
}
