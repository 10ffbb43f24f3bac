using System.Diagnostics;
using System.Globalization;
using System.Net;
using CloudVpn.WireGuard.Buffers;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Udp;

namespace CloudVpn.Benchmarks;

/// <summary>
/// Datagrams per second through <see cref="UdpBind"/> on loopback, per batching mode: one sender thread pushes
/// 1452-byte datagrams (a WireGuard transport packet of a 1420-MTU tunnel) to one receiver for a fixed time; the
/// figures are what the receiver got. Run: <c>dotnet run -c Release --project bench/CloudVpn.Benchmarks -- udp [seconds] [veth]</c>;
/// with <c>veth</c> (root) sender and receiver sit in two network namespaces joined by a veth pair (192.0.2.1 -> 192.0.2.2),
/// the topology of <c>bench/throughput.sh</c>.
/// </summary>
internal static class UdpBench
{
    private const int Datagram = 1452;
    private const int PerBatch = 64;

    public static int Run(string[] args)
    {
        var seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        var veth = args.Length > 2 && args[2] == "veth";
        var id = Environment.ProcessId;
        var (left, right) = ($"cvudpA{id}", $"cvudpB{id}");
        try
        {
            if (veth)
            {
                Ip($"netns add {left}");
                Ip($"netns add {right}");
                Ip($"link add veth0 netns {left} type veth peer name veth0 netns {right}");
                Ip($"-n {left} addr add 192.0.2.1/24 dev veth0");
                Ip($"-n {right} addr add 192.0.2.2/24 dev veth0");
                Ip($"-n {left} link set veth0 up");
                Ip($"-n {right} link set veth0 up");
            }

            var target = veth ? IPAddress.Parse("192.0.2.2") : IPAddress.Loopback;
            Func<Func<UdpBind>, UdpBind> inLeft = veth ? open => NetworkNamespace.Run(left, open) : open => open();
            Func<Func<UdpBind>, UdpBind> inRight = veth ? open => NetworkNamespace.Run(right, open) : open => open();
            Console.WriteLine($"UDP {(veth ? "over a veth between two namespaces" : "loopback")}, {Datagram}-byte datagrams, batches of {PerBatch}, {seconds:0.#} s per mode, {Environment.ProcessorCount} cores");
            Console.WriteLine($"{"mode",-34} {"sent/s",12} {"received/s",12} {"Gbit/s",8} {"active",-20}");
            Measure("per datagram (Send/StartReceiving)", null, seconds, target, inLeft, inRight);
            Measure("sendmsg/recvmsg, no offloads", new UdpBatchOptions { UseMmsg = false, UseGso = false, UseGro = false }, seconds, target, inLeft, inRight);
            Measure("mmsg", new UdpBatchOptions { UseGso = false, UseGro = false }, seconds, target, inLeft, inRight);
            Measure("mmsg + GSO", new UdpBatchOptions { UseGro = false }, seconds, target, inLeft, inRight);
            Measure("mmsg + GRO", new UdpBatchOptions { UseGso = false }, seconds, target, inLeft, inRight);
            Measure("mmsg + GSO + GRO (default)", new UdpBatchOptions(), seconds, target, inLeft, inRight);
            return 0;
        }
        finally
        {
            if (veth)
            {
                Ip($"netns del {left}", check: false);
                Ip($"netns del {right}", check: false);
            }
        }
    }

    private static void Ip(string arguments, bool check = true)
    {
        using var process = Process.Start(new ProcessStartInfo("ip", arguments) { UseShellExecute = false }) ?? throw new InvalidOperationException("cannot run ip");
        process.WaitForExit();
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ip {arguments} exited {process.ExitCode}");
        }
    }

    private static void Measure(string name, UdpBatchOptions? options, double seconds, IPAddress target, Func<Func<UdpBind>, UdpBind> inLeft, Func<Func<UdpBind>, UdpBind> inRight)
    {
        using var sender = inLeft(() => UdpBind.Open(0, options: options));
        using var receiver = inRight(() => UdpBind.Open(0, options: options));
        long received = 0;
        if (options is null)
        {
            receiver.StartReceiving((_, _) => received++);
        }
        else
        {
            receiver.StartReceivingBatches(batch => received += batch.Count);
        }

        var to = new IPEndPoint(target, receiver.Port);
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
