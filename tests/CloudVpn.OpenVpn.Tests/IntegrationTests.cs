using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CloudVpn.OpenVpn.Configuration;
using CloudVpn.Testing;
using Microsoft.Extensions.Logging;

namespace CloudVpn.OpenVpn.Tests;

[Trait("Category", "Integration")]
public sealed class IntegrationTests
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Client_from_exported_profile_connects_pings_and_moves_bytes_that_status_counts()
    {
        await using var lab = new OpenVpnLab();
        var connected = new List<string>();
        var tunnel = await lab.Driver.OpenServerAsync(OpenVpnLab.Spec(peers: [("alice", "10.8.0.10"), ("bob", "10.8.0.11")]), TestContext.Current.CancellationToken);
        var runtime = tunnel.RuntimeDirectory;
        try
        {
            tunnel.ClientConnected += (_, e) => { lock (connected) { connected.Add(e.CommonName); } };

            // The runtime folder is private and the key files are 0600.
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(runtime));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(runtime, "server.key")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(runtime, "tls-crypt.key")));
            var pid = tunnel.ProcessId!.Value;

            using var alice = await lab.StartClientAsync(tunnel, "alice");
            await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.Saw("Initialization Sequence Completed")), Connect, "alice to connect");
            Assert.True(lab.Ping(lab.Net.Right, "10.8.0.1"), "ping from the client to the server's tunnel address");
            Assert.True(lab.Ping(lab.Net.Left, "10.8.0.10"), "ping from the server side to the client's static address");

            var before = (await tunnel.GetClientsAsync(TestContext.Current.CancellationToken)).Single(c => c.CommonName == "alice");
            var mbits = RunIperf(lab, seconds: 2);
            var after = (await tunnel.GetClientsAsync(TestContext.Current.CancellationToken)).Single(c => c.CommonName == "alice");
            TestContext.Current.SendDiagnosticMessage($"iperf3 through the driver's tunnel: {mbits:0} Mbit/s");
            Assert.True(mbits > 0);
            Assert.True(after.BytesReceived - before.BytesReceived > 1_000_000, $"server counted {after.BytesReceived - before.BytesReceived} bytes from alice during iperf3");
            Assert.Equal("10.8.0.10", after.VirtualAddress?.ToString());
            Assert.StartsWith(lab.Net.RightIp + ":", after.RealAddress, StringComparison.Ordinal);
            Assert.Contains(after.Cipher, OpenVpnServerPlan.AeadCiphers);

            var status = await tunnel.GetStatusAsync(TestContext.Current.CancellationToken);
            Assert.True(status.IsUp);
            Assert.Equal(("ovpn-it", "openvpn", 1194), (status.Name, status.DriverName, status.ListenPort));
            var peer = status.Peers.Single(p => p.PublicKey == "alice");
            Assert.True(peer.ReceivedBytes >= after.BytesReceived && peer.TransmittedBytes > 0);
            Assert.NotNull(peer.LastHandshake);
            Assert.InRange(peer.LastHandshake!.Value, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(5));
            var bob = status.Peers.Single(p => p.PublicKey == "bob");
            Assert.Equal((0L, 0L, null), (bob.ReceivedBytes, bob.TransmittedBytes, bob.LastHandshake));

            await OpenVpnLab.WaitForAsync(() => Task.FromResult(Snapshot(connected).Contains("alice")), TimeSpan.FromSeconds(5), "the connected event");

            // Signals go through the management interface: SIGUSR2 makes the server print its client list to the log.
            Assert.Contains("SIGUSR2", await tunnel.SignalAsync("SIGUSR2", TestContext.Current.CancellationToken), StringComparison.Ordinal);
            await OpenVpnLab.WaitForAsync(
                () => Task.FromResult(
                    lab.Logs.GetSnapshot().Any(r => r.Message.Contains("OpenVPN CLIENT LIST", StringComparison.Ordinal))
                    && lab.Logs.GetSnapshot().Any(r => r.Message.Contains("alice,", StringComparison.Ordinal) && r.Message.Contains(lab.Net.RightIp, StringComparison.Ordinal))),
                TimeSpan.FromSeconds(5),
                "the SIGUSR2 client list in the log");
            Assert.Contains(lab.Logs.GetSnapshot(), r => r.Message.StartsWith("openvpn: ", StringComparison.Ordinal) && r.Message.Contains("Initialization Sequence Completed", StringComparison.Ordinal));
            Assert.Equal(pid, tunnel.ProcessId);
        }
        finally
        {
            await tunnel.CloseAsync(TestContext.Current.CancellationToken);
        }

        Assert.False(Directory.Exists(runtime), "the runtime folder is removed on close");
        Assert.DoesNotContain(lab.Logs.GetSnapshot(), r => r.Message.Contains("PRIVATE KEY", StringComparison.Ordinal) || r.Message.Contains("Static key", StringComparison.Ordinal));
        Assert.Contains(lab.Logs.GetSnapshot(), r => r.Message.Contains("stopped cleanly", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Revoked_client_is_cut_off_and_its_reconnect_is_refused()
    {
        await using var lab = new OpenVpnLab();
        await using var tunnel = await lab.Driver.OpenServerAsync(OpenVpnLab.Spec(peers: [("alice", "10.8.0.10")]), TestContext.Current.CancellationToken);
        var disconnected = new List<string>();
        tunnel.ClientDisconnected += (_, e) => { lock (disconnected) { disconnected.Add(e.CommonName); } };
        using var alice = await lab.StartClientAsync(tunnel, "alice");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.Saw("Initialization Sequence Completed")), Connect, "alice to connect");
        await OpenVpnLab.WaitForAsync(async () => (await tunnel.GetClientsAsync()).Any(c => c.CommonName == "alice"), Connect, "alice in the server status");
        Assert.True(lab.Ping(lab.Net.Right, "10.8.0.1"));

        var serial = await tunnel.RevokePeerAsync("alice", TestContext.Current.CancellationToken);

        using var certificate = await tunnel.Pki.GetClientCertificateAsync("alice", TestContext.Current.CancellationToken);
        Assert.Equal(certificate.SerialNumber, serial);
        Assert.Contains(serial, PkiTests.ReadCrl(await File.ReadAllBytesAsync(Path.Combine(tunnel.RuntimeDirectory, "crl.pem"), TestContext.Current.CancellationToken)).RevokedSerialNumbers);

        // The client is told to stop (HALT) and its session ends.
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.HasExited), TimeSpan.FromSeconds(10), "the revoked client to halt");
        Assert.True(alice.Saw("Halt command was pushed by server"));
        await OpenVpnLab.WaitForAsync(async () => !(await tunnel.GetClientsAsync()).Any(c => c.CommonName == "alice"), TimeSpan.FromSeconds(10), "alice's session to end");

        // A new attempt with the same profile is refused on the CRL.
        using var again = await lab.StartClientAsync(tunnel, "alice");
        try
        {
            await OpenVpnLab.WaitForAsync(
                () => Task.FromResult(lab.Logs.GetSnapshot().Count(r => r.Message.Contains("certificate revoked", StringComparison.OrdinalIgnoreCase)) >= 2),
                Connect,
                "two refused reconnects in the server log");
        }
        catch (Xunit.Sdk.XunitException)
        {
            throw new Xunit.Sdk.XunitException("server:\n" + string.Join("\n", lab.Logs.GetSnapshot().Select(r => r.Message).TakeLast(40)) + "\nclient:\n" + string.Join("\n", again.Lines.TakeLast(30)));
        }

        Assert.False(again.Saw("Initialization Sequence Completed"));
        Assert.DoesNotContain(await tunnel.GetClientsAsync(TestContext.Current.CancellationToken), c => c.CommonName == "alice");
        Assert.False(lab.Ping(lab.Net.Right, "10.8.0.1", count: 2), "a revoked client must not reach the server");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(Snapshot(disconnected).Contains("alice")), TimeSpan.FromSeconds(5), "the disconnected event");
    }

    [Fact]
    public async Task A_revocation_written_to_the_key_store_by_another_replica_cuts_the_client_off_here()
    {
        await using var lab = new OpenVpnLab();
        await using var tunnel = await lab.Driver.OpenServerAsync(OpenVpnLab.Spec(peers: [("alice", "10.8.0.10")]), TestContext.Current.CancellationToken);
        using var alice = await lab.StartClientAsync(tunnel, "alice");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.Saw("Initialization Sequence Completed")), Connect, "alice to connect");

        // Another replica shares the key store: it revokes through its own PKI object, never touching this server.
        var otherReplica = new Pki.OpenVpnPki(lab.Store, "openvpn/gw1");
        var serial = await otherReplica.RevokeClientAsync("alice", cancellationToken: TestContext.Current.CancellationToken);

        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.HasExited), TimeSpan.FromSeconds(15), "this server to halt the revoked client");
        Assert.True(alice.Saw("Halt command was pushed by server"), string.Join("\n", alice.Lines.TakeLast(10)));
        Assert.Contains(serial, PkiTests.ReadCrl(await File.ReadAllBytesAsync(Path.Combine(tunnel.RuntimeDirectory, "crl.pem"), TestContext.Current.CancellationToken)).RevokedSerialNumbers);
    }

    [Fact]
    public async Task Killed_openvpn_is_restarted_by_the_supervisor_and_the_client_comes_back()
    {
        await using var lab = new OpenVpnLab();
        var settings = new Dictionary<string, string> { ["openvpn.keepalive"] = "1 4" };
        await using var tunnel = await lab.Driver.OpenServerAsync(OpenVpnLab.Spec(settings, ("alice", "10.8.0.10")), TestContext.Current.CancellationToken);
        using var alice = await lab.StartClientAsync(tunnel, "alice");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.Saw("Initialization Sequence Completed")), Connect, "alice to connect");
        var pid = tunnel.ProcessId!.Value;

        Cmd.Run("kill", $"-9 {pid}");

        await OpenVpnLab.WaitForAsync(() => Task.FromResult(tunnel.ProcessStarts == 2 && tunnel.ProcessId is { } p && p != pid), TimeSpan.FromSeconds(10), "a new openvpn process");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.CountOf("Initialization Sequence Completed") >= 2), TimeSpan.FromSeconds(30), "alice to reconnect after ping-restart");
        await OpenVpnLab.WaitForAsync(async () => (await tunnel.GetClientsAsync()).Any(c => c.CommonName == "alice"), Connect, "alice in the new server's status");
        Assert.True(lab.Ping(lab.Net.Right, "10.8.0.1"));
        Assert.True((await tunnel.GetStatusAsync(TestContext.Current.CancellationToken)).IsUp);
        Assert.Contains(lab.Logs.GetSnapshot(), r => r.Level == LogLevel.Warning && r.Message.Contains("openvpn exited with code", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Tcp_server_accepts_the_tcp_profile()
    {
        await using var lab = new OpenVpnLab();
        var settings = new Dictionary<string, string> { ["openvpn.proto"] = "tcp" };
        await using var tunnel = await lab.Driver.OpenServerAsync(OpenVpnLab.Spec(settings, ("alice", "10.8.0.10")), TestContext.Current.CancellationToken);
        using var alice = await lab.StartClientAsync(tunnel, "alice");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.Saw("Initialization Sequence Completed")), Connect, "alice to connect over TCP");
        Assert.True(lab.Ping(lab.Net.Right, "10.8.0.1"));
        Assert.Contains("[AF_INET]" + lab.Net.LeftIp + ":1194", string.Join("\n", alice.Lines.Where(l => l.Contains("TCP", StringComparison.Ordinal))), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_setting_openvpn_itself_refuses_fails_the_open_with_its_own_words()
    {
        await using var lab = new OpenVpnLab();
        // A server address outside anything the namespace owns: we cannot know that, openvpn finds out on bind.
        var settings = new Dictionary<string, string> { ["openvpn.local"] = "198.51.100.77" };
        var e = await Assert.ThrowsAsync<OpenVpnStartException>(async () => await lab.Driver.OpenServerAsync(OpenVpnLab.Spec(settings, ("alice", "10.8.0.10")), TestContext.Current.CancellationToken));
        Assert.Contains("exited while starting", e.Message, StringComparison.Ordinal);
        Assert.Contains(e.ProcessOutput, l => l.Contains("Cannot assign requested address", StringComparison.Ordinal) || l.Contains("bind", StringComparison.OrdinalIgnoreCase));
        Assert.Empty(Directory.GetDirectories(lab.Options.RuntimeDirectory));
    }

    [Fact]
    public async Task Apply_adds_and_removes_peers_without_a_restart_and_restarts_for_device_changes()
    {
        await using var lab = new OpenVpnLab();
        var spec = OpenVpnLab.Spec(peers: [("alice", "10.8.0.10")]);
        await using var tunnel = await lab.Driver.OpenServerAsync(spec, TestContext.Current.CancellationToken);
        Assert.True((await tunnel.ApplyAsync(spec, TestContext.Current.CancellationToken)).IsNoOp);

        // bob is not in the spec: the client-config folder has no file for him and the server turns him away.
        await Assert.ThrowsAsync<ArgumentException>(async () => await tunnel.ExportClientProfileAsync("bob", lab.Net.LeftIp, cancellationToken: TestContext.Current.CancellationToken));
        var bobProfile = await OpenVpnClientProfile.ExportAsync(tunnel.Pki, tunnel.Plan, "bob", lab.Net.LeftIp, cancellationToken: TestContext.Current.CancellationToken);
        using (var early = await lab.StartClientAsync(bobProfile, "bob"))
        {
            await OpenVpnLab.WaitForAsync(
                () => Task.FromResult(lab.Logs.GetSnapshot().Any(r => r.Message.Contains("client-config-dir", StringComparison.Ordinal) && r.Message.Contains("bob", StringComparison.Ordinal))),
                Connect,
                "the server to refuse bob (no client-config file)");
            Assert.False(early.Saw("Initialization Sequence Completed"));
        }

        var withBob = spec with { Peers = [.. spec.Peers, new Tunnels.PeerSpec("bob", [System.Net.IPNetwork.Parse("10.8.0.11/32")])] };
        var added = await tunnel.ApplyAsync(withBob, TestContext.Current.CancellationToken);
        Assert.False(added.DeviceChanged);
        Assert.Equal(["bob"], added.PeersAdded);
        using var bob = await lab.StartClientAsync(tunnel, "bob");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(bob.Saw("Initialization Sequence Completed")), Connect, "bob to connect after apply");
        Assert.True(lab.Ping(lab.Net.Left, "10.8.0.11"));
        Assert.Equal(1, tunnel.ProcessStarts);

        var removed = await tunnel.ApplyAsync(spec, TestContext.Current.CancellationToken);
        Assert.Equal(["bob"], removed.PeersRemoved);
        await OpenVpnLab.WaitForAsync(async () => !(await tunnel.GetClientsAsync()).Any(c => c.CommonName == "bob"), TimeSpan.FromSeconds(10), "bob's session to end");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(bob.HasExited), TimeSpan.FromSeconds(10), "the removed peer to be told to stop");
        Assert.Equal(1, tunnel.ProcessStarts);

        var routed = spec with { DriverSettings = new Dictionary<string, string>(spec.DriverSettings) { ["openvpn.push-routes"] = "10.96.0.0/12" } };
        var changed = await tunnel.ApplyAsync(routed, TestContext.Current.CancellationToken);
        Assert.True(changed.DeviceChanged);
        Assert.Equal(2, tunnel.ProcessStarts);
        Assert.True((await tunnel.GetStatusAsync(TestContext.Current.CancellationToken)).IsUp);
        Assert.Contains("push \"route 10.96.0.0 255.240.0.0\"", await File.ReadAllTextAsync(Path.Combine(tunnel.RuntimeDirectory, "server.conf"), TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Benchmark")]
    public async Task Throughput_through_the_driver_beside_a_hand_written_minimal_openvpn()
    {
        // Same binary, certificates, cipher (AES-256-GCM), tun MTU and server mode; both tunnels up at once and
        // measured in turns, so machine noise hits both alike. Reported, not asserted (2 shared cores).
        await using var lab = new OpenVpnLab();
        var settings = new Dictionary<string, string> { ["openvpn.data-ciphers"] = "AES-256-GCM" };
        var hand = Path.Combine(lab.Work, "hand");
        Directory.CreateDirectory(hand);
        await using var tunnel = await lab.Driver.OpenServerAsync(OpenVpnLab.Spec(settings, ("alice", "10.8.0.10")), TestContext.Current.CancellationToken);
        using var alice = await lab.StartClientAsync(tunnel, "alice");
        await OpenVpnLab.WaitForAsync(() => Task.FromResult(alice.Saw("Initialization Sequence Completed")), Connect, "alice to connect");
        Assert.Contains("AES-256-GCM", (await tunnel.GetClientsAsync(TestContext.Current.CancellationToken)).Single().Cipher, StringComparison.Ordinal);

        var pki = tunnel.Pki;
        using (var ca = await pki.GetCaCertificateAsync(TestContext.Current.CancellationToken))
        using (var server = await pki.GetServerCertificateAsync("gw1", TestContext.Current.CancellationToken))
        using (var client = await pki.GetClientCertificateAsync("alice", TestContext.Current.CancellationToken))
        {
            await File.WriteAllTextAsync(Path.Combine(hand, "ca.crt"), ca.ExportCertificatePem(), TestContext.Current.CancellationToken);
            await File.WriteAllTextAsync(Path.Combine(hand, "server.crt"), server.ExportCertificatePem(), TestContext.Current.CancellationToken);
            await File.WriteAllTextAsync(Path.Combine(hand, "client.crt"), client.ExportCertificatePem(), TestContext.Current.CancellationToken);
            await File.WriteAllBytesAsync(Path.Combine(hand, "server.key"), await pki.GetServerPrivateKeyPemAsync("gw1", TestContext.Current.CancellationToken), TestContext.Current.CancellationToken);
            await File.WriteAllBytesAsync(Path.Combine(hand, "client.key"), await pki.GetClientPrivateKeyPemAsync("alice", TestContext.Current.CancellationToken), TestContext.Current.CancellationToken);
        }

        // The hand-written pair: the minimal server/client configuration of the OpenVPN how-to, same cipher.
        var common = $"--dev tun --proto udp --port 1195 --tun-mtu 1420 --data-ciphers AES-256-GCM --ca {hand}/ca.crt --verb 3";
        var openvpn = Prerequisite.FindCommand("openvpn");
        using var handServer = Process.Start(new ProcessStartInfo("ip", $"netns exec {lab.Net.Left} {openvpn} {common} --server 10.9.0.0 255.255.255.0 --topology subnet --dh none --cert {hand}/server.crt --key {hand}/server.key") { RedirectStandardOutput = true, UseShellExecute = false })!;
        using var handClient = Process.Start(new ProcessStartInfo("ip", $"netns exec {lab.Net.Right} {openvpn} {common} --client --nobind --remote {lab.Net.LeftIp} --cert {hand}/client.crt --key {hand}/client.key") { RedirectStandardOutput = true, UseShellExecute = false })!;
        try
        {
            var clientOutput = new List<string>();
            handClient.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (clientOutput) { clientOutput.Add(e.Data); } } };
            handClient.BeginOutputReadLine();
            handServer.BeginOutputReadLine();
            await OpenVpnLab.WaitForAsync(() => Task.FromResult(Snapshot(clientOutput).Any(l => l.Contains("Initialization Sequence Completed", StringComparison.Ordinal))), Connect, "the hand-written pair to connect");
            Assert.Contains(Snapshot(clientOutput), l => l.Contains("Data Channel: cipher 'AES-256-GCM'", StringComparison.Ordinal));

            var driver = new List<double>();
            var handWritten = new List<double>();
            for (var round = 0; round < 2; round++)
            {
                driver.Add(RunIperf(lab, seconds: 3, server: "10.8.0.1"));
                handWritten.Add(RunIperf(lab, seconds: 3, server: "10.9.0.1"));
            }

            var report = FormattableString.Invariant(
                $"iperf3 through openvpn, 2 rounds of 3 s in turns: driver-started server {string.Join(" / ", driver.Select(m => m.ToString("0", CultureInfo.InvariantCulture)))} Mbit/s, hand-written minimal server {string.Join(" / ", handWritten.Select(m => m.ToString("0", CultureInfo.InvariantCulture)))} Mbit/s (best {driver.Max():0} vs {handWritten.Max():0})");
            TestContext.Current.SendDiagnosticMessage(report);
            TestContext.Current.TestOutputHelper?.WriteLine(report);
            Assert.All(driver.Concat(handWritten), m => Assert.True(m > 0));
        }
        finally
        {
            foreach (var p in new[] { handServer, handClient })
            {
                if (!p.HasExited)
                {
                    p.Kill();
                }

                p.WaitForExit(5000);
            }
        }
    }

    private static double RunIperf(OpenVpnLab lab, int seconds, string server = "10.8.0.1")
    {
        var address = server;
        var iperfServer = Process.Start(new ProcessStartInfo("ip", $"netns exec {lab.Net.Left} iperf3 -s -1 -B {address} -p 5201") { RedirectStandardOutput = true, UseShellExecute = false })!;
        try
        {
            string output = string.Empty;
            NetnsPair.WaitForTcpListener(lab.Net.Left, 5201);
            for (var attempt = 0; attempt < 20; attempt++)
            {
                var run = NetnsPair.Exec(lab.Net.Right, $"iperf3 -c {address} -p 5201 -t {seconds.ToString(CultureInfo.InvariantCulture)} -J", check: false, timeoutMs: 30_000);
                output = run.Stdout;
                if (run.ExitCode == 0 && !run.Stdout.Contains("\"error\"", StringComparison.Ordinal))
                {
                    output = run.Stdout;
                    break;
                }

                NetnsPair.WaitForTcpListener(lab.Net.Left, 5201, timeoutMs: 2_000); // the iperf3 server was not listening yet
            }

            using var json = JsonDocument.Parse(output.Length == 0 ? "{}" : output);
            if (!json.RootElement.TryGetProperty("end", out var end) || !end.TryGetProperty("sum_received", out _))
            {
                throw new Xunit.Sdk.XunitException($"iperf3 to {address} gave no result: {output}");
            }

            return json.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bits_per_second").GetDouble() / 1e6;
        }
        finally
        {
            if (!iperfServer.HasExited)
            {
                iperfServer.Kill();
            }

            iperfServer.WaitForExit(5000);
            iperfServer.Dispose();
        }
    }

    private static List<string> Snapshot(List<string> list)
    {
        lock (list)
        {
            return [.. list];
        }
    }
}
