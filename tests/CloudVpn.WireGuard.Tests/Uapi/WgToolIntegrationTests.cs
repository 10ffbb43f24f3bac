using System.Diagnostics;
using System.Net;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Uapi;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Tests.Uapi;

/// <summary>
/// Drives a <see cref="UapiServer"/> with the real <c>wg</c> tool. The device behind the server is
/// <see cref="InMemoryUapiDevice"/>, a test model (no TUN, no engine): these tests check the configuration API, and
/// compare what <c>wg</c> prints for it with what it prints for a real wireguard-go device given the same commands.
/// </summary>
[Trait("Category", "Integration")]
public sealed class WgToolIntegrationTests : IAsyncLifetime
{
    private readonly string _interface = TestInterfaceNames.Next("cvu");
    private readonly string _files = Directory.CreateTempSubdirectory("cvwg").FullName;
    private readonly InMemoryUapiDevice _device = new();

    // `wg show` prints handshake ages against the real clock
    private readonly TimeProvider _clock = TimeProvider.System;
    private UapiServer? _server;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _device.Dispose();
        Directory.Delete(_files, recursive: true);
    }

    private void StartServer()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wg");
        _server = UapiServer.Start(_interface, _device, NullLogger.Instance);
    }

    private static string Wg(string arguments, string? stdin = null) => Cmd.Run("wg", arguments, stdin: stdin, timeoutMs: 15_000).Stdout;

    private string WriteFile(string name, string content)
    {
        var path = Path.Combine(_files, name);
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private static (WireGuardSecretKey Private, WireGuardPublicKey Public) NewKeyPair()
    {
        var key = WireGuardSecretKey.GeneratePrivateKey();
        return (key, key.GetPublicKey());
    }

    [Fact]
    public void Wg_set_configures_the_device_and_wg_show_prints_it()
    {
        StartServer();
        var (privateKey, publicKey) = NewKeyPair();
        var peerA = NewKeyPair().Public;
        var peerB = NewKeyPair().Public;
        using var psk = WireGuardSecretKey.GeneratePresharedKey();
        var keyFile = WriteFile("private", privateKey.ToBase64() + "\n");
        var pskFile = WriteFile("psk", psk.ToBase64() + "\n");

        Wg($"set {_interface} private-key {keyFile} listen-port 51999 fwmark 0x10");
        Wg($"set {_interface} peer {peerA} allowed-ips 10.0.0.1/24,fd00::/64 endpoint 192.0.2.5:51820 persistent-keepalive 25 preshared-key {pskFile}");
        Wg($"set {_interface} peer {peerB} endpoint [2001:db8::1]:1234 allowed-ips 10.0.1.0/25");

        Assert.True(privateKey.Equals(_device.Get().PrivateKey));
        Assert.Equal((ushort)51999, _device.ListenPort);
        Assert.Equal(0x10u, _device.FirewallMark);
        Assert.Equal([peerA, peerB], _device.Peers.Select(p => p.PublicKey));
        var a = _device.Peer(peerA)!;
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24"), IPNetwork.Parse("fd00::/64")], a.AllowedIps);
        Assert.Equal(IPEndPoint.Parse("192.0.2.5:51820"), a.Endpoint);
        Assert.Equal((ushort)25, a.PersistentKeepaliveInterval);
        Assert.True(psk.Equals(a.PresharedKey));
        var b = _device.Peer(peerB)!;
        Assert.Equal(IPEndPoint.Parse("[2001:db8::1]:1234"), b.Endpoint);
        Assert.Null(b.PresharedKey);

        Assert.Equal(
            $"""
            interface: {_interface}
              public key: {publicKey}
              private key: (hidden)
              listening port: 51999
              fwmark: 0x10

            peer: {peerA}
              preshared key: (hidden)
              endpoint: 192.0.2.5:51820
              allowed ips: 10.0.0.0/24, fd00::/64
              persistent keepalive: every 25 seconds

            peer: {peerB}
              endpoint: [2001:db8::1]:1234
              allowed ips: 10.0.1.0/25

            """,
            Wg($"show {_interface}"));

        Assert.Equal(
            $"""
            [Interface]
            ListenPort = 51999
            FwMark = 0x10
            PrivateKey = {privateKey.ToBase64()}

            [Peer]
            PublicKey = {peerA}
            PresharedKey = {psk.ToBase64()}
            AllowedIPs = 10.0.0.0/24, fd00::/64
            Endpoint = 192.0.2.5:51820
            PersistentKeepalive = 25

            [Peer]
            PublicKey = {peerB}
            AllowedIPs = 10.0.1.0/25
            Endpoint = [2001:db8::1]:1234

            """,
            Wg($"showconf {_interface}"));

        Assert.Contains(_interface, Wg("show interfaces").Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"{peerA}\n{peerB}\n", Wg($"show {_interface} peers"));
    }

    [Fact]
    public void Wg_set_changes_and_removes_peers_and_moves_a_prefix()
    {
        StartServer();
        var peerA = NewKeyPair().Public;
        var peerB = NewKeyPair().Public;
        Wg($"set {_interface} peer {peerA} allowed-ips 10.0.0.0/24,10.9.0.0/16 peer {peerB} allowed-ips 10.1.0.0/24");

        // Assigning a prefix to B takes it away from A; allowed-ips replaces B's list.
        Wg($"set {_interface} peer {peerB} allowed-ips 10.9.0.0/16,10.2.0.0/24 endpoint 198.51.100.1:4000");
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24")], _device.Peer(peerA)!.AllowedIps);
        Assert.Equal([IPNetwork.Parse("10.9.0.0/16"), IPNetwork.Parse("10.2.0.0/24")], _device.Peer(peerB)!.AllowedIps);

        // Only the endpoint: allowed IPs are kept.
        Wg($"set {_interface} peer {peerA} endpoint 198.51.100.2:4001");
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24")], _device.Peer(peerA)!.AllowedIps);
        Assert.Equal(IPEndPoint.Parse("198.51.100.2:4001"), _device.Peer(peerA)!.Endpoint);

        Wg($"set {_interface} peer {peerA} remove");
        Assert.Equal([peerB], _device.Peers.Select(p => p.PublicKey));
        Assert.Equal($"{peerB}\t10.9.0.0/16 10.2.0.0/24\n", Wg($"show {_interface} allowed-ips"));

        // Empty allowed-ips clears them; keepalive off.
        Wg($"set {_interface} peer {peerB} allowed-ips \"\" persistent-keepalive off");
        Assert.Empty(_device.Peer(peerB)!.AllowedIps);
        Assert.Equal((ushort)0, _device.Peer(peerB)!.PersistentKeepaliveInterval);
    }

    [Fact]
    public void Wg_show_prints_handshake_and_transfer_from_the_device()
    {
        StartServer();
        var peer = NewKeyPair().Public;
        Wg($"set {_interface} peer {peer} allowed-ips 10.0.0.2/32");
        var handshake = _clock.GetUtcNow().AddSeconds(-5);
        _device.RecordTraffic(peer, handshake, received: 2048, transmitted: 3 * 1024 * 1024);

        var show = Wg($"show {_interface}");
        Assert.Matches(@"latest handshake: [4-9] seconds ago", show);
        Assert.Contains("transfer: 2.00 KiB received, 3.00 MiB sent", show, StringComparison.Ordinal);
        var dump = Wg($"show {_interface} dump").Split('\n')[1].Split('\t');
        Assert.Equal(peer.ToString(), dump[0]);
        Assert.Equal(handshake.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), dump[4]);
        Assert.Equal("2048", dump[5]);
        Assert.Equal("3145728", dump[6]);
        Assert.Equal($"{peer}\t{handshake.ToUnixTimeSeconds()}\n", Wg($"show {_interface} latest-handshakes"));
    }

    [Fact]
    public void Wg_syncconf_makes_the_device_match_a_plain_wg_config()
    {
        StartServer();
        var (privateKey, _) = NewKeyPair();
        var keep = NewKeyPair().Public;
        var drop = NewKeyPair().Public;
        var add = NewKeyPair().Public;
        Wg($"set {_interface} listen-port 40000 peer {keep} allowed-ips 10.0.0.0/24,10.5.0.0/16 endpoint 192.0.2.9:1 peer {drop} allowed-ips 10.1.0.0/24");
        _device.RecordTraffic(keep, _clock.GetUtcNow(), 10, 20);

        var config = WriteFile("sync.conf", $"""
            [Interface]
            PrivateKey = {privateKey.ToBase64()}
            ListenPort = 40001

            [Peer]
            PublicKey = {keep}
            AllowedIPs = 10.0.0.0/24

            [Peer]
            PublicKey = {add}
            AllowedIPs = 10.2.0.0/24, fd00:2::/64
            Endpoint = [2001:db8::2]:51820
            PersistentKeepalive = 15
            """);
        Wg($"syncconf {_interface} {config}");

        Assert.True(privateKey.Equals(_device.Get().PrivateKey));
        Assert.Equal((ushort)40001, _device.ListenPort);
        Assert.Equal([keep, add], _device.Peers.Select(p => p.PublicKey));
        var kept = _device.Peer(keep)!;
        Assert.Equal([IPNetwork.Parse("10.0.0.0/24")], kept.AllowedIps);
        Assert.Equal(IPEndPoint.Parse("192.0.2.9:1"), kept.Endpoint); // syncconf leaves what the file does not name
        Assert.Equal(10ul, kept.ReceivedBytes); // ... and the peer was not re-created
        var added = _device.Peer(add)!;
        Assert.Equal([IPNetwork.Parse("10.2.0.0/24"), IPNetwork.Parse("fd00:2::/64")], added.AllowedIps);
        Assert.Equal(IPEndPoint.Parse("[2001:db8::2]:51820"), added.Endpoint);
        Assert.Equal((ushort)15, added.PersistentKeepaliveInterval);

        // setconf replaces everything, the endpoint of the kept peer too.
        Wg($"setconf {_interface} {config}");
        Assert.Null(_device.Peer(keep)!.Endpoint);
        Assert.Equal(0ul, _device.Peer(keep)!.ReceivedBytes);
    }

    [Fact]
    public void A_refusal_by_the_device_reaches_wg_as_its_errno()
    {
        StartServer();
        _device.FailNextSet = new UapiException(UapiErrno.AddressInUse, "port taken");
        var (exit, _, stderr) = Cmd.Run("wg", $"set {_interface} listen-port 51820", check: false);
        Assert.NotEqual(0, exit);
        Assert.Contains("Address already in use", stderr, StringComparison.Ordinal);
        Assert.Equal((ushort)0, _device.ListenPort);
    }

    [Fact]
    public async Task Removing_the_socket_file_is_noticed()
    {
        StartServer();
        Wg($"show {_interface}");
        File.Delete(_server!.SocketPath);
        var finished = await Task.WhenAny(_server.SocketRemoved, Task.Delay(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Same(_server.SocketRemoved, finished);
        var (exit, _, _) = Cmd.Run("wg", $"show {_interface}", check: false);
        Assert.NotEqual(0, exit);
    }
}
