using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Udp;

namespace CloudVpn.WireGuard.Tests.Udp;

/// <summary>A received datagram as the batch handler saw it.</summary>
internal sealed record Received(byte[] Data, IPEndPoint From, int Batch, int Region);

/// <summary>Helpers shared by the batch tests: a recording receiver and batches whose payloads say where they belong.</summary>
internal static class BatchTesting
{
    /// <summary>Starts batch receiving on <paramref name="bind"/>, recording each entry with its source and its 64 KiB region.</summary>
    public static BlockingCollection<Received> Record(UdpBind bind, ConcurrentBag<Exception>? errors = null)
    {
        var got = new BlockingCollection<Received>();
        var batches = 0;
        bind.StartReceivingBatches(
            batch =>
            {
                batches++;
                for (var i = 0; i < batch.Count; i++)
                {
                    got.Add(new Received(batch.Packet(i).ToArray(), bind.EndPointOf(batch.Sources[i]), batches, batch.Offsets[i] / UdpBind.ReceiveRegion));
                }
            },
            e => errors?.Add(e));
        return got;
    }

    /// <summary>A payload of <paramref name="length"/> bytes: the sequence number in the first four, then a pattern.</summary>
    public static byte[] Payload(int sequence, int length)
    {
        var data = new byte[length];
        for (var k = 0; k < length; k++)
        {
            data[k] = (byte)(sequence * 31 + k);
        }

        if (length >= 4)
        {
            BitConverter.TryWriteBytes(data, sequence);
        }

        return data;
    }

    /// <summary>Fills a batch with entries spaced as the TUN side spaces them (headroom and tailroom), one per (endpoint, payload).</summary>
    public static PacketBatch Fill(IReadOnlyList<(IPEndPoint? To, byte[] Data)> entries)
    {
        var batch = new PacketBatch(entries.Count + 4, entries.Sum(e => e.Data.Length + PacketBatch.Headroom + PacketBatch.Tailroom) + PacketBatch.Headroom + PacketBatch.Tailroom + 1);
        var at = 0;
        foreach (var (to, data) in entries)
        {
            at += PacketBatch.Headroom;
            data.CopyTo(batch.Arena[at..]);
            Assert.True(batch.TryAdd(at, data.Length));
            batch.Endpoints[batch.Count - 1] = to;
            at += data.Length + PacketBatch.Tailroom;
        }

        return batch;
    }

    public static List<Received> Take(BlockingCollection<Received> got, int count)
    {
        var list = new List<Received>();
        while (list.Count < count && got.TryTake(out var item, TimeSpan.FromSeconds(5)))
        {
            list.Add(item);
        }

        return list;
    }
}

