using System.Net;
using System.Net.Sockets;
using System.Text;
using CloudVpn.OpenVpn.Management;

namespace CloudVpn.OpenVpn.Tests;

public sealed class ManagementTests : IDisposable
{
    // As OpenVPN 2.6 prints it (tab-separated, status-version 3), trimmed to two clients.
    internal const string Status3 =
        "TITLE\tOpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]\n" +
        "TIME\t2026-11-25 15:00:00\t1795100400\n" +
        "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher\n" +
        "CLIENT_LIST\talice\t192.0.2.2:41234\t10.8.0.10\t\t12345\t67890\t2026-11-25 14:59:00\t1795100340\tUNDEF\t0\t0\tAES-256-GCM\n" +
        "CLIENT_LIST\tbob\t192.0.2.3:50000\t10.8.0.11\t\t5\t6\t2026-11-25 14:58:00\t1795100280\tUNDEF\t1\t1\tCHACHA20-POLY1305\n" +
        "HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)\n" +
        "ROUTING_TABLE\t10.8.0.10\talice\t192.0.2.2:41234\t2026-11-25 14:59:59\t1795100399\n" +
        "GLOBAL_STATS\tMax bcast/mcast queue length\t0\n" +
        "GLOBAL_STATS\tdco_enabled\t0\n";

    private readonly string _socketPath = Path.Combine(Path.GetTempPath(), $"cvmgmt-{Guid.NewGuid():N}.sock");

    public void Dispose() => File.Delete(_socketPath);

    [Fact]
    public void Status_3_rows_map_to_clients_by_header_names()
    {
        var clients = OpenVpnStatusParser.ParseClients(Status3.Split('\n'));
        Assert.Equal(2, clients.Count);
        var alice = clients[0];
        Assert.Equal("alice", alice.CommonName);
        Assert.Equal("192.0.2.2:41234", alice.RealAddress);
        Assert.Equal(IPAddress.Parse("10.8.0.10"), alice.VirtualAddress);
        Assert.Equal(12345, alice.BytesReceived);
        Assert.Equal(67890, alice.BytesSent);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1795100340), alice.ConnectedSince);
        Assert.Equal(0, alice.ClientId);
        Assert.Equal("AES-256-GCM", alice.Cipher);
        Assert.Equal(1, clients[1].ClientId);
    }

    [Fact]
    public void Status_columns_are_found_by_name_not_position()
    {
        var lines = new[]
        {
            "HEADER\tCLIENT_LIST\tBytes Sent\tCommon Name\tBytes Received",
            "CLIENT_LIST\t7\tcarol\t9",
        };
        var carol = Assert.Single(OpenVpnStatusParser.ParseClients(lines));
        Assert.Equal(("carol", 9L, 7L), (carol.CommonName, carol.BytesReceived, carol.BytesSent));

        var e = Assert.Throws<FormatException>(() => OpenVpnStatusParser.ParseClients(["HEADER\tCLIENT_LIST\tCommon Name\tBytes Sent", "CLIENT_LIST\tcarol\tmany"]));
        Assert.Contains("'Bytes Sent' of client 'carol'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Client_sends_commands_reads_multi_line_answers_errors_and_interleaved_notifications()
    {
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(_socketPath));
        listener.Listen(1);
        var received = new List<string>();
        var server = Task.Run(async () =>
        {
            using var connection = await listener.AcceptAsync();
            using var stream = new NetworkStream(connection);
            using var reader = new StreamReader(stream);
            await using var writer = new StreamWriter(stream) { AutoFlush = true, NewLine = "\n" };
            await writer.WriteLineAsync(">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info");
            while (await reader.ReadLineAsync() is { } command)
            {
                received.Add(command);
                switch (command)
                {
                    case "status 3":
                        var lines = Status3.TrimEnd('\n').Split('\n');
                        await writer.WriteLineAsync(lines[0]);
                        await writer.WriteLineAsync(">CLIENT:ESTABLISHED,0"); // a notification in the middle of an answer
                        foreach (var line in lines[1..])
                        {
                            await writer.WriteLineAsync(line);
                        }

                        await writer.WriteLineAsync("END");
                        break;
                    case "client-kill 0 HALT":
                        await writer.WriteLineAsync("SUCCESS: client-kill command succeeded");
                        break;
                    case "signal SIGUSR1":
                        await writer.WriteLineAsync("SUCCESS: signal SIGUSR1 thrown");
                        break;
                    case "state":
                        await writer.WriteLineAsync("1795100400,CONNECTED,SUCCESS,10.8.0.1,,,,");
                        await writer.WriteLineAsync("END");
                        break;
                    default:
                        await writer.WriteLineAsync("ERROR: unknown command, enter 'help' for more options");
                        break;
                }
            }
        });

        await using var client = await OpenVpnManagementClient.ConnectAsync(_socketPath);
        var notifications = new List<string>();
        client.Notification += n => { lock (notifications) { notifications.Add(n); } };

        var clients = await client.GetClientsAsync();
        Assert.Equal(["alice", "bob"], clients.Select(c => c.CommonName));
        Assert.Equal(1, await client.KillClientAsync("alice", "HALT"));
        Assert.Equal(0, await client.KillClientAsync("nobody"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.KillClientAsync("alice", "EXPLODE"));
        Assert.Equal("signal SIGUSR1 thrown", await client.SignalAsync("SIGUSR1"));
        Assert.Equal("1795100400,CONNECTED,SUCCESS,10.8.0.1,,,,", await client.GetStateAsync());
        var e = await Assert.ThrowsAsync<OpenVpnManagementException>(() => client.CommandAsync("bogus"));
        Assert.Contains("unknown command", e.Reason, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => { _ = client.SignalAsync("SIGKILL"); });
        await Assert.ThrowsAsync<ArgumentException>(() => client.CommandAsync("kill x\nsignal SIGTERM"));

        lock (notifications)
        {
            Assert.Contains("CLIENT:ESTABLISHED,0", notifications);
            Assert.Contains(notifications, n => n.StartsWith("INFO:", StringComparison.Ordinal));
        }

        Assert.Equal(["status 3", "status 3", "client-kill 0 HALT", "status 3", "signal SIGUSR1", "state", "bogus"], received);
    }

    [Fact]
    public async Task A_closed_connection_fails_the_pending_command_instead_of_hanging()
    {
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(_socketPath));
        listener.Listen(1);
        var server = Task.Run(async () =>
        {
            using var connection = await listener.AcceptAsync();
            var buffer = new byte[64];
            _ = await connection.ReceiveAsync(buffer);
            connection.Shutdown(SocketShutdown.Both);
        });

        await using var client = await OpenVpnManagementClient.ConnectAsync(_socketPath);
        await Assert.ThrowsAsync<IOException>(() => client.GetClientsAsync().WaitAsync(TimeSpan.FromSeconds(10)));
        await server;
        Assert.False(client.IsConnected);
    }
}
