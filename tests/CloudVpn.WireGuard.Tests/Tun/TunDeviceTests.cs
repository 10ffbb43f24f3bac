using System.Buffers.Binary;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Tun;

namespace CloudVpn.WireGuard.Tests.Tun;

[Trait("Category", "Integration")]
public sealed class TunDeviceTests
{
    [Fact]
    public void Create_sets_mtu_and_up_as_ip_link_reports()
    {
        using var ns = new NetnsPair("tu");
        using var tun = NetworkNamespace.Run(ns.Left, () =>
        {
            var t = TunDevice.Create("cvtun0");
            t.SetMtu(1380);
            t.SetUp(true);
            return t;
        });

        Assert.Equal("cvtun0", tun.Name);
        var link = NetnsPair.Exec(ns.Left, "ip -o link show cvtun0").Stdout;
        Assert.Contains("mtu 1380", link, StringComparison.Ordinal);
        Assert.Contains(",UP", link, StringComparison.Ordinal);
        Assert.Equal(1380, tun.Mtu); // read from this thread, outside the namespace: the device keeps its own control socket
        tun.SetMtu(1360);
        Assert.Contains("mtu 1360", NetnsPair.Exec(ns.Left, "ip -o link show cvtun0").Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_refuses_bad_names()
    {
        Assert.Throws<ArgumentException>(() => TunDevice.Create("a-name-that-is-too-long"));
        Assert.Throws<ArgumentException>(() => TunDevice.Create("bad/name"));
        Assert.Throws<ArgumentException>(() => TunDevice.Create("wg\u00e9"));
        Assert.Throws<ArgumentException>(() => TunDevice.Create("wg0:1"));
    }

    [Fact]
    public void Reader_sees_host_packets_and_writes_reach_the_host_stack()
    {
        // A ping to 10.99.0.2 is routed into the TUN; our reader answers each echo request with an echo reply written
        // back to the TUN, so ping succeeds only when both directions work.
        using var ns = new NetnsPair("tu");
        using var tun = NetworkNamespace.Run(ns.Left, () =>
        {
            var t = TunDevice.Create("cvtun1");
            t.SetUp(true);
            return t;
        });
        NetnsPair.Exec(ns.Left, "ip addr add 10.99.0.1/24 dev cvtun1");
        var answered = 0;
        var reply = new byte[TunDevice.MaxPacketSize];
        tun.StartReader(packet =>
        {
            if (packet.Length >= 28 && packet[0] >> 4 == 4 && packet[9] == 1 && packet[20] == 8)
            {
                var length = BuildEchoReply(packet, reply);
                if (tun.Write(reply.AsSpan(0, length)))
                {
                    Interlocked.Increment(ref answered);
                }
            }
        });

        var (exit, stdout, stderr) = NetnsPair.Exec(ns.Left, "ping -c 3 -i 0.2 -W 2 10.99.0.2", check: false);
        Assert.True(exit == 0, $"ping failed: {stdout}{stderr}");
        Assert.True(Volatile.Read(ref answered) >= 3);
        Assert.True(tun.PacketsRead >= 3);
        Assert.True(tun.PacketsWritten >= 3);
    }

    [Fact]
    public void Dispose_stops_the_reader_and_removes_the_interface()
    {
        using var ns = new NetnsPair("tu");
        var tun = NetworkNamespace.Run(ns.Left, () => TunDevice.Create("cvtun2"));
        tun.StartReader(_ => { });
        tun.Dispose();
        var (exit, _, _) = NetnsPair.Exec(ns.Left, "ip link show cvtun2", check: false);
        Assert.NotEqual(0, exit);
        Assert.False(tun.Write(new byte[20]));
    }

    private static int BuildEchoReply(ReadOnlySpan<byte> request, Span<byte> reply)
    {
        request.CopyTo(reply);
        var headerLength = (request[0] & 0x0f) * 4;
        request.Slice(12, 4).CopyTo(reply.Slice(16, 4)); // swap source and destination
        request.Slice(16, 4).CopyTo(reply.Slice(12, 4));
        reply[8] = 64;
        BinaryPrimitives.WriteUInt16BigEndian(reply[10..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(reply[10..], Checksum(reply[..headerLength]));
        var icmp = reply[headerLength..request.Length];
        icmp[0] = 0; // echo reply
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
        return request.Length;
    }

    private static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if (data.Length % 2 == 1)
        {
            sum += (uint)data[^1] << 8;
        }

        while (sum >> 16 != 0)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)~sum;
    }
}
