using System.Net;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Udp;

namespace CloudVpn.WireGuard.Tests.Udp;

/// <summary>Batched UDP between two network namespaces joined by a veth pair: a real device, its offloads and its refusals.</summary>
[Trait("Category", "Integration")]
public sealed class UdpBatchNetnsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Batches_cross_the_veth_intact_over_IPv4_and_IPv6(bool ipv6)
    {
        using var net = new NetnsPair("cvu");
        Cmd.Run("ip", $"-n {net.Left} addr add 2001:db8:77::1/64 dev veth0 nodad");
        Cmd.Run("ip", $"-n {net.Right} addr add 2001:db8:77::2/64 dev veth0 nodad");
        using var sender = NetworkNamespace.Run(net.Left, () => UdpBind.Open(0));
        using var receiver = NetworkNamespace.Run(net.Right, () => UdpBind.Open(0));
        var got = BatchTesting.Record(receiver);
        var to = new IPEndPoint(IPAddress.Parse(ipv6 ? "2001:db8:77::2" : net.RightIp), receiver.Port);
        var entries = new List<(IPEndPoint? To, byte[] Data)>();
        for (var i = 0; i < 150; i++)
        {
            // runs of 1400-byte datagrams (under the veth's 1500 MTU) broken every 50 by a shorter one
            entries.Add((to, BatchTesting.Payload(i, i % 50 == 49 ? 300 : 1400)));
        }

        Assert.Equal(150, sender.SendBatch(BatchTesting.Fill(entries)));

        var received = BatchTesting.Take(got, 150);
        Assert.Equal(entries.Select(e => e.Data), received.Select(r => r.Data));
        var from = new IPEndPoint(IPAddress.Parse(ipv6 ? "2001:db8:77::1" : net.LeftIp), sender.Port);
        Assert.All(received, r => Assert.Equal(from, r.From));
        Assert.Equal(0, sender.GsoFallbacks);
        Assert.True(sender.ActiveOffloads.HasFlag(UdpOffloads.Gso));
    }

    [Fact]
    public void A_device_without_checksum_offload_gets_every_datagram_of_a_gso_batch()
    {
        Prerequisite.RequireCommand("ethtool");
        using var net = new NetnsPair("cvu");
        // without TX checksum offload, older kernels refuse a GSO UDP send on this route (EIO: the fallback path);
        // newer ones (6.18 here) checksum and segment in software. Either way every datagram must arrive, once, in order.
        NetnsPair.Exec(net.Left, "ethtool -K veth0 tx off");
        using var sender = NetworkNamespace.Run(net.Left, () => UdpBind.Open(0));
        using var receiver = NetworkNamespace.Run(net.Right, () => UdpBind.Open(0));
        var got = BatchTesting.Record(receiver);
        var to = new IPEndPoint(IPAddress.Parse(net.RightIp), receiver.Port);
        var entries = Enumerable.Range(0, 64).Select(i => ((IPEndPoint?)to, BatchTesting.Payload(i, 1200))).ToList();

        Assert.Equal(64, sender.SendBatch(BatchTesting.Fill(entries)));
        Assert.Equal(64, sender.SendBatch(BatchTesting.Fill(entries)));

        Assert.Equal(0, sender.SendErrors);
        Assert.True(sender.GsoFallbacks is 0 or 1, $"GSO refused {sender.GsoFallbacks} times: it must stay off after the first");
        Assert.Equal(sender.GsoFallbacks == 0, sender.ActiveOffloads.HasFlag(UdpOffloads.Gso));
        var received = BatchTesting.Take(got, 128);
        Assert.Equal(entries.Concat(entries).Select(e => e.Item2), received.Select(r => r.Data));
    }
}
