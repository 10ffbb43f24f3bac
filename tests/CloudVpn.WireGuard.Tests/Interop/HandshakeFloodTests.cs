using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Device;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Netlink;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>
/// Our device (in this process, left namespace) with an established session to wireguard-go (right namespace), while
/// a raw UDP sender from a third address floods it with initiations that carry a valid mac1 but come from unknown
/// keys: the cookie mechanism engages (cookie replies, then the per-source rate limit once the flooder presents a
/// valid mac2) and pings through the tunnel keep being answered.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class HandshakeFloodTests
{
    private const string FloodAddress = "192.0.2.3";

    [Fact]
    public async Task Data_of_an_established_peer_keeps_flowing_under_an_initiation_flood_from_unknown_keys()
    {
        Prerequisite.RequireRoot();
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        WireGuardProcess.RequirePrerequisites(Implementation.WireGuardGo);
        Prerequisite.RequireCommand("ping");

        using var net = new NetnsPair("wf");
        NetnsPair.Exec(net.Right, $"ip addr add {FloodAddress}/24 dev veth0");
        var name = WireGuardProcess.UniqueName("cvf");
        var options = new WireGuardDeviceOptions { Name = name, ListenPort = 51820, UapiSocketDirectory = null, BringUp = true };
        await using var device = NetworkNamespace.Run(net.Left, () => WireGuardDevice.Create(options));
        using var peer = WireGuardProcess.Start(Implementation.WireGuardGo, net.Right);
        using var deviceKey = WireGuardSecretKey.GeneratePrivateKey();
        var peerPrivate = Cmd.Run("wg", "genkey").Stdout.Trim();
        var peerPublic = WireGuardPublicKey.FromBase64(Cmd.Run("wg", "pubkey", stdin: peerPrivate).Stdout.Trim());
        var engine = device.Engine;
        engine.PrivateKey = deviceKey;
        engine.SetPeer(new WireGuardPeerConfig { PublicKey = peerPublic, AllowedIps = [IPNetwork.Parse("10.62.0.2/32")] });
        NetnsPair.Exec(net.Left, $"ip addr add 10.62.0.1/24 dev {name}");

        var keyFile = Path.GetTempFileName();
        try
        {
            File.WriteAllText(keyFile, peerPrivate);
            peer.Wg($"set {peer.Name} private-key {keyFile} peer {engine.PublicKey.ToBase64()} endpoint {net.LeftIp}:51820 allowed-ips 10.62.0.1/32");
        }
        finally
        {
            File.Delete(keyFile);
        }

        peer.Ip($"addr add 10.62.0.2/24 dev {peer.Name}");
        peer.Ip($"link set {peer.Name} up");

        // the session is established before the flood
        Assert.True(Received(TunnelPair.Ping(net.Right, "10.62.0.1", count: 3).Output) > 0, "no ping through the tunnel before the flood");
        Assert.Equal(1, engine.Counters.HandshakesCompleted);

        using var flood = NetworkNamespace.Run(net.Right, () => new Flooder(FloodAddress, new IPEndPoint(IPAddress.Parse(net.LeftIp), 51820), engine.PublicKey));

        // 1. initiations with a valid mac1 and no mac2, far above the load threshold: answered with cookie replies
        flood.Start(withCookie: false);
        await Eventually.HoldsAsync(() => engine.Counters.CookieRepliesSent > 0 && engine.Counters.Drops(WireGuardDropReason.CookieRequired) > 0,
            "the device to answer the flood with cookie replies", explain: () => $"flood sent {flood.Sent}, counters: {Describe(engine)}");
        var cookieRepliesBefore = engine.Counters.CookieRepliesSent;
        var pinged = TunnelPair.Ping(net.Right, "10.62.0.1", count: 10);
        Assert.True(Received(pinged.Output) >= 5, $"pings under the cookie-reply flood: {pinged.Output}; counters: {Describe(engine)}");
        Assert.True(engine.Counters.CookieRepliesSent > cookieRepliesBefore, "the flood did not go on during the pings");
        flood.Stop();

        // 2. the flooder learns its cookie and floods with a valid mac2: the per-source rate limit drops the excess,
        //    what passes fails as an unknown key, and the established peer is untouched
        await flood.LearnCookieAsync();
        var rateLimitedBefore = engine.Counters.Drops(WireGuardDropReason.RateLimited);
        flood.Start(withCookie: true);
        await Eventually.HoldsAsync(() => engine.Counters.Drops(WireGuardDropReason.RateLimited) > rateLimitedBefore,
            "the per-source rate limit to drop initiations with a valid mac2", explain: () => $"flood sent {flood.Sent}, counters: {Describe(engine)}");
        pinged = TunnelPair.Ping(net.Right, "10.62.0.1", count: 10);
        Assert.True(Received(pinged.Output) >= 5, $"pings under the rate-limited flood: {pinged.Output}; counters: {Describe(engine)}");
        flood.Stop();

        Assert.True(engine.Counters.Drops(WireGuardDropReason.HandshakeFailed) > 0, "no flood initiation got as far as the (failing) key check");
        Assert.Equal(1, engine.Counters.HandshakesCompleted); // no flood initiation completed, the session was never replaced
    }

    private static int Received(string pingOutput)
    {
        var match = ReceivedPattern().Match(pingOutput);
        return match.Success ? int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    private static string Describe(WireGuardEngine engine) =>
        $"cookie replies {engine.Counters.CookieRepliesSent}, cookie required {engine.Counters.Drops(WireGuardDropReason.CookieRequired)}, " +
        $"rate limited {engine.Counters.Drops(WireGuardDropReason.RateLimited)}, handshake failed {engine.Counters.Drops(WireGuardDropReason.HandshakeFailed)}, " +
        $"bad mac1 {engine.Counters.Drops(WireGuardDropReason.InvalidMac1)}, handshakes {engine.Counters.HandshakesCompleted}";

    [GeneratedRegex(@"(\d+) received")]
    private static partial Regex ReceivedPattern();

    /// <summary>
    /// Sends initiations (random sender index, ephemeral and encrypted fields: no key we know) with a valid mac1 for
    /// the target's public key, in bursts of 100 every 5 ms (up to 20 000 per second, 20 times the load threshold).
    /// </summary>
    private sealed class Flooder : IDisposable
    {
        private readonly Socket _socket;
        private readonly IPEndPoint _target;
        private readonly CookieGenerator _macs;
        private readonly long _startTicks = TimeSpan.TicksPerDay;
        private Thread? _thread;
        private readonly ManualResetEventSlim _stop = new();
        private long _sent;

        public Flooder(string source, IPEndPoint target, WireGuardPublicKey targetKey)
        {
            _socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            _socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
            _target = target;
            _macs = new CookieGenerator(targetKey.Bytes);
        }

        public long Sent => Interlocked.Read(ref _sent);

        public void Start(bool withCookie)
        {
            _stop.Reset();
            Assert.Equal(withCookie, _macs.HasCookie(_startTicks));
            _thread = new Thread(Run) { IsBackground = true, Name = "initiation flood" };
            _thread.Start();
        }

        public void Stop()
        {
            _stop.Set();
            _thread?.Join();
            _thread = null;
        }

        /// <summary>Sends one initiation and decrypts the cookie reply to it (the device is still under load).</summary>
        public async Task LearnCookieAsync()
        {
            var buffer = new byte[256];
            _socket.ReceiveTimeout = 0;
            while (_socket.Available > 0)
            {
                _socket.Receive(buffer); // replies to the first flood
            }

            await Eventually.HoldsAsync(async () =>
            {
                var message = NewInitiation();
                _socket.SendTo(message, _target);
                using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                try
                {
                    while (true)
                    {
                        var received = await _socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                        if (received == MessageFormat.CookieReplyLength && _macs.ConsumeReply(buffer.AsSpan(0, received), _startTicks))
                        {
                            return true;
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                    return false;
                }
            }, "a cookie reply to the flooder's own initiation");
        }

        private byte[] NewInitiation()
        {
            var message = new byte[MessageFormat.InitiationLength];
            RandomNumberGenerator.Fill(message);
            message[0] = MessageFormat.Initiation;
            message[1] = message[2] = message[3] = 0;
            _macs.AddMacs(message, _startTicks); // mac1 always; mac2 once a cookie was learnt
            return message;
        }

        private void Run()
        {
            var message = NewInitiation();
            do
            {
                for (var i = 0; i < 100 && !_stop.IsSet; i++)
                {
                    // a new sender index each time; the MACs cover it, so recompute them
                    RandomNumberGenerator.Fill(message.AsSpan(MessageFormat.InitiationSender, 4));
                    _macs.AddMacs(message, _startTicks); // mac2 too once LearnCookieAsync succeeded
                    _socket.SendTo(message, _target);
                    Interlocked.Increment(ref _sent);
                }
            }
            while (!_stop.Wait(5)); // 100 initiations per 5 ms until stopped
        }

        public void Dispose()
        {
            Stop();
            _socket.Dispose();
            _stop.Dispose();
        }
    }
}
