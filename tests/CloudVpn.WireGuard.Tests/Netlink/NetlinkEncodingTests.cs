using System.Buffers.Binary;
using System.Net;
using CloudVpn.WireGuard.Netlink;

namespace CloudVpn.WireGuard.Tests.Netlink;

public sealed class NetlinkEncodingTests
{
    [Fact]
    public void CreateLink_message_matches_hand_checked_layout()
    {
        // RTM_NEWLINK, flags REQUEST|ACK|EXCL|CREATE, ifinfomsg zeroed, IFLA_IFNAME "wg0", IFLA_LINKINFO{IFLA_INFO_KIND "wireguard"}
        var m = new NetlinkMessageBuilder(RtNetlink.RtmNewLink, NetlinkSocket.FlagCreate | NetlinkSocket.FlagExclusive | NetlinkSocket.FlagRequest | NetlinkSocket.FlagAck);
        m.AppendFamilyHeader(RtNetlink.IfInfoMsgLength);
        m.PutString(RtNetlink.IflaIfname, "wg0");
        var nest = m.BeginNested(RtNetlink.IflaLinkinfo);
        m.PutString(RtNetlink.IflaInfoKind, "wireguard");
        m.EndNested(nest);
        var bytes = m.ToArray(sequence: 7, portId: 0x1234);

        byte[] expected =
        [
            60, 0, 0, 0,               // nlmsg_len: 16 + 16 + 8 + 20
            16, 0,                     // RTM_NEWLINK
            0x05, 0x06,                // NLM_F_REQUEST|NLM_F_ACK (0x005) | NLM_F_EXCL|NLM_F_CREATE (0x600)
            7, 0, 0, 0,                // seq
            0x34, 0x12, 0, 0,          // pid
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg
            8, 0, 3, 0, (byte)'w', (byte)'g', (byte)'0', 0, // IFLA_IFNAME, len 8
            20, 0, 18, 0x80,           // IFLA_LINKINFO | NLA_F_NESTED, len 4 + padded child 16
            14, 0, 1, 0, (byte)'w', (byte)'i', (byte)'r', (byte)'e', (byte)'g', (byte)'u', (byte)'a', (byte)'r', (byte)'d', 0, 0, 0, // IFLA_INFO_KIND, len 14 + 2 pad
        ];
        Assert.Equal(expected, bytes);
    }

