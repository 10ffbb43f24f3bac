using System.Diagnostics;
using System.Globalization;
using System.Net;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Udp;

namespace CloudVpn.Benchmarks;

/// <summary>
/// Datagrams per second through <see cref="UdpBind"/> on loopback, per batching mode: one sender thread pushes
/// 1452-byte datagrams (a WireGuard transport packet of a 1420-MTU tunnel) to one receiver for a fixed time; the
/// figures are what the receiver got. Run: <c>dotnet run -c Release --project bench/CloudVpn.Benchmarks -- udp [seconds]</c>.
/// </summary>
internal static class UdpBench
{
    private const int Datagram = 1452;
    private const int PerBatch = 64;

    public static int Run(string[] args)
    {
        var seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        Console.WriteLine($"UDP loopback, {Datagram}-byte datagrams, batches of {PerBatch}, {seconds:0.#} s per mode, {Environment.ProcessorCount} cores");
        Console.WriteLine($"{"mode",-34} {"sent/s",12} {"received/s",12} {"Gbit/s",8} {"active",-20}");
        Measure("per datagram (Send/StartReceiving)", null, seconds);
        Measure("sendmsg/recvmsg, no offloads", new UdpBatchOptions { UseMmsg = false, UseGso = false, UseGro = false }, seconds);
        Measure("mmsg", new UdpBatchOptions { UseGso = false, UseGro = false }, seconds);
        Measure("mmsg + GSO", new UdpBatchOptions { UseGro = false }, seconds);
        Measure("mmsg + GRO", new UdpBatchOptions { UseGso = false }, seconds);
        Measure("mmsg + GSO + GRO (default)", new UdpBatchOptions(), seconds);
        return 0;
    }

    private static void Measure(string name, UdpBatchOptions? options, double seconds)
    {
        using var sender = UdpBind.Open(0, options: options);
        using var receiver = UdpBind.Open(0, options: options);
        long received = 0;
        if (options is null)
        {
            receiver.StartReceiving((_, _) => received++);
        }
        else
        {
            receiver.StartReceivingBatches(batch => received += batch.Count);
        }

        var to = new IPEndPoint(IPAddress.Loopback, receiver.Port);
        var batch = new PacketBatch(PerBatch, PerBatch * (Datagram + PacketBatch.Headroom + PacketBatch.Tailroom));
        for (var i = 0; i < PerBatch; i++)
        {
            batch.TryAdd(PacketBatch.Headroom + (i * (Datagram + PacketBatch.Headroom + PacketBatch.Tailroom)), Datagram);
            batch.Endpoints[i] = to;
        }

        var payload = new byte[Datagram];
        long sent = 0;
        var clock = Stopwatch.StartNew();
        var startReceived = Interlocked.Read(ref received);
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            if (options is null)
            {
                for (var i = 0; i < PerBatch; i++)
                {
                    sent += sender.Send(payload, to) ? 1 : 0;
                }
            }
            else
            {
                sent += sender.SendBatch(batch);
            }
        }

        var elapsed = clock.Elapsed.TotalSeconds;
        Thread.Sleep(200); // let the receiver drain what is queued
        var got = Interlocked.Read(ref received) - startReceived;
        var active = options is null ? "-" : receiver.ActiveOffloads.ToString();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-34} {sent / elapsed,12:N0} {got / elapsed,12:N0} {got * Datagram * 8 / elapsed / 1e9,8:0.00} {active,-20}"));
    }
}
