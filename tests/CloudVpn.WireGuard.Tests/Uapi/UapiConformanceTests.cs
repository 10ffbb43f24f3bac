using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Uapi;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Tests.Uapi;

/// <summary>
/// Conformance with wireguard-go: the same <c>wg</c> commands and the same raw requests against one of our devices and
/// against a real wireguard-go device in a network namespace; what <c>wg</c> prints and what the sockets answer must
/// match. A subclass says how to start our device (any <see cref="IUapiDevice"/> behind a <see cref="UapiServer"/> on
/// <c>/var/run/wireguard/&lt;name&gt;.sock</c>), so the userspace device can run the same suite.
/// </summary>
[Trait("Category", "Integration")]
public abstract class UapiConformanceTests : IAsyncLifetime
{
    private readonly string _id = TestInterfaceNames.Next(string.Empty);
    private readonly string _files = Directory.CreateTempSubdirectory("cvwgc").FullName;
    private IAsyncDisposable? _ours;
    private Process? _wireguardGo;
    private string? _namespace;

    private string Ours => $"cvu{_id}";

    private string Theirs => $"cvg{_id}";

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_ours is not null)
        {
            await _ours.DisposeAsync();
        }

        if (_wireguardGo is not null)
        {
            // Removing its socket is how wireguard-go is asked to exit; kill it if it does not.
            File.Delete($"{UapiServer.DefaultSocketDirectory}/{Theirs}.sock");
            if (!_wireguardGo.WaitForExit(5000))
            {
                _wireguardGo.Kill(entireProcessTree: true);
                _wireguardGo.WaitForExit(5000);
            }

            _wireguardGo.Dispose();
        }

        if (_namespace is not null)
        {
            Cmd.Run("ip", $"netns del {_namespace}", check: false);
        }

        Directory.Delete(_files, recursive: true);
    }

    /// <summary>Starts our device under <paramref name="interfaceName"/>, serving the userspace API in the default directory.</summary>
    protected abstract IAsyncDisposable StartOurDevice(string interfaceName);

    private void StartBoth()
    {
        Prerequisite.RequireRoot();
        Prerequisite.RequireCommand("wg");
        Prerequisite.RequireCommand("wireguard-go");
        Prerequisite.RequireCommand("ip");
        Prerequisite.Require(File.Exists("/dev/net/tun"), "/dev/net/tun (wireguard-go creates a TUN device)");
        _ours = StartOurDevice(Ours);

        _namespace = $"cvgns{_id}";
        Cmd.Run("ip", $"netns add {_namespace}");
        var psi = new ProcessStartInfo("ip", $"netns exec {_namespace} wireguard-go -f {Theirs}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment["LOG_LEVEL"] = "error";
        _wireguardGo = Process.Start(psi)!;
        _wireguardGo.OutputDataReceived += (_, _) => { };
        _wireguardGo.ErrorDataReceived += (_, _) => { };
        _wireguardGo.BeginOutputReadLine();
        _wireguardGo.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (!File.Exists($"{UapiServer.DefaultSocketDirectory}/{Theirs}.sock"))
        {
            Assert.False(_wireguardGo.HasExited, "wireguard-go exited at start");
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(15), "wireguard-go did not create its socket");
            Thread.Sleep(50);
        }
    }

    private string WriteFile(string name, string content)
    {
        var path = Path.Combine(_files, name);
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private static string Wg(string arguments) => Cmd.Run("wg", arguments, timeoutMs: 15_000).Stdout;

    // Peer order is the device's (a hash map in wireguard-go): compare peer blocks as a sorted set.
    private static string[] ShowconfBlocks(string text) =>
        text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal).ToArray();

    // Handshake time and transfer (columns 5 to 7 of peer lines) depend on traffic wireguard-go may try to send.
    private static string[] DumpWithoutCounters(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('\t'))
            .Select(cols => cols.Length == 8 ? string.Join('\t', cols[..4].Append(cols[7])) : string.Join('\t', cols))
            .Order(StringComparer.Ordinal)
            .ToArray();

    [Fact]
    public void Wg_prints_the_same_for_our_device_and_for_wireguard_go_after_the_same_commands()
    {
        StartBoth();
        var privateKey = WireGuardSecretKey.GeneratePrivateKey();
        var a = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey();
        var b = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey();
        var c = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey();
        var d = WireGuardSecretKey.GeneratePrivateKey().GetPublicKey();
        using var psk = WireGuardSecretKey.GeneratePresharedKey();
        var keyFile = WriteFile("private", privateKey.ToBase64());
        var pskFile = WriteFile("psk", psk.ToBase64());
        var syncFile = WriteFile("sync.conf", $"""
            [Interface]
            PrivateKey = {privateKey.ToBase64()}
            ListenPort = 51998
            FwMark = 0x20

            [Peer]
            PublicKey = {a}
            AllowedIPs = 10.0.0.0/24, 10.7.0.0/16
            Endpoint = 192.0.2.5:51820

            [Peer]
            PublicKey = {d}
            PresharedKey = {psk.ToBase64()}
            AllowedIPs = fd00:4::/64
            Endpoint = [2001:db8::4]:4
            PersistentKeepalive = 42
            """);

        string[] script =
        [
            $"set IF private-key {keyFile} listen-port 51999 fwmark 0x10",
            $"set IF peer {a} allowed-ips 10.0.0.1/24,fd00::/64 endpoint 192.0.2.5:51820 persistent-keepalive 25 preshared-key {pskFile}",
            $"set IF peer {b} endpoint [2001:db8::1]:1234 allowed-ips 10.0.1.0/25,10.9.0.0/16",
            $"set IF peer {c} allowed-ips 10.9.0.0/16",
            $"set IF peer {a} persistent-keepalive off preshared-key /dev/null",
        ];
        string[] later =
        [
            $"set IF peer {b} remove",
            $"syncconf IF {syncFile}",
        ];

        foreach (var step in script)
        {
            Wg(step.Replace("IF", Ours, StringComparison.Ordinal));
            Wg(step.Replace("IF", Theirs, StringComparison.Ordinal));
        }

        Assert.Equal(ShowconfBlocks(Wg($"showconf {Theirs}")), ShowconfBlocks(Wg($"showconf {Ours}")));
        Assert.Equal(DumpWithoutCounters(Wg($"show {Theirs} dump")), DumpWithoutCounters(Wg($"show {Ours} dump")));

        foreach (var step in later)
        {
            Wg(step.Replace("IF", Ours, StringComparison.Ordinal));
            Wg(step.Replace("IF", Theirs, StringComparison.Ordinal));
        }

        var oursAfter = Wg($"showconf {Ours}");
        Assert.Equal(ShowconfBlocks(Wg($"showconf {Theirs}")), ShowconfBlocks(oursAfter));
        Assert.Equal(DumpWithoutCounters(Wg($"show {Theirs} dump")), DumpWithoutCounters(Wg($"show {Ours} dump")));
        Assert.Contains($"PublicKey = {d}", oursAfter, StringComparison.Ordinal);
        Assert.DoesNotContain(c.ToString(), oursAfter, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Raw_requests_get_the_same_answers_from_both()
    {
        StartBoth();
        const string Peer = "public_key=4142434445464748414243444546474841424344454647484142434445464748\n";
        string[] requests =
        [
            "get=1\n\n",
            "set=1\ngarbage\n\n",
            "set=1\nprivate_key=\n\n",
            "set=1\nprivate_key=0011\n\n",
            "set=1\nlisten_port=70000\n\n",
            "set=1\nfwmark=-1\n\n",
            "set=1\nreplace_peers=false\n\n",
            "set=1\nprotocol_version=1\n\n",
            "set=1\nPrivate_key=00\n\n",
            $"set=1\n{Peer}allowed_ip=10.0.0.1\n\n",
            $"set=1\n{Peer}allowed_ip=10.0.0.0/33\n\n",
            $"set=1\n{Peer}endpoint=192.0.2.1\n\n",
            $"set=1\n{Peer}endpoint=host.example:5\n\n",
            $"set=1\n{Peer}persistent_keepalive_interval=70000\n\n",
            $"set=1\n{Peer}update_only=false\n\n",
            $"set=1\n{Peer}remove=yes\n\n",
            $"set=1\n{Peer}listen_port=5\n\n",
            $"set=1\n{Peer}protocol_version=2\n\n",
            "set=1\npublic_key=zz\n\n",
            "set=1\nfwmark=7\n\n",
            $"set=1\n{Peer}endpoint=[2001:db8::9]:9\nallowed_ip=10.0.0.9/24\nprotocol_version=1\n\n",
            "set=1\npublic_key=5142434445464748414243444546474841424344454647484142434445464748\nupdate_only=true\nallowed_ip=10.1.0.0/16\n\n",
            "set=1\npublic_key=6142434445464748414243444546474841424344454647484142434445464748\nremove=true\n\n",
            "set=1\n\n",
            "get=1\n\n",
        ];

        using var ours = await ConnectAsync(Ours);
        using var theirs = await ConnectAsync(Theirs);
        foreach (var request in requests)
        {
            var expected = await ExchangeAsync(theirs, request);
            var actual = await ExchangeAsync(ours, request);

            // wireguard-go picks a random listen port (none was set); the rest must be identical.
            expected = string.Join('\n', expected.Split('\n').Where(l => !l.StartsWith("listen_port=", StringComparison.Ordinal)));
            Assert.Equal(expected, actual);
        }
    }

    private static async Task<Socket> ConnectAsync(string name)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint($"{UapiServer.DefaultSocketDirectory}/{name}.sock"), TestContext.Current.CancellationToken);
        return socket;
    }

    private static async Task<string> ExchangeAsync(Socket socket, string request)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), TestContext.Current.CancellationToken);
        var answer = new StringBuilder();
        var buffer = new byte[8192];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        while (!answer.ToString().EndsWith("\n\n", StringComparison.Ordinal))
        {
            var read = await socket.ReceiveAsync(buffer, timeout.Token);
            if (read == 0)
            {
                break;
            }

            answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return answer.ToString();
    }
}

/// <summary>The conformance suite over <see cref="InMemoryUapiDevice"/>, the test model of a device.</summary>
[Trait("Category", "Integration")]
public sealed class InMemoryDeviceConformanceTests : UapiConformanceTests
{
    protected override IAsyncDisposable StartOurDevice(string interfaceName) => new ModelDevice(interfaceName);

    private sealed class ModelDevice : IAsyncDisposable
    {
        private readonly InMemoryUapiDevice _device = new();
        private readonly UapiServer _server;

        public ModelDevice(string interfaceName)
        {
            _server = UapiServer.Start(interfaceName, _device, NullLogger.Instance);
        }

        public async ValueTask DisposeAsync()
        {
            await _server.DisposeAsync();
            _device.Dispose();
        }
    }
}
