using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using CloudVpn.KeyRotation;
using CloudVpn.KeyStores;
using CloudVpn.Testing;
using CloudVpn.Tunnels;
using CloudVpn.WireGuard.Hosting;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Tests.Interop;
using Microsoft.Extensions.DependencyInjection;

namespace CloudVpn.WireGuard.Tests.Rotation;

/// <summary>
/// A gateway's private key rotated by the rotation loop over a real tunnel: our userspace WireGuard is the gateway,
/// wireguard-go the peer. Publish makes the gateway answer under its new key too, then the peer swaps the gateway's
/// public key (its next handshake goes to the new key and is answered at once); switch makes the gateway initiate
/// under the new key (the session made under it goes on); retire drops the old key.
/// </summary>
[Trait("Category", "Integration")]
[Collection(RotationOverTunnelCollection.Name)]
public sealed partial class GatewayKeyRotationTests : IAsyncDisposable
{
    private readonly string _keyDir = Directory.CreateTempSubdirectory("cloudvpn-gwrot-keys").FullName;
    private readonly ServiceProvider _services;

    public GatewayKeyRotationTests()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCloudVpn().AddFileKeyStore(_keyDir).AddWireGuard();
        _services = services.BuildServiceProvider();
    }

    [Fact]
    public async Task A_gateway_key_rotation_keeps_the_tcp_stream_and_interrupts_pings_only_briefly()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wireguard-go");
        Prerequisite.RequireCommand("wg");
        Prerequisite.RequireCommand("iperf3");
        Prerequisite.RequireCommand("ping");
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun");
        var ct = TestContext.Current.CancellationToken;
        using var net = new NetnsPair("wq");
        using var wgGo = WireGuardProcess.Start(Implementation.WireGuardGo, net.Right);
        var store = _services.GetRequiredService<IKeyStore>();
        using (var gatewayKey = WireGuardSecretKey.GeneratePrivateKey())
        {
            await store.PutAsync("gw", gatewayKey.Bytes.ToArray(), cancellationToken: ct);
        }

        using var peerKey = WireGuardSecretKey.GeneratePrivateKey();
        var peerKeyFile = Path.Combine(_keyDir, "peer.key");
        await File.WriteAllTextAsync(peerKeyFile, peerKey.ToBase64(), ct);
        wgGo.Wg($"set {wgGo.Name} private-key {peerKeyFile} listen-port 51820");
        // the peer gets the socket buffers current wireguard-go sets itself (and our device has): with Debian's 208 KiB a
        // burst of the stream overflows it whenever the daemon waits for a core on a busy machine
        Assert.True(wgGo.EnlargeUdpSocketBuffers() >= 1);
        wgGo.Wg($"set {wgGo.Name} peer {await PublicKeyAsync(store, 1, ct)} allowed-ips 10.63.0.1/32");
        wgGo.Ip($"addr add 10.63.0.2/24 dev {wgGo.Name}");
        wgGo.Ip($"link set {wgGo.Name} up");

        var spec = new TunnelSpec(
            new DeviceSpec($"cvgwr{Environment.ProcessId % 10000}", new KeyReference("gw", Version: 1), 51830, []) { InterfaceAddresses = [InterfaceAddress.Parse("10.63.0.1/24")] },
            [new PeerSpec(peerKey.GetPublicKey().ToBase64(), [IPNetwork.Parse("10.63.0.2/32")]) { Endpoint = $"{net.RightIp}:51820" }])
        {
            DriverSettings = new Dictionary<string, string> { ["wireguard-userspace.netns"] = net.Left, ["wireguard-userspace.uapi-socket-directory"] = "none" },
        };
        await using var tunnel = await _services.GetRequiredService<UserspaceWireGuardDriver>().OpenAsync(spec, ct);
        var peerSide = new WireGuardGoClient(wgGo, store, $"{net.LeftIp}:51830");
        var gateway = new TunnelKeyRotationParticipant(tunnel, spec);
        var options = new KeyRotationOptions { Interval = TimeSpan.FromHours(1), Overlap = TimeSpan.FromSeconds(1), CheckInterval = TimeSpan.FromSeconds(1) };
        options.Keys.Add(new RotatedKey("gw", RotatedKeyKind.PrivateKey));

        // the gateway first: it accepts the new key before any peer uses it
        using var loop = new KeyRotationLoop(_ => store, [gateway, peerSide], options);
        Assert.Equal(0, NetnsPair.Exec(net.Left, "ping -c 2 -i 0.2 -W 3 10.63.0.2", check: false).ExitCode);

        var server = Task.Run(() => NetnsPair.Exec(net.Right, "iperf3 -s -1 -p 5212", check: false, timeoutMs: 60_000), ct);
        await Task.Delay(500, ct);
        var ping = Task.Run(() => NetnsPair.Exec(net.Left, "ping -D -i 0.01 -c 700 -W 2 10.63.0.2", check: false, timeoutMs: 60_000), ct);
        var stream = Task.Run(() => NetnsPair.Exec(net.Left, "iperf3 -c 10.63.0.2 -p 5212 -t 7 -b 20M -J", check: false, timeoutMs: 60_000), ct);
        await Task.Delay(3000, ct);
        Assert.Equal(1, await loop.RunOnceAsync(force: true, ct));
        var (_, pingOut, pingErr) = await ping;
        var (streamExit, streamOut, streamErr) = await stream;
        await server;

        // The longest silence between consecutive ping replies is the interruption.
        var replies = Regex.Matches(pingOut, @"\[(\d+\.\d+)\][^\n]*icmp_seq=(\d+)")
            .Select(m => (Seq: int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), At: double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)))
            .OrderBy(r => r.Seq)
            .ToList();
        Assert.True(replies.Count > 600, pingOut + pingErr);
        var gap = replies.Zip(replies.Skip(1), (a, b) => b.At - a.At).Max();
        var lost = 700 - replies.Count;
        var worst = replies.Zip(replies.Skip(1)).MaxBy(p => p.Second.At - p.First.At);
        var swap = peerSide.SwappedAt;
        var missing = Enumerable.Range(1, 700).Except(replies.Select(r => r.Seq)).ToList();
        var atSwap = replies.Zip(replies.Skip(1)).Where(p => p.Second.At >= swap && p.First.At <= swap + 1.0).Select(p => p.Second.At - p.First.At).DefaultIfEmpty(0).Max();
        // a lost ping's time: its neighbours' replies, relative to the peer's swap
        var lostAt = missing.Select(seq => replies.Where(r => r.Seq < seq).Select(r => r.At).DefaultIfEmpty(double.NaN).Max() - swap);
        var summary = $"gateway key rotation: {lost} of 700 pings lost (icmp_seq {string.Join(",", missing)}; "
            + $"{string.Join(",", lostAt.Select(t => $"{t * 1000:F0}"))} ms from the swap), longest gap between replies {gap * 1000:F0} ms, "
            + $"{atSwap * 1000:F0} ms at the swap "
            + $"(after icmp_seq {worst.First.Seq}, {(worst.First.At - swap) * 1000:F0} ms from the peer's swap); "
            + LossReport.Collect(net.Left, spec.Device.Name, net.Right, wgGo.Name, await tunnel.GetStatusAsync(ct));
        TestContext.Current.TestOutputHelper?.WriteLine(summary);
        Assert.True(gap < 1.0, summary);

        // The TCP stream ran to the end without an error (no reset).
        Assert.True(streamExit == 0, streamOut + streamErr);
        using var report = JsonDocument.Parse(streamOut);
        Assert.False(report.RootElement.TryGetProperty("error", out var error), error.ToString());
        Assert.True(report.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bytes").GetInt64() > 0);

        // The gateway runs on version 2; the peer knows only the new public key; traffic flows.
        Assert.Equal(2, gateway.CurrentSpec.Device.PrivateKey.Version);
        Assert.Null(gateway.CurrentSpec.Device.AdditionalPrivateKey); // retired: the old key is no longer answered
        var status = await tunnel.GetStatusAsync(ct);
        Assert.Equal(await PublicKeyAsync(store, 2, ct), status.PublicKey);
        var peers = wgGo.Wg($"show {wgGo.Name} peers");
        Assert.Contains(await PublicKeyAsync(store, 2, ct), peers, StringComparison.Ordinal);
        Assert.DoesNotContain(await PublicKeyAsync(store, 1, ct), peers, StringComparison.Ordinal);
        Assert.Equal(0, NetnsPair.Exec(net.Left, "ping -c 2 -i 0.2 -W 3 10.63.0.2", check: false).ExitCode);
    }

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        Directory.Delete(_keyDir, recursive: true);
    }

    private static async Task<string> PublicKeyAsync(IKeyStore store, long version, CancellationToken ct)
    {
        using var secret = await store.GetAsync("gw", version, ct) ?? throw new KeyStoreException($"gw version {version} is missing");
        using var key = new WireGuardSecretKey(secret.Value);
        return key.GetPublicKey().ToBase64();
    }

    /// <summary>
    /// The wireguard-go peer as a participant (what a peer's agent does): when it learns the gateway's new public key it
    /// swaps the peer entry in one UAPI request, straight to wireguard-go's socket (no `wg` process start-up on a
    /// loaded machine): the old entry goes, the new one takes the endpoint, the allowed IPs and a persistent keepalive,
    /// which (in wireguard-go as in the kernel) sends a keepalive at once and so starts the handshake under the new key.
    /// Switch and retire are the gateway's business.
    /// </summary>
    private sealed class WireGuardGoClient(WireGuardProcess wgGo, IKeyStore store, string gatewayEndpoint) : IKeyRotationParticipant
    {
        /// <summary>Wall-clock source of the swap time, compared with ping's own timestamps (<c>ping -D</c>).</summary>
        public TimeProvider Clock { get; init; } = TimeProvider.System;

        /// <summary>Unix time (seconds) of the swap.</summary>
        public double SwappedAt { get; private set; }

        public async ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken)
        {
            var oldKey = Convert.ToHexStringLower(Convert.FromBase64String(await PublicKeyAsync(store, step.PreviousVersion, cancellationToken)));
            var newKey = Convert.ToHexStringLower(Convert.FromBase64String(await PublicKeyAsync(store, step.NewVersion, cancellationToken)));
            using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(wgGo.SocketPath), cancellationToken);
            SwappedAt = Clock.GetUtcNow().ToUnixTimeMilliseconds() / 1000.0;
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(
                $"set=1\npublic_key={oldKey}\nremove=true\npublic_key={newKey}\nendpoint={gatewayEndpoint}\npersistent_keepalive_interval=25\n"
                + "replace_allowed_ips=true\nallowed_ip=10.63.0.1/32\n\n"), cancellationToken);
            var buffer = new byte[256];
            var answer = new System.Text.StringBuilder();
            while (!answer.ToString().EndsWith("\n\n", StringComparison.Ordinal))
            {
                var n = await socket.ReceiveAsync(buffer, cancellationToken);
                if (n == 0)
                {
                    break;
                }

                answer.Append(System.Text.Encoding.ASCII.GetString(buffer, 0, n));
            }

            Assert.Equal("errno=0\n\n", answer.ToString());
        }

        public ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
