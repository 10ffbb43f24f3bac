using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Tun;

namespace CloudVpn.WireGuard.Tests.Tun;

/// <summary>
/// Two TUN devices in two namespaces joined only by this process: the batch reader of one hands its batches to
/// <see cref="TunDevice.WriteBatch"/> of the other (data direction), and the per-packet reader and <see cref="TunDevice.Write"/>
/// carry the other direction (ACKs). A real TCP stream from one namespace to the other must arrive byte-exact, and every
/// TCP segment the reader hands over must carry valid checksums (checked with the test's own plain implementation).
/// </summary>
[Trait("Category", "Integration")]
public sealed class TunOffloadTests
{
    private const int StreamBytes = 24 * 1024 * 1024;

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public async Task Tcp_stream_through_bridged_tuns_arrives_byte_exact(bool offloads, bool v6)
    {
        using var ns = new NetnsPair("to");
        var options = new TunOptions { Offloads = offloads };
        using var a = NetworkNamespace.Run(ns.Left, () => TunDevice.Create("cvto0", options));
        using var b = NetworkNamespace.Run(ns.Right, () => TunDevice.Create("cvto1", options));
        if (offloads)
        {
            Assert.True((a.ActiveOffloads & (TunOffloads.Tso4 | TunOffloads.Tso6 | TunOffloads.Checksum)) == (TunOffloads.Tso4 | TunOffloads.Tso6 | TunOffloads.Checksum),
                $"offloads on Linux 6.x: {a.ActiveOffloads} ({a.OffloadFallbackReason})");
            Assert.True(b.Coalescing);
        }
        else
        {
            Assert.Equal(TunOffloads.None, a.ActiveOffloads);
            Assert.False(b.Coalescing);
        }

        var (left, right) = v6 ? ("fd77::1", "fd77::2") : ("10.77.0.1", "10.77.0.2");
        var prefix = v6 ? "64 nodad" : "24";
        NetnsPair.Exec(ns.Left, $"ip addr add {left}/{prefix} dev cvto0");
        NetnsPair.Exec(ns.Right, $"ip addr add {right}/{prefix} dev cvto1");
        NetnsPair.Exec(ns.Left, "ip link set cvto0 up");
        NetnsPair.Exec(ns.Right, "ip link set cvto1 up");

        long tcpSegments = 0, badChecksums = 0, largest = 0, batches = 0;
        a.StartBatchReader(batch =>
        {
            batches++;
            for (var i = 0; i < batch.Count; i++)
            {
                var packet = batch.Packet(i);
                largest = Math.Max(largest, packet.Length);
                if ((packet[0] >> 4 == 4 && packet[9] == 6) || (packet[0] >> 4 == 6 && packet[6] == 6))
                {
                    tcpSegments++;
                    if (!PacketFactory.ChecksumsValid(packet))
                    {
                        badChecksums++;
                    }
                }
            }

            b.WriteBatch(batch);
        });
        b.StartReader(packet => a.Write(packet));

        var listener = NetworkNamespace.Run(ns.Right, () =>
        {
            var s = new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Parse(right), 0));
            s.Listen(1);
            return s;
        });
        using var client = NetworkNamespace.Run(ns.Left, () => new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        using (listener)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var accept = listener.AcceptAsync(timeout.Token).AsTask();
            await client.ConnectAsync(listener.LocalEndPoint!, timeout.Token);
            using var server = await accept;

            var receive = Task.Run(async () =>
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[256 * 1024];
                long total = 0;
                while (true)
                {
                    var n = await server.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                    if (n == 0)
                    {
                        break;
                    }

                    hash.AppendData(buffer, 0, n);
                    total += n;
                }

                return (total, hash.GetHashAndReset());
            });

            using var sent = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var chunk = PacketFactory.Payload(1 << 20, 77);
            for (var off = 0; off < StreamBytes; off += chunk.Length)
            {
                chunk[off % 1000] ^= (byte)(off >> 20); // vary the chunks so a repeated or reordered one is caught
                sent.AppendData(chunk);
                await client.SendAsync(chunk, SocketFlags.None, timeout.Token);
            }

            client.Shutdown(SocketShutdown.Send);
            var (received, digest) = await receive;
            Assert.Equal(StreamBytes, received);
            Assert.Equal(Convert.ToHexString(sent.GetHashAndReset()), Convert.ToHexString(digest));
        }

        Assert.True(tcpSegments > StreamBytes / 1500, $"{tcpSegments} TCP segments read");
        Assert.Equal(0, badChecksums);
        Assert.True(largest <= 1500, $"a {largest}-byte packet went past the splitter");
        Assert.Equal(0, a.InvalidPacketsRead);
        Assert.Equal(0, b.WriteErrors);
        if (offloads)
        {
            Assert.True(a.SuperPacketsRead > 0, "the kernel handed over TSO super-packets");
            Assert.True(b.SuperPacketsWritten > 0, "coalesced super-packets were written");
        }
        else
        {
            Assert.Equal(0, a.SuperPacketsRead);
            Assert.Equal(0, b.SuperPacketsWritten);
        }

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"offloads={offloads} v6={v6}: {tcpSegments} segments in {batches} batches, {a.SuperPacketsRead} super-packets read, {b.SuperPacketsWritten} written");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_udp_gso_send_reaches_the_reader_as_datagrams_with_valid_checksums(bool offloads)
    {
        // One sendto() with UDP_SEGMENT 1000 and 9500 bytes: with USO the TUN gets one super-packet the reader splits;
        // without, the kernel segments it. Either way the handler must see the same ten datagrams.
        using var ns = new NetnsPair("tg");
        using var tun = NetworkNamespace.Run(ns.Left, () => TunDevice.Create("cvtg0", new TunOptions { Offloads = offloads }));
        var uso = (tun.ActiveOffloads & TunOffloads.Uso) != 0;
        if (offloads && !uso)
        {
            Assert.Contains("USO", tun.OffloadFallbackReason, StringComparison.Ordinal); // a kernel before 6.2: said, not hidden
        }
        else
        {
            Assert.Equal(offloads, uso);
        }

        NetnsPair.Exec(ns.Left, "ip addr add 10.79.0.1/24 dev cvtg0");
        NetnsPair.Exec(ns.Left, "ip link set cvtg0 up");

        var datagrams = new List<byte[]>();
        using var got = new ManualResetEventSlim();
        tun.StartBatchReader(batch =>
        {
            for (var i = 0; i < batch.Count; i++)
            {
                var p = batch.Packet(i);
                if (p[0] == 0x45 && p[9] == 17 && p.Length > 28 && BinaryPrimitives.ReadUInt16BigEndian(p[22..]) == 9999)
                {
                    lock (datagrams)
                    {
                        datagrams.Add(p.ToArray());
                        if (datagrams.Count == 10)
                        {
                            got.Set();
                        }
                    }
                }
            }
        });

        using var socket = NetworkNamespace.Run(ns.Left, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        socket.SetRawSocketOption(17, 103, BitConverter.GetBytes(1000)); // SOL_UDP, UDP_SEGMENT
        var payload = PacketFactory.Payload(9500, 5);
        socket.SendTo(payload, new IPEndPoint(IPAddress.Parse("10.79.0.2"), 9999));

        Assert.True(got.Wait(TimeSpan.FromSeconds(10)), $"{datagrams.Count} of 10 datagrams read");
        lock (datagrams)
        {
            for (var i = 0; i < 10; i++)
            {
                var d = datagrams[i];
                var expected = Math.Min(1000, 9500 - (i * 1000));
                Assert.Equal(28 + expected, d.Length);
                Assert.True(PacketFactory.ChecksumsValid(d), $"datagram {i} checksum");
                Assert.True(d.AsSpan(28).SequenceEqual(payload.AsSpan(i * 1000, expected)), $"datagram {i} payload");
            }
        }

        Assert.Equal(uso ? 1 : 0, tun.SuperPacketsRead);
    }

    [Fact]
    public void A_throwing_batch_handler_is_reported_and_reading_goes_on()
    {
        using var ns = new NetnsPair("tg");
        using var tun = NetworkNamespace.Run(ns.Left, () => TunDevice.Create("cvtg1"));
        NetnsPair.Exec(ns.Left, "ip addr add 10.79.1.1/24 dev cvtg1");
        NetnsPair.Exec(ns.Left, "ip link set cvtg1 up");
        var errors = new List<Exception>();
        var seen = 0;
        using var second = new ManualResetEventSlim();
        tun.StartBatchReader(
            batch =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    var p = batch.Packet(i);
                    if (p[0] == 0x45 && p[9] == 17 && BinaryPrimitives.ReadUInt16BigEndian(p[22..]) == 9998)
                    {
                        if (Interlocked.Increment(ref seen) == 1)
                        {
                            throw new InvalidOperationException("handler failure");
                        }

                        second.Set();
                    }
                }
            },
            e =>
            {
                lock (errors)
                {
                    errors.Add(e);
                }
            });

        using var socket = NetworkNamespace.Run(ns.Left, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        var target = new IPEndPoint(IPAddress.Parse("10.79.1.2"), 9998);
        socket.SendTo(new byte[10], target);
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref seen) >= 1, TimeSpan.FromSeconds(10)), "first datagram read");
        socket.SendTo(new byte[10], target);
        Assert.True(second.Wait(TimeSpan.FromSeconds(10)), "the reader went on after the handler threw");
        lock (errors)
        {
            Assert.Equal("handler failure", Assert.Single(errors).Message);
        }
    }
}
