using CloudVpn.Testing;
using System.Net;
using System.Text.Json;
using CloudVpn.KeyStores;
using CloudVpn.Samples.Gateway;
using CloudVpn.WireGuard.Keys;
using Microsoft.Extensions.Logging.Testing;

namespace CloudVpn.Samples.Tests;

/// <summary>The whole host (settings, key store, HTTP endpoints, peers file, key versions) with a fake tunnel driver.</summary>
public sealed class GatewayHostTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Readyz_fails_until_the_key_is_loaded_and_the_tunnel_answers()
    {
        var (gateway, gate) = await InProcessGateway.StartAsync(_dir.Path, gateKeyStore: true);
        await using (gateway)
        {
            var response = await gateway.Http.GetAsync(new Uri("/readyz", UriKind.Relative));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            using (var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()))
            {
                Assert.False(body.RootElement.GetProperty("ready").GetBoolean());
                Assert.StartsWith("failing: the gateway key is not loaded", body.RootElement.GetProperty("checks").GetProperty("key").GetString(), StringComparison.Ordinal);
            }

            Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
            Assert.Equal(0, await gateway.MetricAsync("cloudvpn_gateway_ready"));
            Assert.Empty(gateway.Driver.Specs);

            gate!.Gate.SetResult();
            await Eventually.HoldsAsync(async () => (await gateway.Http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode == HttpStatusCode.OK, "readyz 200");
            Assert.Equal(1, await gateway.MetricAsync("cloudvpn_gateway_ready"));

            var spec = Assert.Single(gateway.Driver.Specs);
            Assert.Equal("cloudvpn0", spec.Device.Name);
            Assert.Equal(new KeyReference(GatewayKey.KeyId, Version: 1), spec.Device.PrivateKey);
            Assert.Empty(spec.Device.Addresses);
            Assert.Equal([new CloudVpn.Tunnels.InterfaceAddress(IPAddress.Parse("10.8.0.1"), 24)], spec.Device.InterfaceAddresses);
            var first = Assert.Single(spec.Peers);
            Assert.Equal("client1", first.Name);
            Assert.Equal([IPNetwork.Parse("10.8.0.2/32")], first.AllowedIps);

            // the first start printed the public key and the first peer's configuration, which matches peers.json
            var printed = gateway.Console.ToString();
            Assert.Contains($"public key : {gateway.State.Key!.PublicKey}", printed, StringComparison.Ordinal);
            var config = printed[(printed.IndexOf(GatewayConsole.ClientConfigBeginMarker, StringComparison.Ordinal) + GatewayConsole.ClientConfigBeginMarker.Length)..printed.IndexOf(GatewayConsole.ClientConfigEndMarker, StringComparison.Ordinal)];
            var fields = PeersTests.ParseWgQuick(config);
            using var clientKey = WireGuardSecretKey.FromBase64(fields["Interface.PrivateKey"]);
            Assert.Equal(first.PublicKey, clientKey.GetPublicKey().ToBase64());
            Assert.Equal(gateway.State.Key!.PublicKey, fields["Peer.PublicKey"]);

            // the client's private key is in the printout only: never in a log line
            Assert.DoesNotContain(gateway.Logs.GetSnapshot(), r => r.Message.Contains(fields["Interface.PrivateKey"], StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_peer_added_to_the_peers_file_reaches_the_running_tunnel()
    {
        var (gateway, _) = await InProcessGateway.StartAsync(_dir.Path);
        await using (gateway)
        {
            await Eventually.HoldsAsync(() => gateway.Driver.Specs.Count == 1, "the tunnel to open");
            var added = PeerEnrollment.Add("laptop", gateway.Options, gateway.State.Key!.PublicKey);

            await Eventually.HoldsAsync(() => gateway.Driver.Specs[^1].Peers.Count == 2, "the new peer to be applied");
            Assert.Contains(gateway.Driver.Specs[^1].Peers, p => p.Name == "laptop" && p.PublicKey == added.Peer.PublicKey);
            await Eventually.HoldsAsync(async () => await gateway.MetricAsync("cloudvpn_configured_peers") == 2, "peers_configured 2");

            // a broken file is refused and counted; the peers in force stay
            await File.WriteAllTextAsync(gateway.Options.PeersFile, "{\"peers\": [ {\"name\": \"x\"} ]}");
            await Eventually.HoldsAsync(async () => await gateway.MetricAsync("cloudvpn_peers_file_reloads_total{result=\"error\"}") == 1, "the reload error to be counted");
            Assert.Equal(2, gateway.Driver.Specs[^1].Peers.Count);
            Assert.Contains(gateway.Logs.GetSnapshot(), r => r.Message.Contains("peers[0].publicKey: not a WireGuard public key", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_new_key_version_in_the_store_is_taken_into_use_and_logged()
    {
        var (gateway, _) = await InProcessGateway.StartAsync(_dir.Path);
        await using (gateway)
        {
            await Eventually.HoldsAsync(() => gateway.Driver.Specs.Count == 1, "the tunnel to open");
            var oldKey = gateway.State.Key!.PublicKey;

            // what the rotation loop does: write the next version of the gateway key
            var store = new FileKeyStore(new FileKeyStoreOptions { Directory = gateway.Options.KeysDirectory });
            using var next = WireGuardSecretKey.GeneratePrivateKey();
            await store.PutAsync(GatewayKey.KeyId, next.Bytes.ToArray(), expectedVersion: 1);

            await Eventually.HoldsAsync(() => gateway.Driver.Specs[^1].Device.PrivateKey.Version == 2, "key version 2 to be applied");
            // the state follows right after the driver took the new spec
            await Eventually.HoldsAsync(() => gateway.State.Key!.Version == 2, "the gateway to record key version 2");
            Assert.Equal(next.GetPublicKey().ToBase64(), gateway.State.Key!.PublicKey);
            Assert.NotEqual(oldKey, gateway.State.Key!.PublicKey);
            Assert.Equal(1, await gateway.MetricAsync("cloudvpn_key_rotations_total"));
            Assert.Equal(2, await gateway.MetricAsync("cloudvpn_key_version"));
            var rotated = Assert.Single(gateway.Logs.GetSnapshot(), r => r.GetStructuredStateValue("Event") == ConnectionEvents.KeyRotatedEvent);
            Assert.Equal("2", rotated.GetStructuredStateValue("NewVersion"));
        }
    }

    [Fact]
    public async Task With_the_rotation_loop_the_gateway_switches_keys_at_its_switch_phase()
    {
        var (gateway, _) = await InProcessGateway.StartAsync(
            _dir.Path,
            extraArgs: ["--CloudVpn:KeyRotation:Interval=00:00:02", "--CloudVpn:KeyRotation:Overlap=00:00:00.500", "--CloudVpn:KeyRotation:CheckInterval=00:00:00.200"]);
        await using (gateway)
        {
            await Eventually.HoldsAsync(() => gateway.Driver.Specs.Count == 1, "the tunnel to open");
            var first = gateway.State.Key!.PublicKey;

            await Eventually.HoldsAsync(() => gateway.Driver.Specs[^1].Device.PrivateKey.Version >= 2, "the loop to rotate the key", timeoutMs: 20_000);
            await Eventually.HoldsAsync(() => gateway.State.Key!.Version >= 2, "the gateway to record the new key version");
            var logs = gateway.Logs.GetSnapshot();
            var published = Assert.Single(logs, r => r.Id.Id == 20 && r.GetStructuredStateValue("Version") == "2");
            var rotated = Assert.Single(logs, r => r.GetStructuredStateValue("Event") == ConnectionEvents.KeyRotatedEvent && r.GetStructuredStateValue("NewVersion") == "2");
            Assert.True(published.Timestamp <= rotated.Timestamp);
            Assert.Equal(published.GetStructuredStateValue("PublicKey"), rotated.GetStructuredStateValue("PublicKey"));
            Assert.NotEqual(first, rotated.GetStructuredStateValue("PublicKey"));
            Assert.True(await gateway.MetricAsync("cloudvpn_key_rotations_total") >= 1);

            // publish: version 1 in force and 2 accepted too; switch: 2 in force, 1 still accepted; retire: 1 dropped
            var specs = gateway.Driver.Specs.ToList();
            var publish = specs.FindIndex(p => p.Device.PrivateKey.Version == 1 && p.Device.AdditionalPrivateKey?.Version == 2);
            var switched = specs.FindIndex(p => p.Device.PrivateKey.Version == 2 && p.Device.AdditionalPrivateKey?.Version == 1);
            Assert.True(publish > 0 && switched > publish, string.Join(" | ", specs.Select(p => $"{p.Device.PrivateKey.Version}+{p.Device.AdditionalPrivateKey?.Version}")));
            await Eventually.HoldsAsync(
                () => gateway.Driver.Specs.Skip(switched + 1).Any(p => p.Device.PrivateKey.Version == 2 && p.Device.AdditionalPrivateKey is null),
                "the retire to drop the old key");
        }
    }

    [Fact]
    public async Task Bad_rotation_settings_stop_the_host_at_start()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => InProcessGateway.StartAsync(_dir.Path, extraArgs: ["--CloudVpn:KeyRotation:Interval=00:01:00", "--CloudVpn:KeyRotation:Overlap=00:02:00"]));
        var errors = GatewayApp.SettingsErrors(e);
        Assert.NotNull(errors);
        Assert.Contains(errors, m => m.StartsWith("CloudVpn:KeyRotation:Overlap:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_rotation_on_a_bad_data_folder_is_still_a_settings_error()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => InProcessGateway.StartAsync("/proc/cloudvpn-gateway-test", extraArgs: ["--CloudVpn:KeyRotation:Interval=01:00:00"]));
        var errors = GatewayApp.SettingsErrors(e);
        Assert.NotNull(errors);
        Assert.Contains(errors, m => m.StartsWith("Gateway:DataDir (--data-dir): '/proc/cloudvpn-gateway-test'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_restart_keeps_the_public_key_and_the_peers()
    {
        string publicKey;
        var (gateway, _) = await InProcessGateway.StartAsync(_dir.Path);
        await using (gateway)
        {
            await Eventually.HoldsAsync(() => gateway.Driver.Specs.Count == 1, "the tunnel to open");
            publicKey = gateway.State.Key!.PublicKey;
            Assert.True(gateway.State.Key!.Created);
        }

        var peersBefore = await File.ReadAllTextAsync(Path.Combine(_dir.Path, "peers.json"));
        var (again, _) = await InProcessGateway.StartAsync(_dir.Path);
        await using (again)
        {
            await Eventually.HoldsAsync(() => again.Driver.Specs.Count == 1, "the tunnel to open again");
            Assert.Equal(publicKey, again.State.Key!.PublicKey);
            Assert.False(again.State.Key!.Created);
            Assert.Equal(1, again.Driver.Specs[0].Device.PrivateKey.Version);
            Assert.Equal(peersBefore, await File.ReadAllTextAsync(Path.Combine(_dir.Path, "peers.json")));
            Assert.DoesNotContain(GatewayConsole.ClientConfigBeginMarker, again.Console.ToString(), StringComparison.Ordinal);
        }

        Assert.True(again.Driver.Closed);
    }
}
