using System.Collections.Concurrent;
using System.Net;
using CloudVpn.WireGuard.Udp;

namespace CloudVpn.WireGuard.Tests.Udp;

public sealed class UdpBindTests
{
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void Datagrams_arrive_with_the_plain_source_endpoint(string loopback)
    {
        var address = IPAddress.Parse(loopback);
        using var a = UdpBind.Open(0);
        using var b = UdpBind.Open(0);
        var got = new BlockingCollection<(byte[] Data, IPEndPoint From)>();
        b.StartReceiving((data, from) => got.Add((data.ToArray(), from)));

        Assert.True(a.Send([1, 2, 3], new IPEndPoint(address, b.Port)));
        Assert.True(a.Send([4, 5], new IPEndPoint(address, b.Port)));

        Assert.True(got.TryTake(out var first, TimeSpan.FromSeconds(5)));
        Assert.True(got.TryTake(out var second, TimeSpan.FromSeconds(5)));
        Assert.Equal(new byte[] { 1, 2, 3 }, first.Data);
        Assert.Equal(new byte[] { 4, 5 }, second.Data);
        Assert.Equal(new IPEndPoint(address, a.Port), first.From); // IPv4 comes back as IPv4, not ::ffff:127.0.0.1
        Assert.Same(first.From, second.From); // the endpoint object is cached per source
    }

    [Fact]
    public void Rebind_moves_to_the_new_port_and_keeps_receiving()
    {
        using var a = UdpBind.Open(0);
        using var b = UdpBind.Open(0);
        var got = new BlockingCollection<byte[]>();
        b.StartReceiving((data, _) => got.Add(data.ToArray()));
        var oldPort = b.Port;
        int newPort;
        using (var probe = UdpBind.Open(0))
        {
            newPort = probe.Port;
        }

        b.Rebind(newPort);

        Assert.Equal(newPort, b.Port);
        Assert.True(a.Send([9], new IPEndPoint(IPAddress.Loopback, newPort)));
        Assert.True(got.TryTake(out var data, TimeSpan.FromSeconds(5)));
        Assert.Equal(new byte[] { 9 }, data);
        a.Send([8], new IPEndPoint(IPAddress.Loopback, oldPort));
        Assert.False(got.TryTake(out _, TimeSpan.FromMilliseconds(200)));
    }

    [Fact]
    public void Rebind_to_a_taken_port_fails_and_keeps_the_old_socket()
    {
        using var taken = UdpBind.Open(0);
        using var b = UdpBind.Open(0);
        var before = b.Port;
        Assert.Throws<System.Net.Sockets.SocketException>(() => b.Rebind(taken.Port));
        Assert.Equal(before, b.Port);
    }

    [Fact]
    public void A_throwing_handler_is_reported_and_receiving_goes_on()
    {
        using var a = UdpBind.Open(0);
        using var b = UdpBind.Open(0);
        var errors = new BlockingCollection<Exception>();
        var got = new BlockingCollection<byte>();
        b.StartReceiving(
            (data, _) =>
            {
                if (data[0] == 0)
                {
                    throw new InvalidOperationException("boom");
                }

                got.Add(data[0]);
            },
            errors.Add);

        a.Send([0], new IPEndPoint(IPAddress.Loopback, b.Port));
        a.Send([7], new IPEndPoint(IPAddress.Loopback, b.Port));

        Assert.True(errors.TryTake(out var error, TimeSpan.FromSeconds(5)));
        Assert.Equal("boom", error.Message);
        Assert.True(got.TryTake(out var value, TimeSpan.FromSeconds(5)));
        Assert.Equal(7, value);
    }
}
