using System.Net;
using System.Net.Sockets;
using System.Text;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Uapi;
using Microsoft.Extensions.Logging.Abstractions;

namespace CloudVpn.WireGuard.Tests.Uapi;

public sealed class UapiServerTests : IDisposable
{
    private const string PeerAHex = "b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33";
    private const string PeerBHex = "58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376";

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "cvuapi-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly InMemoryUapiDevice _device = new();

    public void Dispose()
    {
        _device.Dispose();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private UapiServer Start(string name = "wgtest0") => UapiServer.Start(name, _device, NullLogger.Instance, _directory);

    private static async Task<Socket> ConnectRawAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), TestContext.Current.CancellationToken);
        return socket;
    }

    private static async Task<string> ExchangeAsync(Socket socket, string request)
    {
        await socket.SendAsync(Encoding.UTF8.GetBytes(request), TestContext.Current.CancellationToken);
        return await ReadAnswerAsync(socket);
    }

    private static async Task<string> ReadAnswerAsync(Socket socket)
    {
        var answer = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        while (!answer.ToString().EndsWith("\n\n", StringComparison.Ordinal))
        {
            var read = await socket.ReceiveAsync(buffer, timeout.Token);
            if (read == 0)
            {
                break;
            }

            answer.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        return answer.ToString();
    }

    [Fact]
    public async Task Creates_directory_0755_and_socket_0600_and_removes_the_socket_on_dispose()
    {
        var server = Start();
        Assert.Equal(Path.Combine(_directory, "wgtest0.sock"), server.SocketPath);
        Assert.Equal(
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute,
            File.GetUnixFileMode(_directory));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(server.SocketPath));
        Assert.True(new FileInfo(server.SocketPath).Attributes.HasFlag(FileAttributes.System) || File.Exists(server.SocketPath));

        await server.DisposeAsync();
        Assert.False(File.Exists(server.SocketPath));
        Assert.True(server.SocketRemoved.IsCanceled);
    }

    [Fact]
    public async Task Answers_get_and_set_in_wire_format_several_requests_on_one_connection()
    {
        await using var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);

        Assert.Equal("errno=0\n\n", await ExchangeAsync(socket, "get=1\n\n"));
        Assert.Equal("errno=0\n\n", await ExchangeAsync(socket, $"set=1\nlisten_port=51820\npublic_key={PeerAHex}\nendpoint=192.0.2.1:51820\nallowed_ip=10.0.0.5/24\n\n"));
        Assert.Equal(
            $"listen_port=51820\npublic_key={PeerAHex}\npreshared_key={new string('0', 64)}\nprotocol_version=1\nendpoint=192.0.2.1:51820\n"
            + "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=10.0.0.0/24\nerrno=0\n\n",
            await ExchangeAsync(socket, "get=1\n\n"));
        Assert.Equal(1, _device.SetCount);
        Assert.Equal(2, _device.GetCount);
    }

    [Fact]
    public async Task Two_requests_in_one_write_get_two_answers()
    {
        await using var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);
        await socket.SendAsync("set=1\nfwmark=9\n\nget=1\n\n"u8.ToArray(), TestContext.Current.CancellationToken);
        var answers = await ReadAnswerAsync(socket);
        if (answers == "errno=0\n\n")
        {
            answers += await ReadAnswerAsync(socket);
        }

        Assert.Equal("errno=0\n\nfwmark=9\nerrno=0\n\n", answers);
    }

    [Fact]
    public async Task A_refused_set_answers_errno_applies_nothing_and_keeps_the_connection()
    {
        await using var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);
        Assert.Equal("errno=-22\n\n", await ExchangeAsync(socket, $"set=1\nlisten_port=1\npublic_key={PeerAHex}\nallowed_ip=10.0.0.0/8\nbogus=1\n\n"));
        Assert.Equal("errno=-71\n\n", await ExchangeAsync(socket, "set=1\nno equals sign\n\n"));
        Assert.Equal(0, _device.SetCount);
        Assert.Empty(_device.Peers);
        Assert.Equal((ushort)0, _device.ListenPort);
        Assert.Equal("errno=0\n\n", await ExchangeAsync(socket, "set=1\nlisten_port=2\n\n"));
        Assert.Equal((ushort)2, _device.ListenPort);
    }

    [Fact]
    public async Task A_device_failure_is_answered_with_its_errno_or_the_unknown_code()
    {
        await using var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);
        _device.FailNextSet = new UapiException(UapiErrno.AddressInUse, "port 51820 is taken");
        Assert.Equal("errno=-98\n\n", await ExchangeAsync(socket, "set=1\nlisten_port=51820\n\n"));
        _device.FailNextSet = new InvalidOperationException("boom");
        Assert.Equal("errno=-55\n\n", await ExchangeAsync(socket, "set=1\nlisten_port=51820\n\n"));
        Assert.Equal("errno=0\n\n", await ExchangeAsync(socket, "set=1\nlisten_port=51820\n\n"));
    }

    [Fact]
    public async Task Get_with_trailing_data_is_refused_and_the_connection_closed()
    {
        await using var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);
        Assert.Equal("errno=-22\n\n", await ExchangeAsync(socket, "get=1\nx\n"));
        Assert.Equal(string.Empty, await ReadAnswerAsync(socket));
    }

    [Fact]
    public async Task An_unknown_operation_closes_the_connection_without_answer()
    {
        await using var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);
        Assert.Equal(string.Empty, await ExchangeAsync(socket, "get=2\n\n"));
        Assert.Equal(0, _device.GetCount);
    }

    [Fact]
    public async Task An_overlong_line_closes_the_connection()
    {
        await using var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);
        string answer;
        try
        {
            answer = await ExchangeAsync(socket, "set=1\nallowed_ip=" + new string('1', 10_000) + "\n\n");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            answer = string.Empty; // closed with unread data: the kernel resets
        }

        Assert.Equal(string.Empty, answer);
        Assert.Equal(0, _device.SetCount);
    }

    [Fact]
    public async Task A_set_cut_off_before_its_blank_line_applies_nothing()
    {
        await using var server = Start();
        using (var socket = await ConnectRawAsync(server.SocketPath))
        {
            await socket.SendAsync("set=1\nlisten_port=7\n"u8.ToArray(), TestContext.Current.CancellationToken);
            socket.Shutdown(SocketShutdown.Send);
            Assert.Equal(string.Empty, await ReadAnswerAsync(socket));
        }

        Assert.Equal(0, _device.SetCount);
    }

    [Fact]
    public async Task Serves_many_connections_at_once_and_requests_do_not_interleave()
    {
        await using var server = Start();
        var keys = Enumerable.Range(0, 16).Select(i => { var b = new byte[32]; b[0] = (byte)(i + 1); return new WireGuardPublicKey(b); }).ToArray();
        var tasks = keys.Select(async (key, i) =>
        {
            await using var client = await UapiClient.ConnectToPathAsync(server.SocketPath, TestContext.Current.CancellationToken);
            for (var round = 0; round < 5; round++)
            {
                using var request = new UapiSetRequest
                {
                    Peers = [new UapiPeerUpdate { PublicKey = key, ReplaceAllowedIps = true, AllowedIps = [IPNetwork.Parse($"10.{i}.{round}.0/24")] }],
                };
                await client.SetAsync(request, TestContext.Current.CancellationToken);
                using var state = await client.GetAsync(TestContext.Current.CancellationToken);
                Assert.Equal([IPNetwork.Parse($"10.{i}.{round}.0/24")], state.Peers.Single(p => p.PublicKey == key).AllowedIps);
            }
        });
        await Task.WhenAll(tasks);
        Assert.Equal(16, _device.Peers.Count);
        Assert.Equal(80, _device.SetCount);
    }

    [Fact]
    public async Task Client_round_trip_with_psk_and_remove()
    {
        await using var server = Start();
        await using var client = await UapiClient.ConnectToPathAsync(server.SocketPath, TestContext.Current.CancellationToken);
        var privateKey = WireGuardSecretKey.GeneratePrivateKey();
        using (var request = new UapiSetRequest
        {
            PrivateKey = privateKey,
            ListenPort = 51000,
            Peers =
            [
                new UapiPeerUpdate { PublicKey = WireGuardPublicKey.FromHex(PeerAHex), PresharedKey = WireGuardSecretKey.GeneratePresharedKey(), PersistentKeepaliveInterval = 25 },
                new UapiPeerUpdate { PublicKey = WireGuardPublicKey.FromHex(PeerBHex), Endpoint = IPEndPoint.Parse("[2001:db8::2]:7") },
            ],
        })
        {
            await client.SetAsync(request, TestContext.Current.CancellationToken);
            using var state = await client.GetAsync(TestContext.Current.CancellationToken);
            Assert.True(privateKey.Equals(state.PrivateKey));
            Assert.Equal(2, state.Peers.Count);
            Assert.True(request.Peers[0].PresharedKey!.Equals(state.Peers[0].PresharedKey));
            Assert.Equal((ushort)25, state.Peers[0].PersistentKeepaliveInterval);
            Assert.Equal(IPEndPoint.Parse("[2001:db8::2]:7"), state.Peers[1].Endpoint);
        }

        using (var remove = new UapiSetRequest { Peers = [new UapiPeerUpdate { PublicKey = WireGuardPublicKey.FromHex(PeerAHex), Remove = true }] })
        {
            await client.SetAsync(remove, TestContext.Current.CancellationToken);
        }

        Assert.Equal([WireGuardPublicKey.FromHex(PeerBHex)], _device.Peers.Select(p => p.PublicKey));
        using var bad = new UapiSetRequest { ListenPort = 1 };
        _device.FailNextSet = new UapiException(UapiErrno.AddressInUse, "taken");
        var ex = await Assert.ThrowsAsync<UapiException>(() => client.SetAsync(bad, TestContext.Current.CancellationToken));
        Assert.Equal(UapiErrno.AddressInUse, ex.Errno);
    }

    [Fact]
    public async Task Deleting_the_socket_file_completes_SocketRemoved_and_stops_accepting()
    {
        await using var server = Start();
        Assert.False(server.SocketRemoved.IsCompleted);
        File.Delete(server.SocketPath);
        var finished = await Task.WhenAny(server.SocketRemoved, Task.Delay(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Same(server.SocketRemoved, finished);
        Assert.True(server.SocketRemoved.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Without_inotify_the_removal_is_found_by_polling()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var server = UapiServer.Start("wgtest0", _device, NullLogger.Instance, _directory, pollForRemoval: true, pollClock: clock);
        clock.Advance(TimeSpan.FromSeconds(2)); // two polls with the file in place
        Assert.False(server.SocketRemoved.IsCompleted);
        File.Delete(server.SocketPath);
        clock.Advance(TimeSpan.FromSeconds(1)); // the next poll finds it gone
        var finished = await Task.WhenAny(server.SocketRemoved, Task.Delay(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Same(server.SocketRemoved, finished);
    }

    [Fact]
    public async Task Renaming_the_socket_file_away_also_counts_as_removal()
    {
        await using var server = Start();
        File.Move(server.SocketPath, server.SocketPath + ".old");
        var finished = await Task.WhenAny(server.SocketRemoved, Task.Delay(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Same(server.SocketRemoved, finished);
    }

    [Fact]
    public async Task Another_interfaces_socket_going_away_is_not_our_removal()
    {
        await using var ours = Start("wgtest0");
        var other = Start("wgtest1");
        await other.DisposeAsync();
        await Task.Delay(300, TestContext.Current.CancellationToken);
        Assert.False(ours.SocketRemoved.IsCompleted);
    }

    [Fact]
    public async Task A_stale_socket_is_replaced_but_a_live_one_is_not_taken_over()
    {
        Directory.CreateDirectory(_directory);
        var path = Path.Combine(_directory, "wgtest0.sock");
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            // Bound, never listening: connections are refused. .NET unlinks the path it bound on dispose, so bind
            // elsewhere and move the socket file into place, as a crashed daemon would leave it.
            stale.Bind(new UnixDomainSocketEndPoint(path + ".tmp"));
            File.Move(path + ".tmp", path);
        }

        Assert.True(File.Exists(path));
        await using (var server = Start())
        {
            using var socket = await ConnectRawAsync(server.SocketPath);
            Assert.Equal("errno=0\n\n", await ExchangeAsync(socket, "get=1\n\n"));
            var ex = Assert.Throws<IOException>(() => Start());
            Assert.Contains("in use", ex.Message, StringComparison.Ordinal);
            Assert.True(File.Exists(path));
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("wg 0")]
    [InlineData("sixteen-chars-xx")]
    public void Invalid_interface_names_are_refused(string name)
    {
        var ex = Assert.Throws<ArgumentException>(() => UapiServer.Start(name, _device, NullLogger.Instance, _directory));
        Assert.Equal("interfaceName", ex.ParamName);
    }

    [Fact]
    public async Task Dispose_closes_idle_connections()
    {
        var server = Start();
        using var socket = await ConnectRawAsync(server.SocketPath);
        Assert.Equal("errno=0\n\n", await ExchangeAsync(socket, "get=1\n\n"));
        var dispose = server.DisposeAsync().AsTask();
        var finished = await Task.WhenAny(dispose, Task.Delay(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Same(dispose, finished);
        Assert.Equal(string.Empty, await ReadAnswerAsync(socket));
    }
}
