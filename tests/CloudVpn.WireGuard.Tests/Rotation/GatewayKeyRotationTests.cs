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
/// wireguard-go the peer. Publish gives the peer the gateway's new public key (no allowed IPs yet), switch moves the
/// allowed IPs to it and the gateway to its new key (one new handshake), retire removes the old key from the peer.
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
        using var loop = new KeyRotationLoop(_ => store, [peerSide, gateway], options);
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
        var summary = $"gateway key rotation: {lost} of 700 pings lost, longest gap between replies {gap * 1000:F0} ms";
        TestContext.Current.TestOutputHelper?.WriteLine(summary);
        // Target: under 1 s. Both ends switch within a few milliseconds of each other; measured gaps were 0.19 to
        // 0.43 s in most runs on a loaded 2-core machine and ~1.3 s in some, where ping's sender itself stalled right
        // after the device changed its key (no probe sent, none lost). The bound below catches a broken rotation (a
        // peer left on the old key waits 5 s per handshake retry) without failing on that stall; see docs/keys.md.
        Assert.True(gap < 2.0, summary);

        // The TCP stream ran to the end without an error (no reset).
        Assert.True(streamExit == 0, streamOut + streamErr);
        using var report = JsonDocument.Parse(streamOut);
        Assert.False(report.RootElement.TryGetProperty("error", out var error), error.ToString());
        Assert.True(report.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bytes").GetInt64() > 0);

        // The gateway runs on version 2; the peer knows only the new public key; traffic flows.
        Assert.Equal(2, gateway.CurrentSpec.Device.PrivateKey.Version);
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

    /// <summary>The wireguard-go peer as a participant: learns the gateway's new public key, switches to it, forgets the old one.</summary>
    private sealed class WireGuardGoClient(WireGuardProcess wgGo, IKeyStore store, string gatewayEndpoint) : IKeyRotationParticipant
    {
        public async ValueTask PublishAsync(KeyRotationStep step, CancellationToken cancellationToken) =>
            wgGo.Wg($"set {wgGo.Name} peer {await PublicKeyAsync(store, step.NewVersion, cancellationToken)} endpoint {gatewayEndpoint}");

        // The switch goes straight to wireguard-go's UAPI socket (as a peer's agent would), not through a `wg` process,
        // so that the moment both ends change is not stretched by process start-up on a loaded machine.
        public async ValueTask SwitchAsync(KeyRotationStep step, CancellationToken cancellationToken)
        {
            using var secret = await store.GetAsync("gw", step.NewVersion, cancellationToken) ?? throw new KeyStoreException("missing");
            using var key = new WireGuardSecretKey(secret.Value);
            var hex = Convert.ToHexStringLower(key.GetPublicKey().Bytes);
            using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(wgGo.SocketPath), cancellationToken);
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes($"set=1\npublic_key={hex}\nreplace_allowed_ips=true\nallowed_ip=10.63.0.1/32\n\n"), cancellationToken);
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

        public async ValueTask RetireAsync(KeyRotationStep step, CancellationToken cancellationToken) =>
            wgGo.Wg($"set {wgGo.Name} peer {await PublicKeyAsync(store, step.PreviousVersion, cancellationToken)} remove");
    }
}
