using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>
/// The bare engine (no TUN device: the test plays the TUN side) against Debian's wireguard-go, which runs in a
/// network namespace the test creates; the engine's UDP socket lives in the other namespace of the pair. A guard
/// for the exactness of the handshake, cookies and transport format; the device's interop tests go further.
/// </summary>
[Trait("Category", "Integration")]
public sealed class EngineInteropTests
{
    private const string WgAddress = "10.77.0.2";
    private const string OurAddress = "10.77.0.1";

    [Fact]
    public void Engine_handshakes_with_wireguard_go_both_ways_with_psk_and_cookies()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wireguard-go");
        Prerequisite.RequireCommand("wg");
        using var net = new NetnsPair("wge");
        using var wg = new WireGuardGo(net.Right);
        using var ourKey = WireGuardSecretKey.GeneratePrivateKey();
        using var psk = WireGuardSecretKey.GeneratePresharedKey();
        using var socket = NamespaceSocket.Bind(net.Left, new IPEndPoint(IPAddress.Parse(net.LeftIp), 51820));
        var transport = new SocketTransport(socket);
        using var engine = new WireGuardEngine(transport, TimeProvider.System, NullLogger<WireGuardEngine>.Instance) { PrivateKey = ourKey };
        engine.SetPeer(new WireGuardPeerConfig
        {
            PublicKey = wg.PublicKey, PresharedKey = psk, Endpoint = new IPEndPoint(IPAddress.Parse(net.RightIp), 51820),
            AllowedIps = [IPNetwork.Parse(WgAddress + "/32")],
        });
        wg.Configure(ourKey.GetPublicKey(), psk, $"{net.LeftIp}:51820");
        using var receiver = new ReceiveLoop(socket, engine, transport);

        // 1. we initiate; the echo request goes through wireguard-go to the namespace's kernel, which answers
        engine.HandleTunPacket(Icmp.Echo(OurAddress, WgAddress, type: 8, sequence: 1));
        Assert.True(transport.WaitForTun(p => Icmp.IsEcho(p, type: 0), TimeSpan.FromSeconds(10)), "no echo reply through wireguard-go");
        Assert.Equal(1, engine.Counters.HandshakeResponsesReceived);

        // 2. wireguard-go initiates (fresh peer on its side); our side answers the kernel's ping
        wg.Configure(ourKey.GetPublicKey(), psk, $"{net.LeftIp}:51820", recreate: true);
        var ping = NetnsPair.Exec(net.Right, $"ping -c 2 -i 0.3 -W 5 {OurAddress}", check: false, timeoutMs: 20_000);
        Assert.True(ping.ExitCode == 0, ping.Stdout + ping.Stderr);
        Assert.True(engine.Counters.HandshakeResponsesSent >= 1);

