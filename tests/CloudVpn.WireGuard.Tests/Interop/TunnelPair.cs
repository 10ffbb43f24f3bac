using System.Globalization;
using CloudVpn.Testing;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>
/// Two userspace WireGuard daemons, one per namespace of a <see cref="NetnsPair"/>, configured with <c>wg set</c> and
/// <c>ip</c> as a point-to-point tunnel: left 10.60.0.1 (underlay 192.0.2.1:51820), right 10.60.0.2 (192.0.2.2:51820).
/// </summary>
internal sealed class TunnelPair : IDisposable
{
    public const string LeftTunnelIp = "10.60.0.1";
    public const string RightTunnelIp = "10.60.0.2";
    public const string LeftTunnelIp6 = "fd60::1";
    public const string RightTunnelIp6 = "fd60::2";

    private readonly string _dir;

    public TunnelPair(Implementation left, Implementation right, bool presharedKey = false, bool rightKnowsLeftEndpoint = true, bool ipv6Underlay = false, IReadOnlyDictionary<string, string>? leftEnvironment = null)
    {
        WireGuardProcess.RequirePrerequisites(left);
        WireGuardProcess.RequirePrerequisites(right);
        Net = ipv6Underlay ? new NetnsPair("wi", "2001:db8::1/64", "2001:db8::2/64") : new NetnsPair("wi");
        if (ipv6Underlay)
        {
            WaitForIpv6(Net.Left);
            WaitForIpv6(Net.Right);
        }

        _dir = Directory.CreateTempSubdirectory("cloudvpn-interop").FullName;
        try
        {
            Left = WireGuardProcess.Start(left, Net.Left, environment: leftEnvironment);
            Right = WireGuardProcess.Start(right, Net.Right);
            LeftKey = WriteKey("left.key", Cmd.Run("wg", "genkey").Stdout.Trim());
            RightKey = WriteKey("right.key", Cmd.Run("wg", "genkey").Stdout.Trim());
            LeftPublic = Cmd.Run("wg", "pubkey", stdin: File.ReadAllText(LeftKey)).Stdout.Trim();
            RightPublic = Cmd.Run("wg", "pubkey", stdin: File.ReadAllText(RightKey)).Stdout.Trim();
            var psk = presharedKey ? $" preshared-key {WriteKey("psk", Cmd.Run("wg", "genpsk").Stdout.Trim())}" : string.Empty;
            Left.Wg($"set {Left.Name} private-key {LeftKey} listen-port 51820 peer {RightPublic}{psk} endpoint {Endpoint(Net.RightIp)} allowed-ips {RightTunnelIp}/32,{RightTunnelIp6}/128");
            Right.Wg($"set {Right.Name} private-key {RightKey} listen-port 51820 peer {LeftPublic}{psk}"
                + (rightKnowsLeftEndpoint ? $" endpoint {Endpoint(Net.LeftIp)}" : string.Empty) + $" allowed-ips {LeftTunnelIp}/32,{LeftTunnelIp6}/128");
            Left.Ip($"addr add {LeftTunnelIp}/24 dev {Left.Name}");
            Left.Ip($"-6 addr add {LeftTunnelIp6}/64 dev {Left.Name} nodad");
            Left.Ip($"link set {Left.Name} up");
            Right.Ip($"addr add {RightTunnelIp}/24 dev {Right.Name}");
            Right.Ip($"-6 addr add {RightTunnelIp6}/64 dev {Right.Name} nodad");
            Right.Ip($"link set {Right.Name} up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public NetnsPair Net { get; }

    public WireGuardProcess Left { get; private set; } = null!;

    public WireGuardProcess Right { get; private set; } = null!;

    public string LeftKey { get; private set; } = string.Empty;

    public string RightKey { get; private set; } = string.Empty;

    public string LeftPublic { get; private set; } = string.Empty;

    public string RightPublic { get; private set; } = string.Empty;

    /// <summary>Pings from the left namespace to <paramref name="target"/>; returns (exit code, output).</summary>
    public static (int Exit, string Output) Ping(string netns, string target, int count = 3, string extra = "")
    {
        var (exit, stdout, stderr) = NetnsPair.Exec(netns, $"ping -c {count} -i 0.2 -W 3 {extra} {target}", check: false, timeoutMs: 60_000);
        return (exit, stdout + stderr);
    }

    /// <summary>
    /// Runs an iperf3 TCP transfer of <paramref name="seconds"/> from <paramref name="clientNs"/> to the server in
    /// <paramref name="serverNs"/> at <paramref name="serverIp"/>; returns the received bits per second.
    /// </summary>
    public static double Iperf(string clientNs, string serverNs, string serverIp, int seconds = 2)
    {
        Prerequisite.RequireCommand("iperf3");
        var port = 5201 + Random.Shared.Next(0, 500);
        var server = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip", $"netns exec {serverNs} iperf3 -s -1 -p {port}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        try
        {
            // the server may need a moment to listen on a loaded machine: retry a refused connection a few times
            var (exit, json, stderr) = (0, string.Empty, string.Empty);
            for (var attempt = 0; attempt < 10; attempt++)
            {
                NetnsPair.WaitForTcpListener(serverNs, port, timeoutMs: attempt == 0 ? 10_000 : 2_000);
                (exit, json, stderr) = NetnsPair.Exec(clientNs, $"iperf3 -c {serverIp} -p {port} -t {seconds} -J", check: false, timeoutMs: (seconds + 30) * 1000);
                if (exit == 0 || !json.Contains("unable to connect", StringComparison.OrdinalIgnoreCase))
                {
                    break;
                }
            }

            Assert.True(exit == 0, $"iperf3 to {serverIp} failed: {json}{stderr}");
            using var doc = System.Text.Json.JsonDocument.Parse(json);
            return doc.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bits_per_second").GetDouble();
        }
        finally
        {
            if (!server.WaitForExit(5000))
            {
                server.Kill();
            }

            server.Dispose();
        }
    }

    /// <summary>The latest handshake (unix seconds) of the only peer of <paramref name="wg"/>; 0 for none.</summary>
    public static long LatestHandshake(WireGuardProcess wg)
    {
        var line = wg.Wg($"show {wg.Name} latest-handshakes").Trim();
        return line.Length == 0 ? 0 : long.Parse(line.Split('\t')[1], CultureInfo.InvariantCulture);
    }

    /// <summary>(rx, tx) bytes of the peer <paramref name="publicKey"/> of <paramref name="wg"/>.</summary>
    public static (long Rx, long Tx) Transfer(WireGuardProcess wg, string publicKey)
    {
        foreach (var line in wg.Wg($"show {wg.Name} transfer").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split('\t');
            if (parts[0] == publicKey)
            {
                return (long.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture));
            }
        }

        throw new InvalidOperationException($"peer {publicKey} not on {wg.Name}");
    }

    /// <summary><c>ip:51820</c>, bracketed for IPv6.</summary>
    public static string Endpoint(string ip) => ip.Contains(':', StringComparison.Ordinal) ? $"[{ip}]:51820" : $"{ip}:51820";

    private static void WaitForIpv6(string netns)
    {
        // duplicate address detection keeps a new IPv6 address "tentative" (unusable) for a second or two
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (NetnsPair.Exec(netns, "ip -6 addr show dev veth0 tentative").Stdout.Trim().Length > 0 && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(100);
        }
    }

    public string WriteKey(string file, string key)
    {
        var path = Path.Combine(_dir, file);
        File.WriteAllText(path, key + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    public void Dispose()
    {
        Left?.Dispose();
        Right?.Dispose();
        Net?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
