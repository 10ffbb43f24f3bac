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
            Assert.Contains(lab.Logs.GetSnapshot(), r => r.Message.StartsWith("openvpn: ", StringComparison.Ordinal) && r.Message.Contains("Initialization Sequence Completed", StringComparison.Ordinal));
            Assert.Equal(pid, tunnel.ProcessId);
        }
        finally
        {
            await tunnel.CloseAsync(TestContext.Current.CancellationToken);
        }

        Assert.False(Directory.Exists(runtime), "the runtime folder is removed on close");
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

    private static double RunIperf(OpenVpnLab lab, int seconds)
    {
        var server = Process.Start(new ProcessStartInfo("ip", $"netns exec {lab.Net.Left} iperf3 -s -1 -B 10.8.0.1 -p 5201") { RedirectStandardOutput = true, UseShellExecute = false })!;
        try
        {
            string output = string.Empty;
            for (var attempt = 0; attempt < 20; attempt++)
            {
                var run = NetnsPair.Exec(lab.Net.Right, $"iperf3 -c 10.8.0.1 -p 5201 -t {seconds.ToString(CultureInfo.InvariantCulture)} -J", check: false, timeoutMs: 30_000);
                if (run.ExitCode == 0)
                {
                    output = run.Stdout;
                    break;
                }

                Thread.Sleep(100); // the iperf3 server is not listening yet
            }

            using var json = JsonDocument.Parse(output);
            return json.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bits_per_second").GetDouble() / 1e6;
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill();
            }

            server.WaitForExit(5000);
            server.Dispose();
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