        // 3. under (forced) load we demand a cookie; wireguard-go's retry (after ~5 s) carries a valid mac2
        engine.HandshakeLoadThreshold = 0;
        wg.Configure(ourKey.GetPublicKey(), psk, $"{net.LeftIp}:51820", recreate: true);
        var responses = engine.Counters.HandshakeResponsesSent;
        ping = NetnsPair.Exec(net.Right, $"ping -c 1 -W 12 {OurAddress}", check: false, timeoutMs: 20_000);
        Assert.True(ping.ExitCode == 0, ping.Stdout + ping.Stderr);
        Assert.True(engine.Counters.CookieRepliesSent >= 1);
        Assert.Equal(responses + 1, engine.Counters.HandshakeResponsesSent);
        Assert.Equal(0, engine.Counters.Drops(WireGuardDropReason.InternalError));
        Assert.Equal(0, engine.Counters.Drops(WireGuardDropReason.DecryptFailed));
        Assert.Equal(0, engine.Counters.Drops(WireGuardDropReason.HandshakeFailed));
    }

    private sealed class WireGuardGo : IDisposable
    {
        private static int s_counter;
        private readonly string _ns;
        private readonly string _dir = Directory.CreateTempSubdirectory("wge-").FullName;
        private readonly Process _process;

        public WireGuardGo(string ns)
        {
            _ns = ns;
            Name = $"wge{Environment.ProcessId % 10000}{Interlocked.Increment(ref s_counter)}";
            using var key = WireGuardSecretKey.GeneratePrivateKey();
            PublicKey = key.GetPublicKey();
            KeyFile = Path.Combine(_dir, "key");
            File.WriteAllText(KeyFile, key.ToBase64());
            File.SetUnixFileMode(KeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var psi = new ProcessStartInfo("ip", $"netns exec {ns} wireguard-go -f {Name}")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            psi.Environment["WG_PROCESS_FOREGROUND"] = "1";
            _process = Process.Start(psi) ?? throw new InvalidOperationException("wireguard-go did not start");
            _process.OutputDataReceived += (_, _) => { };
            _process.ErrorDataReceived += (_, _) => { };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
            var deadline = Stopwatch.StartNew();
            // the TUN interface comes first, the configuration socket right after it: wait for both
            while (NetnsPair.Exec(ns, $"ip link show {Name}", check: false).ExitCode != 0 || !File.Exists($"/var/run/wireguard/{Name}.sock"))
            {
                if (deadline.Elapsed > TimeSpan.FromSeconds(10) || _process.HasExited)
                {
                    throw new InvalidOperationException("wireguard-go did not create its interface and socket");
                }

                Thread.Sleep(100);
            }

            NetnsPair.Exec(ns, $"ip addr add {WgAddress}/24 dev {Name}");
            NetnsPair.Exec(ns, $"ip link set {Name} up");
        }

        public string Name { get; }

        public string KeyFile { get; }

        public WireGuardPublicKey PublicKey { get; }

        public void Configure(WireGuardPublicKey peer, WireGuardSecretKey psk, string endpoint, bool recreate = false)
        {
            var pskFile = Path.Combine(_dir, "psk");
            File.WriteAllText(pskFile, psk.ToBase64());
            if (recreate)
            {
                NetnsPair.Exec(_ns, $"wg set {Name} peer {peer.ToBase64()} remove");
            }

            NetnsPair.Exec(_ns, $"wg set {Name} private-key {KeyFile} listen-port 51820 peer {peer.ToBase64()} " +
                $"preshared-key {pskFile} endpoint {endpoint} allowed-ips {OurAddress}/32");
        }

        public void Dispose()
        {
            try
            {
                // `ip netns exec` execs wireguard-go, so this pid is wireguard-go: SIGTERM lets it remove its
                // interface and its socket in /var/run/wireguard
                if (!_process.HasExited)
                {
                    Cmd.Run("kill", $"-TERM {_process.Id}", check: false);
                    if (!_process.WaitForExit(5000))
                    {
                        _process.Kill(entireProcessTree: true);
                        _process.WaitForExit(5000);
                    }
                }
            }
            finally
            {
                _process.Dispose();
                File.Delete($"/var/run/wireguard/{Name}.sock");
                Directory.Delete(_dir, recursive: true);
            }
        }
    }

    /// <summary>The engine's transport: UDP through the socket; "TUN" packets are collected, echo requests answered.</summary>
    private sealed class SocketTransport(Socket socket) : IWireGuardTransport
    {
        private readonly BlockingCollection<byte[]> _tun = [];

        public WireGuardEngine? Engine { get; set; }

        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination) => socket.SendTo(datagram, SocketFlags.None, destination);

        public void WriteToTun(ReadOnlySpan<byte> ipPacket)
        {
            if (Icmp.IsEcho(ipPacket, type: 8))
            {
                Engine?.HandleTunPacket(Icmp.Reply(ipPacket.ToArray()));
            }

            _tun.Add(ipPacket.ToArray());
        }

        public bool WaitForTun(Func<byte[], bool> match, TimeSpan timeout)
        {
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < timeout)
            {
                if (_tun.TryTake(out var packet, TimeSpan.FromMilliseconds(200)) && match(packet))
                {
                    return true;
                }
            }

            return false;
        }
    }

    private sealed class ReceiveLoop : IDisposable
    {
        private readonly Socket _socket;
        private readonly Thread _thread;
        private volatile bool _stop;

        public ReceiveLoop(Socket socket, WireGuardEngine engine, SocketTransport transport)
        {
            _socket = socket;
            transport.Engine = engine;
            socket.ReceiveTimeout = 200;
            _thread = new Thread(() =>
            {
                var buffer = new byte[65536];
                while (!_stop)
                {
                    EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                    int length;
                    try
                    {
                        length = _socket.ReceiveFrom(buffer, ref from);
                    }
                    catch (SocketException)
                    {
                        continue;
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }

                    engine.HandleDatagram(buffer.AsSpan(0, length), (IPEndPoint)from);
                }
            }) { IsBackground = true, Name = "wge-receive" };
            _thread.Start();
        }

        public void Dispose()
        {
            _stop = true;
            _thread.Join(2000);
        }
    }

    /// <summary>Creates a UDP socket inside a named network namespace (setns on this thread, then back).</summary>
    private static class NamespaceSocket
    {
        private const int CloneNewNet = 0x40000000;

        public static Socket Bind(string ns, IPEndPoint endpoint)
        {
            using var original = File.OpenHandle("/proc/thread-self/ns/net");
            using var target = File.OpenHandle($"/var/run/netns/{ns}");
            if (setns(target.DangerousGetHandle().ToInt32(), CloneNewNet) != 0)
            {
                throw new InvalidOperationException($"setns({ns}) failed: errno {Marshal.GetLastPInvokeError()}");
            }

            try
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                socket.Bind(endpoint);
                return socket;
            }
            finally
            {
                if (setns(original.DangerousGetHandle().ToInt32(), CloneNewNet) != 0)
                {
                    Environment.FailFast("could not return to the original network namespace");
                }
            }
        }

        [DllImport("libc", SetLastError = true)]
        private static extern int setns(int fd, int nstype);
    }

    private static class Icmp
    {
        public static byte[] Echo(string source, string destination, byte type, ushort sequence)
        {
            var packet = new byte[20 + 8 + 32];
            packet[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            packet[8] = 64;
            packet[9] = 1;
            IPAddress.Parse(source).TryWriteBytes(packet.AsSpan(12), out _);
            IPAddress.Parse(destination).TryWriteBytes(packet.AsSpan(16), out _);
            packet[20] = type;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), 0x4242);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(26), sequence);
            return Checksum(packet);
        }

        public static bool IsEcho(ReadOnlySpan<byte> packet, byte type) => packet.Length >= 28 && packet[0] == 0x45 && packet[9] == 1 && packet[20] == type;

        public static byte[] Reply(byte[] request)
        {
            var source = request.AsSpan(12, 4).ToArray();
            request.AsSpan(16, 4).CopyTo(request.AsSpan(12));
            source.CopyTo(request, 16);
            request[20] = 0;
            return Checksum(request);
        }

        private static byte[] Checksum(byte[] packet)
        {
            var ipLength = BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2));
            packet[10] = packet[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), Sum(packet.AsSpan(0, 20)));
            packet[22] = packet[23] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), Sum(packet.AsSpan(20, ipLength - 20)));
            return packet;
        }

        private static ushort Sum(ReadOnlySpan<byte> data)
        {
            uint sum = 0;
            for (var i = 0; i + 1 < data.Length; i += 2)
            {
                sum += (uint)((data[i] << 8) | data[i + 1]);
            }

            if ((data.Length & 1) == 1)
            {
                sum += (uint)(data[^1] << 8);
            }

            while (sum >> 16 != 0)
            {
                sum = (sum & 0xffff) + (sum >> 16);
            }

            return (ushort)~sum;
        }
    }
}