public sealed class UdpBatchTests
{
    public static TheoryData<string, bool, bool, bool> Modes()
    {
        var data = new TheoryData<string, bool, bool, bool>();
        foreach (var loopback in new[] { "127.0.0.1", "::1" })
        {
            foreach (var (mmsg, gso, gro) in new[] { (true, true, true), (false, false, false), (true, false, false), (false, true, true), (true, true, false), (true, false, true) })
            {
                data.Add(loopback, mmsg, gso, gro);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void A_mixed_batch_arrives_intact_and_in_order_at_each_endpoint(string loopback, bool mmsg, bool gso, bool gro)
    {
        var options = new UdpBatchOptions { UseMmsg = mmsg, UseGso = gso, UseGro = gro, BatchSize = 8 };
        var address = IPAddress.Parse(loopback);
        using var sender = UdpBind.Open(0, options: options);
        using var a = UdpBind.Open(0, options: options);
        using var b = UdpBind.Open(0, options: options);
        var gotA = BatchTesting.Record(a);
        var gotB = BatchTesting.Record(b);
        var toA = new IPEndPoint(address, a.Port);
        var toB = new IPEndPoint(address, b.Port);
        var toAagain = new IPEndPoint(address, a.Port); // equal, not the same object: still one run

        // runs with a shorter last entry, a longer entry breaking a run, endpoint changes, a skipped entry, a zero-length
        // datagram, a run longer than BatchSize messages, and more messages than BatchSize in all
        var sizes = new (IPEndPoint? To, int Length)[]
        {
            (toA, 1200), (toA, 1200), (toAagain, 1200), (toA, 700), (toA, 1400), (toA, 1400), (toB, 100), (toB, 100),
            (null, 500), (toB, 100), (toA, 60), (toB, 1500), (toB, 1499), (toB, 1500), (toA, 0), (toA, 9000), (toA, 9000),
        };
        var entries = new List<(IPEndPoint? To, byte[] Data)>();
        for (var i = 0; i < sizes.Length; i++)
        {
            entries.Add((sizes[i].To, BatchTesting.Payload(i, sizes[i].Length)));
        }

        for (var i = 0; i < 70; i++)
        {
            entries.Add((toB, BatchTesting.Payload(sizes.Length + i, 1000)));
        }

        var batch = BatchTesting.Fill(entries);

        var sent = sender.SendBatch(batch);

        Assert.Equal(entries.Count(e => e.To is not null), sent);
        Assert.Equal(0, sender.SendErrors);
        var expectA = entries.Where(e => e.To is not null && e.To.Port == a.Port).Select(e => e.Data).ToList();
        var expectB = entries.Where(e => e.To is not null && e.To.Port == b.Port).Select(e => e.Data).ToList();
        var receivedA = BatchTesting.Take(gotA, expectA.Count);
        var receivedB = BatchTesting.Take(gotB, expectB.Count);
        Assert.Equal(expectA, receivedA.Select(r => r.Data));
        Assert.Equal(expectB, receivedB.Select(r => r.Data));
        var from = new IPEndPoint(address, sender.Port);
        Assert.All(receivedA.Concat(receivedB), r => Assert.Equal(from, r.From));
        Assert.False(gotA.TryTake(out _, TimeSpan.FromMilliseconds(50)));
        var expected = (mmsg ? UdpOffloads.Mmsg : 0) | (gso ? UdpOffloads.Gso : 0) | (gro ? UdpOffloads.Gro : 0);
        Assert.Equal(expected, sender.ActiveOffloads);
        Assert.Equal(0, sender.GsoFallbacks);
        Assert.Equal(expected, a.ActiveOffloads);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void Gro_coalesced_datagrams_are_split_into_the_entries_sent(string loopback)
    {
        var address = IPAddress.Parse(loopback);
        using var sender = UdpBind.Open(0);
        using var other = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var got = BatchTesting.Record(receiver);
        Assert.True(receiver.ActiveOffloads.HasFlag(UdpOffloads.Gro));
        Assert.True(sender.ActiveOffloads.HasFlag(UdpOffloads.Gso));
        var to = new IPEndPoint(address, receiver.Port);

        // 3 GSO runs from the sender (64 segments, then 20 with a shorter last, then 5) and one run from another socket
        var entries = new List<(IPEndPoint? To, byte[] Data)>();
        for (var i = 0; i < 64; i++)
        {
            entries.Add((to, BatchTesting.Payload(i, 1000)));
        }

        for (var i = 0; i < 20; i++)
        {
            entries.Add((to, BatchTesting.Payload(100 + i, i == 19 ? 333 : 1420)));
        }

        for (var i = 0; i < 5; i++)
        {
            entries.Add((to, BatchTesting.Payload(200 + i, 64)));
        }

        Assert.Equal(entries.Count, sender.SendBatch(BatchTesting.Fill(entries)));
        var fromOther = Enumerable.Range(0, 10).Select(i => BatchTesting.Payload(300 + i, 500)).ToList();
        Assert.Equal(10, other.SendBatch(BatchTesting.Fill(fromOther.Select(d => ((IPEndPoint?)to, d)).ToList())));

        var received = BatchTesting.Take(got, entries.Count + fromOther.Count);

        var fromSender = received.Where(r => r.From.Port == sender.Port).ToList();
        var fromSecond = received.Where(r => r.From.Port == other.Port).ToList();
        Assert.Equal(entries.Select(e => e.Data), fromSender.Select(r => r.Data));
        Assert.Equal(fromOther, fromSecond.Select(r => r.Data));
        Assert.All(received, r => Assert.Equal(address, r.From.Address));
        // the kernel handed over whole runs: several entries came out of one 64 KiB region
        Assert.Contains(fromSender.GroupBy(r => (r.Batch, r.Region)), g => g.Count() == 64);
        Assert.Equal(0, sender.GsoFallbacks);
    }

    [Fact]
    public void Features_the_kernel_lacks_fall_back_and_datagrams_still_flow()
    {
        var missing = new UdpBatchOptions { SimulateUnsupported = UdpOffloads.Mmsg | UdpOffloads.Gso | UdpOffloads.Gro };
        using var sender = UdpBind.Open(0, options: missing);
        using var receiver = UdpBind.Open(0, options: missing);
        var got = BatchTesting.Record(receiver);
        Assert.Equal(UdpOffloads.None, sender.ActiveOffloads);
        Assert.Equal(UdpOffloads.None, receiver.ActiveOffloads);
        var to = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var entries = Enumerable.Range(0, 30).Select(i => ((IPEndPoint?)to, BatchTesting.Payload(i, i % 3 == 2 ? 200 : 1200))).ToList();

        Assert.Equal(30, sender.SendBatch(BatchTesting.Fill(entries)));

        var received = BatchTesting.Take(got, 30);
        Assert.Equal(entries.Select(e => e.Item2), received.Select(r => r.Data));
        Assert.All(received.GroupBy(r => (r.Batch, r.Region)), g => Assert.Single(g)); // no message held more than one datagram
    }

    [Fact]
    public void A_gso_send_the_kernel_refuses_falls_back_for_good_and_loses_nothing()
    {
        using var sender = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var got = BatchTesting.Record(receiver);
        Assert.True(sender.ActiveOffloads.HasFlag(UdpOffloads.Gso));
        // SO_NO_CHECK (no UDP checksum) makes the kernel refuse UDP_SEGMENT with EINVAL, as it refuses with EIO a route
        // whose device cannot offload checksums
        sender.Socket.SetRawSocketOption(1, UdpSyscalls.SoNoCheck, BitConverter.GetBytes(1));
        var to = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var entries = Enumerable.Range(0, 40).Select(i => ((IPEndPoint?)to, BatchTesting.Payload(i, i == 19 ? 100 : 1200))).ToList();

        Assert.Equal(40, sender.SendBatch(BatchTesting.Fill(entries)));
        var refused = sender.GsoFallbacks; // each run of the first batch was prepared for GSO and refused (two runs)
        Assert.Equal(2, refused);
        Assert.False(sender.ActiveOffloads.HasFlag(UdpOffloads.Gso));
        Assert.Equal(40, sender.SendBatch(BatchTesting.Fill(entries)));

        Assert.Equal(refused, sender.GsoFallbacks); // GSO is not tried again
        Assert.Equal(0, sender.SendErrors);
        var received = BatchTesting.Take(got, 80);
        Assert.Equal(entries.Concat(entries).Select(e => e.Item2), received.Select(r => r.Data));
    }

    [Fact]
    public void Unreachable_destinations_and_entries_outside_the_arena_are_counted_and_the_rest_is_sent()
    {
        using var sender = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var got = BatchTesting.Record(receiver);
        var to = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var nowhere = new IPEndPoint(IPAddress.Parse("0.0.0.0"), 0); // port 0: the kernel refuses (EINVAL)
        var entries = new List<(IPEndPoint?, byte[])>
        {
            (to, BatchTesting.Payload(0, 300)), (nowhere, BatchTesting.Payload(1, 300)), (nowhere, BatchTesting.Payload(2, 300)), (to, BatchTesting.Payload(3, 300)),
        };

        var batch = BatchTesting.Fill(entries);
        Assert.True(batch.TryAdd(0, 10));
        batch.Endpoints[4] = to;
        batch.Offsets[4] = 1;
        batch.Lengths[4] = batch.Arena.Length; // one byte past the arena's end: a bug of the caller, never handed to the kernel
        Assert.True(batch.TryAdd(0, 10));
        batch.Endpoints[5] = to;
        batch.Offsets[5] = -1;

        Assert.Equal(2, sender.SendBatch(batch));

        Assert.Equal(4, sender.SendErrors);
        Assert.Equal(new[] { entries[0].Item2, entries[3].Item2 }, BatchTesting.Take(got, 2).Select(r => r.Data));
    }

    [Fact]
    public void Batch_options_are_validated_by_field()
    {
        var error = Assert.Throws<ArgumentException>(() => UdpBind.Open(0, options: new UdpBatchOptions { BatchSize = 0 }));
        Assert.Contains("UdpBatchOptions.BatchSize: 0 is outside 1..1024", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new UdpBatchOptions { BatchSize = 1025 }.Validate());
        new UdpBatchOptions { BatchSize = 1024 }.Validate();
    }

    [Fact]
    public void A_second_receiver_is_refused_and_a_throwing_batch_handler_is_reported()
    {
        using var sender = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var errors = new BlockingCollection<Exception>();
        var got = new BlockingCollection<byte>();
        receiver.StartReceivingBatches(
            batch =>
            {
                if (batch.Packet(0)[0] == 0)
                {
                    throw new InvalidOperationException("boom");
                }

                got.Add(batch.Packet(0)[0]);
            },
            errors.Add);
        Assert.Throws<InvalidOperationException>(() => receiver.StartReceiving((_, _) => { }));
        Assert.Throws<InvalidOperationException>(() => receiver.StartReceivingBatches(_ => { }));
        var to = new IPEndPoint(IPAddress.Loopback, receiver.Port);

        sender.Send([0], to);
        Assert.True(errors.TryTake(out var error, TimeSpan.FromSeconds(5)));
        sender.Send([7], to);

        Assert.Equal("boom", error.Message);
        Assert.True(got.TryTake(out var value, TimeSpan.FromSeconds(5)));
        Assert.Equal(7, value);
    }

    [Fact]
    public void Batch_receiving_follows_a_rebind_and_dispose_ends_it()
    {
        using var sender = UdpBind.Open(0);
        var receiver = UdpBind.Open(0);
        var got = BatchTesting.Record(receiver);
        var oldPort = receiver.Port;
        receiver.Rebind(0);
        Assert.NotEqual(oldPort, receiver.Port);
        Assert.True(receiver.ActiveOffloads.HasFlag(UdpOffloads.Gro));

        var entries = Enumerable.Range(0, 10).Select(i => ((IPEndPoint?)new IPEndPoint(IPAddress.Loopback, receiver.Port), BatchTesting.Payload(i, 800))).ToList();
        Assert.Equal(10, sender.SendBatch(BatchTesting.Fill(entries)));
        Assert.Equal(entries.Select(e => e.Item2), BatchTesting.Take(got, 10).Select(r => r.Data));

        var port = receiver.Port;
        receiver.Dispose(); // the receive thread is blocked in recvmmsg holding the socket: the close must still happen
        using var again = UdpBind.Open(port);
        Assert.Equal(port, again.Port);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void Steady_state_sends_and_receives_allocate_nothing(string loopback)
    {
        using var sender = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var handled = 0;
        var allocatedBetweenBatches = 0L;
        var lastSeen = -1L;
        receiver.StartReceivingBatches(batch =>
        {
            // what the receive loop allocated since it last called the handler (the handler itself allocates nothing)
            var now = GC.GetAllocatedBytesForCurrentThread();
            if (Volatile.Read(ref handled) >= 20 && lastSeen >= 0)
            {
                Interlocked.Add(ref allocatedBetweenBatches, now - lastSeen);
            }

            _ = receiver.EndPointOf(batch.Sources[0]);
            Interlocked.Increment(ref handled);
            lastSeen = GC.GetAllocatedBytesForCurrentThread();
        });
        var to = new IPEndPoint(IPAddress.Parse(loopback), receiver.Port);
        var batch = BatchTesting.Fill(Enumerable.Range(0, 48).Select(i => ((IPEndPoint?)to, BatchTesting.Payload(i, i % 16 == 15 ? 400 : 1300))).ToList());
        // the receiver may take several sends in one batch: send until it has handled enough batches
        bool SendUntil(Func<bool> done) => Eventually.Within(
            () =>
            {
                if (!done())
                {
                    sender.SendBatch(batch);
                }

                return done();
            },
            timeoutMs: 10_000,
            pollMs: 2);

        Assert.True(SendUntil(() => Volatile.Read(ref handled) >= 20)); // warm-up: endpoint cache, JIT
        var sent = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 50; i++)
        {
            sent += sender.SendBatch(batch);
        }

        var sendAllocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(50 * 48, sent);
        Assert.True(SendUntil(() => Volatile.Read(ref handled) >= 40));
        Assert.Equal(0, sendAllocated);
        Assert.Equal(0, Interlocked.Read(ref allocatedBetweenBatches));
    }

    [Fact]
    public void Concurrent_batches_single_sends_and_rebinds_account_for_every_datagram()
    {
        using var sender = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var received = 0L;
        receiver.StartReceivingBatches(batch => Interlocked.Add(ref received, batch.Count));
        var to = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var entries = Enumerable.Range(0, 32).Select(i => ((IPEndPoint?)to, BatchTesting.Payload(i, 1000))).ToList();
        var attempted = 0L;
        var sent = 0L;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var workers = new List<Thread>();
        for (var t = 0; t < 2; t++)
        {
            workers.Add(new Thread(() =>
            {
                var batch = BatchTesting.Fill(entries);
                while (!stop.IsCancellationRequested)
                {
                    Interlocked.Add(ref attempted, batch.Count);
                    Interlocked.Add(ref sent, sender.SendBatch(batch));
                }
            }));
        }

        workers.Add(new Thread(() =>
        {
            var one = BatchTesting.Payload(1, 200);
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref attempted);
                Interlocked.Add(ref sent, sender.Send(one, to) ? 1 : 0);
            }
        }));
        workers.Add(new Thread(() =>
        {
            do
            {
                sender.Rebind(0);
            }
            while (!stop.Token.WaitHandle.WaitOne(20)); // a rebind every 20 ms until the test stops the workers
        }));

        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        Assert.Equal(attempted, sent + sender.SendErrors);
        Assert.True(sent > 100, $"only {sent} datagrams sent");
        Assert.True(Interlocked.Read(ref received) > 0);
    }
}
