using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using CloudVpn.WireGuard.Device;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using CloudVpn.WireGuard.Uapi;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.Benchmarks;

/// <summary>
/// The scale figures of issue 10 as one run (not BenchmarkDotNet: configuring 100 000 peers is a single timed event,
/// not a microbenchmark): configure N peers through the engine API and through a UAPI <c>set=1</c> on a real unix
/// socket, managed bytes per idle peer, UAPI <c>get=1</c> and removal of all peers. Each figure is one
/// <c>scale: ...</c> line. Run: <c>dotnet run -c Release --project bench/CloudVpn.Benchmarks -- scale [peers]</c>.
/// </summary>
internal static partial class ScaleRun
{
    private const int ClockThreadCpuTime = 3; // CLOCK_THREAD_CPUTIME_ID

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec value);

    /// <summary>
    /// Runs initiate, respond, complete for 3 s after a 1 s warm-up (tiered JIT) and sums the thread CPU of each round
    /// and of its respond step; <paramref name="handshakesPerRound"/> handshakes are done per round.
    /// </summary>
    private static (double Wall, long Cpu, long Responder, int Count) MeasureHandshakes(Action initiate, Action respond, Action complete, int handshakesPerRound)
    {
        var warmUp = Stopwatch.StartNew();
        while (warmUp.ElapsedMilliseconds < 1000)
        {
            initiate();
            respond();
            complete();
        }

        var wall = Stopwatch.StartNew();
        var count = 0;
        long cpu = 0, responder = 0;
        while (wall.ElapsedMilliseconds < 3000)
        {
            var t0 = ThreadCpuNanoseconds();
            initiate();
            var t1 = ThreadCpuNanoseconds();
            respond();
            var t2 = ThreadCpuNanoseconds();
            complete();
            var t3 = ThreadCpuNanoseconds();
            cpu += t3 - t0;
            responder += t2 - t1;
            count += handshakesPerRound;
        }

        wall.Stop();
        return (wall.Elapsed.TotalSeconds, cpu, responder, count);
    }

    /// <summary>Thread CPU nanoseconds of one variable-base and one fixed-base X25519, each the mean of 2000.</summary>
    private static (double VariableBase, double FixedBase) MeasureX25519()
    {
        Span<byte> scalar = stackalloc byte[32];
        Span<byte> point = stackalloc byte[32];
        Span<byte> output = stackalloc byte[32];
        Curve25519.GenerateEphemeral(scalar, point);
        const int Rounds = 2000;
        for (var i = 0; i < 200; i++)
        {
            Curve25519.SharedSecret(output, scalar, point);
            Curve25519.DerivePublic(output, scalar);
        }

        var t0 = ThreadCpuNanoseconds();
        for (var i = 0; i < Rounds; i++)
        {
            Curve25519.SharedSecret(output, scalar, point);
        }

        var t1 = ThreadCpuNanoseconds();
        for (var i = 0; i < Rounds; i++)
        {
            Curve25519.DerivePublic(output, scalar);
        }

        var t2 = ThreadCpuNanoseconds();
        CryptographicOperations.ZeroMemory(scalar);
        return ((t1 - t0) / (double)Rounds, (t2 - t1) / (double)Rounds);
    }

    /// <summary>Thread CPU nanoseconds per X25519 in full eight-lane batches (the mean over 250 batches).</summary>
    private static double MeasureX25519Batch()
    {
        var scalars = RandomNumberGenerator.GetBytes(Curve25519Batch.Lanes * 32);
        var points = new byte[Curve25519Batch.Lanes * 32];
        var outputs = new byte[Curve25519Batch.Lanes * 32];
        for (var i = 0; i < Curve25519Batch.Lanes; i++)
        {
            Curve25519.DerivePublic(points.AsSpan(i * 32, 32), scalars.AsSpan(i * 32, 32));
        }

        const int Rounds = 250;
        var warmUp = Stopwatch.StartNew();
        while (warmUp.ElapsedMilliseconds < 1000)
        {
            // long enough for the tiered JIT to replace the first, unoptimized code
            Curve25519Batch.ScalarMult(scalars, points, outputs, Curve25519Batch.Lanes);
        }

        var t0 = ThreadCpuNanoseconds();
        for (var i = 0; i < Rounds; i++)
        {
            Curve25519Batch.ScalarMult(scalars, points, outputs, Curve25519Batch.Lanes);
        }

        var t1 = ThreadCpuNanoseconds();
        CryptographicOperations.ZeroMemory(scalars);
        return (t1 - t0) / (double)Rounds / Curve25519Batch.Lanes;
    }

    private static long ThreadCpuNanoseconds() => ClockGetTime(ClockThreadCpuTime, out var t) == 0 ? (t.Seconds * 1_000_000_000L) + t.Nanoseconds : throw new InvalidOperationException("clock_gettime failed");

    public static async Task<int> RunAsync(string[] args)
    {
        var peers = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 100_000;
        // wg only finds sockets in /var/run/wireguard: use it when we may (root), so the wg tool can be timed too
        var asRoot = Environment.UserName == "root";
        var socketDirectory = args.Length > 2 ? args[2] : asRoot ? UapiServer.DefaultSocketDirectory : Path.Combine(Path.GetTempPath(), $"cloudvpn-scale-{Environment.ProcessId}");
        var interfaceName = $"cvscale{Environment.ProcessId % 100000}";
        Console.WriteLine($"scale: peers={peers} cores={Environment.ProcessorCount} runtime={System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}");

        var keys = RandomKeys(peers);
        var networks = new IPNetwork[peers];
        for (var i = 0; i < peers; i++)
        {
            // one /32 each in 10.0.0.0/8 (i + 1 so that no peer owns the network address)
            var host = (uint)(0x0A000000 + i + 1);
            var bytes = new byte[] { (byte)(host >> 24), (byte)(host >> 16), (byte)(host >> 8), (byte)host };
            networks[i] = new IPNetwork(new IPAddress(bytes), 32);
        }

        // --- engine API -------------------------------------------------------------------------------------------
        using (var engine = NewEngine())
        {
            var before = ManagedBytes();
            var stopwatch = Stopwatch.StartNew();
            for (var i = 0; i < peers; i++)
            {
                engine.SetPeer(new WireGuardPeerConfig
                {
                    PublicKey = keys[i],
                    Endpoint = new IPEndPoint(IPAddress.Parse("198.51.100.1"), 10000 + (i % 50000)),
                    AllowedIps = [networks[i]],
                });
            }

            stopwatch.Stop();
            Console.WriteLine($"scale: configure {peers} peers (engine API): {stopwatch.Elapsed.TotalSeconds:F2} s");
            var after = ManagedBytes();
            Console.WriteLine($"scale: managed memory per idle peer: {(after - before) / peers} B ({(after - before) / (1024.0 * 1024.0):F1} MiB for {peers})");

            stopwatch.Restart();
            var snapshot = engine.GetPeers();
            stopwatch.Stop();
            Console.WriteLine($"scale: snapshot of {snapshot.Count} peers (engine GetPeers): {stopwatch.Elapsed.TotalMilliseconds:F0} ms");

            stopwatch.Restart();
            for (var i = 0; i < peers; i++)
            {
                engine.RemovePeer(keys[i]);
            }

            stopwatch.Stop();
            Console.WriteLine($"scale: remove {peers} peers one by one (engine API): {stopwatch.Elapsed.TotalSeconds:F2} s");
        }

        // --- UAPI over a unix socket (what wg setconf / wg show send) ---------------------------------------------
        using (var engine = NewEngine())
        {
            var device = new EngineUapiDevice(() => engine, () => 51820, _ => { }, mark => engine.FirewallMark = mark);
            await using var server = UapiServer.Start(interfaceName, device, NullLogger.Instance, socketDirectory);
            var request = SetRequestText(keys, networks);
            var stopwatch = Stopwatch.StartNew();
            var answer = await ExchangeAsync(server.SocketPath, request);
            stopwatch.Stop();
            if (answer != "errno=0\n\n")
            {
                Console.Error.WriteLine($"scale: the UAPI set failed: {answer.Trim()}");
                return 1;
            }

            Console.WriteLine($"scale: configure {peers} peers (UAPI set, {request.Length / (1024.0 * 1024.0):F1} MiB request): {stopwatch.Elapsed.TotalSeconds:F2} s");

            stopwatch.Restart();
            var get = await ExchangeAsync(server.SocketPath, "get=1\n\n"u8.ToArray());
            stopwatch.Stop();
            var listed = CountLines(get, "public_key=");
            Console.WriteLine($"scale: UAPI get (wg show) of {listed} peers: {stopwatch.Elapsed.TotalMilliseconds:F0} ms ({get.Length / (1024.0 * 1024.0):F1} MiB answer)");

            var remove = new StringBuilder("set=1\n");
            foreach (var key in keys)
            {
                remove.Append("public_key=").Append(Convert.ToHexStringLower(key.Bytes)).Append("\nremove=true\n");
            }

            remove.Append('\n');
            stopwatch.Restart();
            answer = await ExchangeAsync(server.SocketPath, Encoding.ASCII.GetBytes(remove.ToString()));
            stopwatch.Stop();
            Console.WriteLine($"scale: remove {peers} peers (UAPI set remove=true): {stopwatch.Elapsed.TotalSeconds:F2} s ({answer.Trim()}, {engine.GetPeers().Count} left)");

            var wg = FindOnPath("wg");
            if (wg is not null && socketDirectory == UapiServer.DefaultSocketDirectory)
            {
                // the real tool: wg setconf (replace_peers=true and every peer) and wg show dump, through our socket
                var config = Path.Combine(Path.GetTempPath(), $"{interfaceName}.conf");
                await File.WriteAllTextAsync(config, WgConfigText(keys, networks));
                try
                {
                    stopwatch.Restart();
                    var (code, output) = await RunAsync(wg, $"setconf {interfaceName} {config}");
                    stopwatch.Stop();
                    Console.WriteLine($"scale: configure {peers} peers (wg setconf through our UAPI socket): {stopwatch.Elapsed.TotalSeconds:F2} s (exit {code}{(code == 0 ? string.Empty : ": " + output.Trim())}, {engine.GetPeers().Count} peers)");
                    stopwatch.Restart();
                    (code, output) = await RunAsync(wg, $"show {interfaceName} dump");
                    stopwatch.Stop();
                    Console.WriteLine($"scale: wg show dump of {output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length - 1} peers: {stopwatch.Elapsed.TotalMilliseconds:F0} ms (exit {code})");
                }
                finally
                {
                    File.Delete(config);
                }
            }
            else
            {
                Console.WriteLine("scale: wg setconf / wg show not timed (needs the wg tool and root for /var/run/wireguard)");
            }

            // replace_peers on a full device (wg setconf of a new file)
            await ExchangeAsync(server.SocketPath, request);
            stopwatch.Restart();
            answer = await ExchangeAsync(server.SocketPath, "set=1\nreplace_peers=true\n\n"u8.ToArray());
            stopwatch.Stop();
            Console.WriteLine($"scale: replace_peers=true over {peers} peers: {stopwatch.Elapsed.TotalSeconds:F2} s ({answer.Trim()})");
        }

        // --- handshakes on one thread: wall clock and the CPU time this process spent (a shared machine inflates the first)
        var handshake = new NoiseHandshakeBenchmark();
        handshake.Setup();
        var single = MeasureHandshakes(handshake.Initiate, handshake.Respond, handshake.Complete, 1);
        handshake.Cleanup();
        Console.WriteLine($"scale: handshakes (both sides, one thread): {single.Count / single.Wall:F0} per wall-clock second, {single.Count * 1e9 / single.Cpu:F0} per CPU second ({single.Cpu / 1000.0 / single.Count:F0} us of thread CPU each)");
        Console.WriteLine($"scale: responder half only (consume initiation, respond, derive keys: a gateway's share): {single.Count * 1e9 / single.Responder:F0} per CPU second ({single.Responder / 1000.0 / single.Count:F0} us of thread CPU each)");

        // --- the same, eight handshakes at a time with their X25519 in AVX-512 lanes
        var batched = new BatchedHandshakeBenchmark();
        batched.Setup();
        var eight = MeasureHandshakes(batched.Initiate, batched.Respond, batched.Complete, BatchedHandshakeBenchmark.Handshakes);
        batched.Cleanup();
        Console.WriteLine($"scale: handshakes eight at a time, X25519 in AVX-512 lanes (both sides, one thread): {eight.Count / eight.Wall:F0} per wall-clock second, {eight.Count * 1e9 / eight.Cpu:F0} per CPU second ({eight.Cpu / 1000.0 / eight.Count:F0} us of thread CPU each)");
        Console.WriteLine($"scale: responder half, eight at a time: {eight.Count * 1e9 / eight.Responder:F0} per CPU second ({eight.Responder / 1000.0 / eight.Count:F0} us of thread CPU each)");

        // --- the gateway's share through the whole engine: 64 initiations in one UDP batch, or one at a time
        var (burstUs, singleUs) = GatewayBurstRun.Run(ThreadCpuNanoseconds);
        Console.WriteLine($"scale: gateway engine answering 64 initiations in one UDP batch: {burstUs:F0} us of thread CPU each ({1e6 / burstUs:F0} per CPU second); one datagram at a time: {singleUs:F0} us ({1e6 / singleUs:F0} per CPU second)");

        // --- the floor under those figures: a complete handshake does six variable-base X25519 (es, ee, se on each
        // side; the static-static secret is computed once per peer) and two fixed-base ones (the ephemeral keys)
        var (variableBase, fixedBase) = MeasureX25519();
        var floor = (6 * variableBase) + (2 * fixedBase);
        var batchLane = MeasureX25519Batch();
        Console.WriteLine($"scale: X25519 in eight-lane batches (AVX-512 {(Curve25519Batch.IsAccelerated ? "yes" : "no: libsodium per item")}): {batchLane / 1000.0:F1} us of thread CPU per scalar multiplication");
        Console.WriteLine($"scale: X25519 (libsodium): variable-base {variableBase / 1000.0:F1} us, fixed-base {fixedBase / 1000.0:F1} us of thread CPU; a complete handshake's 6 + 2 take {floor / 1000.0:F0} us, so at most {1e9 / floor:F0} handshakes per CPU second with everything else free; the rest measured above: {((single.Cpu / (double)single.Count) - floor) / 1000.0:F0} us");

        // --- the data path allocation counter, read from this thread while a worker encrypts and decrypts
        using (var pair = new ConnectedPair())
        {
            var packet = ConnectedPair.Packet(1420);
            var last = new byte[2048];
            var lastLength = 0;
            pair.ATransport.Sink = d =>
            {
                d.CopyTo(last);
                lastLength = d.Length;
            };
            var address = ConnectedPair.AEndpoint.Serialize();
            var stop = false;
            var worker = new Thread(() =>
            {
                for (var i = 0; i < 1000; i++)
                {
                    pair.A.HandleTunPacket(packet); // warm-up
                    pair.B.HandleDatagram(last.AsSpan(0, lastLength), address);
                }

                var thread = pair.B.DataPathAllocations.Register("encrypt+decrypt");
                while (!Volatile.Read(ref stop))
                {
                    for (var i = 0; i < 64; i++)
                    {
                        pair.A.HandleTunPacket(packet);
                        pair.B.HandleDatagram(last.AsSpan(0, lastLength), address);
                    }

                    thread.Sample(packets: 64);
                }
            });
            worker.Start();
            var readings = new List<string>();
            for (var i = 0; i < 4; i++)
            {
                Thread.Sleep(500);
                readings.Add($"{pair.B.DataPathAllocations.AllocatedBytes} B/{pair.B.DataPathAllocations.Packets} packets");
            }

            Volatile.Write(ref stop, true);
            worker.Join();
            Console.WriteLine($"scale: data path allocations read during a 2 s encrypt+decrypt run (1420-byte packets): {string.Join(", ", readings)}");
        }

        if (socketDirectory != UapiServer.DefaultSocketDirectory)
        {
            try
            {
                Directory.Delete(socketDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        return 0;
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    internal static WireGuardPublicKey[] RandomKeys(int count)
    {
        // random 32-byte strings are valid X25519 public keys (the engine still derives the static-static secret)
        var keys = new WireGuardPublicKey[count];
        var bytes = new byte[32];
        for (var i = 0; i < count; i++)
        {
            RandomNumberGenerator.Fill(bytes);
            keys[i] = new WireGuardPublicKey(bytes);
        }

        return keys;
    }

    private static WireGuardEngine NewEngine()
    {
        using var key = WireGuardSecretKey.GeneratePrivateKey();
        return new WireGuardEngine(new SinkTransport(), TimeProvider.System, NullLogger<WireGuardEngine>.Instance) { PrivateKey = key };
    }

    private static long ManagedBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static byte[] SetRequestText(WireGuardPublicKey[] keys, IPNetwork[] networks)
    {
        var text = new StringBuilder("set=1\nreplace_peers=true\n");
        for (var i = 0; i < keys.Length; i++)
        {
            text.Append("public_key=").Append(Convert.ToHexStringLower(keys[i].Bytes)).Append('\n')
                .Append("endpoint=198.51.100.1:").Append(10000 + (i % 50000)).Append('\n')
                .Append("replace_allowed_ips=true\nallowed_ip=").Append(networks[i].ToString()).Append('\n');
        }

        text.Append('\n');
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    private static string WgConfigText(WireGuardPublicKey[] keys, IPNetwork[] networks)
    {
        using var key = WireGuardSecretKey.GeneratePrivateKey();
        var text = new StringBuilder("[Interface]\nPrivateKey = ").Append(key.ToBase64()).Append('\n');
        for (var i = 0; i < keys.Length; i++)
        {
            text.Append("\n[Peer]\nPublicKey = ").Append(keys[i].ToBase64())
                .Append("\nEndpoint = 198.51.100.1:").Append(10000 + (i % 50000))
                .Append("\nAllowedIPs = ").Append(networks[i].ToString()).Append('\n');
        }

        return text.ToString();
    }

    private static string? FindOnPath(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, command)).FirstOrDefault(File.Exists);

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string arguments)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    private static async Task<string> ExchangeAsync(string socketPath, byte[] request)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var send = stream.WriteAsync(request).AsTask();
        var answer = new MemoryStream();
        var buffer = new byte[1 << 16];
        while (true)
        {
            var read = await stream.ReadAsync(buffer);
            if (read == 0)
            {
                break;
            }

            answer.Write(buffer, 0, read);
            var span = answer.GetBuffer().AsSpan(0, (int)answer.Length);
            if (span.Length >= 2 && span[^1] == '\n' && span[^2] == '\n')
            {
                break;
            }
        }

        await send;
        return Encoding.ASCII.GetString(answer.GetBuffer(), 0, (int)answer.Length);
    }

    private static int CountLines(string text, string prefix)
    {
        var count = 0;
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                count++;
            }
        }

        return count;
    }
}