    [Fact]
    public void Address_message_carries_local_and_address_for_ipv6()
    {
        var m = RtNetlink.AddressMessage(RtNetlink.RtmNewAddr, NetlinkSocket.FlagCreate, 5, IPAddress.Parse("2001:db8::1"), 64);
        var bytes = m.ToArray();
        Assert.Equal(16 + 8 + 20 + 20, bytes.Length);
        Assert.Equal(10, bytes[16]);          // AF_INET6
        Assert.Equal(64, bytes[17]);          // prefix
        Assert.Equal(5, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(20)));
        Assert.Equal(20, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(24)));
        Assert.Equal(RtNetlink.IfaLocal, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(26)));
        Assert.Equal(IPAddress.Parse("2001:db8::1").GetAddressBytes(), bytes.AsSpan(28, 16).ToArray());
        Assert.Equal(RtNetlink.IfaAddress, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(46)));
    }

    [Fact]
    public void Route_message_has_link_scope_for_ipv4_and_the_output_interface()
    {
        var bytes = RtNetlink.RouteMessage(RtNetlink.RtmNewRoute, NetlinkSocket.FlagCreate | NetlinkSocket.FlagReplace, 9, IPNetwork.Parse("10.1.0.0/16")).ToArray();
        byte[] rtmsg = [2, 16, 0, 0, 254, 4, 253, 1, 0, 0, 0, 0];
        Assert.Equal(rtmsg, bytes.AsSpan(16, 12).ToArray());
        byte[] attrs = [8, 0, 1, 0, 10, 1, 0, 0, 8, 0, 4, 0, 9, 0, 0, 0];
        Assert.Equal(attrs, bytes.AsSpan(28).ToArray());
        Assert.Equal(0x500, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(6)));
    }

    [Fact]
    public void Rollback_removes_a_partial_nest()
    {
        var m = new NetlinkMessageBuilder(1, 0);
        m.PutU32(1, 42);
        var mark = m.Length;
        var nest = m.BeginNested(2);
        m.PutU64(3, 1);
        m.EndNested(nest);
        m.Rollback(mark);
        Assert.Equal(16 + 8, m.ToArray().Length);
    }

    [Fact]
    public void Attribute_reader_walks_nested_attributes_and_rejects_overruns()
    {
        var m = new NetlinkMessageBuilder(1, 0);
        m.PutU16(1, 0xBEEF);
        var nest = m.BeginNested(2);
        m.PutString(1, "abc");
        m.PutU32(2, 7);
        m.EndNested(nest);
        var bytes = m.ToArray();
        var seen = new List<string>();
        foreach (var message in new NetlinkMessageEnumerator(bytes))
        {
            foreach (var attribute in message.Attributes(0))
            {
                if (attribute.Type == 1)
                {
                    seen.Add($"u16={attribute.U16:X}");
                }
                else
                {
                    Assert.True(attribute.IsNested);
                    foreach (var inner in attribute.Nested)
                    {
                        seen.Add(inner.Type == 1 ? $"s={inner.String}" : $"u32={inner.U32}");
                    }
                }
            }
        }

        Assert.Equal(["u16=BEEF", "s=abc", "u32=7"], seen);

        // An attribute claiming more bytes than its container holds.
        bytes[16] = 0xFF;
        var error = Assert.Throws<NetlinkProtocolException>(() =>
        {
            foreach (var message in new NetlinkMessageEnumerator(bytes))
            {
                foreach (var attribute in message.Attributes(0))
                {
                    _ = attribute.Type;
                }
            }
        });
        Assert.Contains("claims 255 bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Error_answer_becomes_exception_with_errno_name_and_extended_ack_text()
    {
        // NLMSG_ERROR, flags CAPPED|ACK_TLVS: error -17, original header (16 bytes), NLMSGERR_ATTR_MSG "File exists here"
        var m = new NetlinkMessageBuilder(NetlinkSocket.NlmsgError, NetlinkSocket.FlagAckCapped | NetlinkSocket.FlagAckTlvs);
        var payload = m.AppendFamilyHeader(4 + 16);
        BinaryPrimitives.WriteInt32LittleEndian(payload, -17);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[4..], 100); // original length, ignored when capped
        m.PutString(1, "Link already exists");
        var bytes = m.ToArray();
        var error = Assert.Throws<NetlinkException>(() =>
        {
            foreach (var message in new NetlinkMessageEnumerator(bytes))
            {
                NetlinkSocket.ThrowIfError(message, "RTM_NEWLINK wg0");
            }
        });
        Assert.Equal(17, error.Errno);
        Assert.Equal("EEXIST", error.ErrorName);
        Assert.Equal("Link already exists", error.KernelMessage);
        Assert.StartsWith("RTM_NEWLINK wg0 failed: EEXIST (", error.Message, StringComparison.Ordinal);
        Assert.EndsWith(": Link already exists.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ack_is_not_an_error()
    {
        var m = new NetlinkMessageBuilder(NetlinkSocket.NlmsgError, 0);
        m.AppendFamilyHeader(4 + 16);
        var bytes = m.ToArray();
        var count = 0;
        foreach (var message in new NetlinkMessageEnumerator(bytes))
        {
            NetlinkSocket.ThrowIfError(message, "x");
            count++;
        }

        Assert.Equal(1, count);
    }

    [Fact]
    public void Message_enumerator_splits_a_multipart_datagram_and_rejects_a_bad_length()
    {
        var a = new NetlinkMessageBuilder(16, NetlinkSocket.FlagMulti);
        a.PutU32(1, 1);
        var b = new NetlinkMessageBuilder(NetlinkSocket.NlmsgDone, NetlinkSocket.FlagMulti);
        b.AppendFamilyHeader(4);
        var datagram = a.ToArray(3).Concat(b.ToArray(3)).ToArray();
        var types = new List<ushort>();
        foreach (var message in new NetlinkMessageEnumerator(datagram))
        {
            types.Add(message.Type);
            Assert.Equal(3u, message.Sequence);
        }

        Assert.Equal([(ushort)16, NetlinkSocket.NlmsgDone], types);

        datagram[0] = 200;
        Assert.Throws<NetlinkProtocolException>(() =>
        {
            foreach (var message in new NetlinkMessageEnumerator(datagram))
            {
                _ = message.Type;
            }
        });
    }
}
