using System.Text.RegularExpressions;
using CloudVpn.Testing;
using CloudVpn.WireGuard.Netlink;

namespace CloudVpn.WireGuard.Tests.Interop;

/// <summary>
/// The same <c>wg</c> commands against our drop-in and against wireguard-go (each in its own namespace, so both can
/// listen on the same port) must leave both devices reporting the same configuration.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class WgToolComparisonTests : IDisposable
{
    private readonly NetnsPair _net;
    private readonly WireGuardProcess _ours;
    private readonly WireGuardProcess _theirs;
    private readonly string _dir;

    public WgToolComparisonTests()
    {
        WireGuardProcess.RequirePrerequisites(Implementation.CloudVpn);
        WireGuardProcess.RequirePrerequisites(Implementation.WireGuardGo);
        _net = new NetnsPair("wc");
        _dir = Directory.CreateTempSubdirectory("cloudvpn-wgcmp").FullName;
        _ours = WireGuardProcess.Start(Implementation.CloudVpn, _net.Left);
        _theirs = WireGuardProcess.Start(Implementation.WireGuardGo, _net.Right);
    }

    [Fact]
    public void Set_add_change_remove_and_syncconf_leave_both_devices_identical()
    {
        var key = File("priv", Cmd.Run("wg", "genkey").Stdout);
        var psk = File("psk", Cmd.Run("wg", "genpsk").Stdout);
        var peerA = PublicKey();
        var peerB = PublicKey();
        var peerC = PublicKey();

        // add: device settings and two peers
        Both($"set {{0}} private-key {key} listen-port 51820 fwmark 0x42 "
            + $"peer {peerA} preshared-key {psk} endpoint 192.0.2.50:1000 persistent-keepalive 25 allowed-ips 10.1.0.0/24,fd00:1::/64 "
            + $"peer {peerB} allowed-ips 10.2.0.1/32");
        var dump = AssertSameDump();
        Assert.Contains(peerA, dump, StringComparison.Ordinal);
        Assert.Contains("10.1.0.0/24", dump, StringComparison.Ordinal);
        Assert.Contains("fd00:1::/64", dump, StringComparison.Ordinal);
        Assert.Contains("0x42", dump, StringComparison.Ordinal);
        AssertSameShowconf();

        // change: endpoint, allowed IPs (replaced, host bits cleared), keepalive off, psk removed
        Both($"set {{0}} peer {peerB} endpoint [2001:db8::5]:2000 allowed-ips 10.3.4.5/16,10.9.0.0/24 "
            + $"peer {peerA} persistent-keepalive off preshared-key /dev/null");
        dump = AssertSameDump();
        Assert.Contains("10.3.0.0/16", dump, StringComparison.Ordinal);
        Assert.Contains("[2001:db8::5]:2000", dump, StringComparison.Ordinal);

        // an allowed IP moves from one peer to another
        Both($"set {{0}} peer {peerA} allowed-ips 10.9.0.0/24");
        AssertSameDump();

        // remove a peer
        Both($"set {{0}} peer {peerB} remove");
        dump = AssertSameDump();
        Assert.DoesNotContain(peerB, dump, StringComparison.Ordinal);

        // syncconf: peer A's settings change, B comes back, C is new; the listen port changes
        var conf = File("sync.conf", $"""
            [Interface]
            PrivateKey = {System.IO.File.ReadAllText(key).Trim()}
            ListenPort = 51821

            [Peer]
            PublicKey = {peerA}
            AllowedIPs = 10.1.0.0/24
            Endpoint = 192.0.2.51:1001

            [Peer]
            PublicKey = {peerB}
            AllowedIPs = 10.2.0.0/24, fd00:2::/64

            [Peer]
            PublicKey = {peerC}
            PresharedKey = {System.IO.File.ReadAllText(psk).Trim()}
            AllowedIPs = 0.0.0.0/1
            PersistentKeepalive = 15
            """);
        Both($"syncconf {{0}} {conf}");
        dump = AssertSameDump();
        Assert.Contains("51821", dump, StringComparison.Ordinal);
        Assert.Contains(peerC, dump, StringComparison.Ordinal);
        AssertSameShowconf();

        // setconf replaces everything
        var small = File("small.conf", $"""
            [Interface]
            PrivateKey = {System.IO.File.ReadAllText(key).Trim()}
            ListenPort = 51822

            [Peer]
            PublicKey = {peerC}
            AllowedIPs = 10.8.0.0/24
            """);
        Both($"setconf {{0}} {small}");
        dump = AssertSameDump();
        Assert.DoesNotContain(peerA, dump, StringComparison.Ordinal);
        AssertSameShowconf();
    }

    [Fact]
    public void Wg_show_prints_the_same_report_for_both()
    {
        var key = File("priv", Cmd.Run("wg", "genkey").Stdout);
        var peer = PublicKey();
        Both($"set {{0}} private-key {key} listen-port 51820 peer {peer} endpoint 192.0.2.9:51820 allowed-ips 10.5.0.0/16");
        var ours = _ours.Wg($"show {_ours.Name}").Replace(_ours.Name, "IF", StringComparison.Ordinal);
        var theirs = _theirs.Wg($"show {_theirs.Name}").Replace(_theirs.Name, "IF", StringComparison.Ordinal);
        Assert.Equal(theirs, ours);
        Assert.Contains("listening port: 51820", ours, StringComparison.Ordinal);
    }

    [Fact]
    public void Taken_listen_port_is_refused_like_wireguard_go()
    {
        // hold UDP port 51999 (IPv4 and IPv6) in both namespaces
        using var heldLeft = NetworkNamespace.Run(_net.Left, () => HoldPort(51999));
        using var heldRight = NetworkNamespace.Run(_net.Right, () => HoldPort(51999));
        Both("set {0} listen-port 51820");

        var ours = NetnsPair.Exec(_net.Left, $"wg set {_ours.Name} listen-port 51999", check: false);
        var theirs = NetnsPair.Exec(_net.Right, $"wg set {_theirs.Name} listen-port 51999", check: false);

        Assert.NotEqual(0, theirs.ExitCode);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(theirs.Stderr.Replace(_theirs.Name, "IF", StringComparison.Ordinal), ours.Stderr.Replace(_ours.Name, "IF", StringComparison.Ordinal));
        Assert.Contains("listening port: 51820", _ours.Wg($"show {_ours.Name}"), StringComparison.Ordinal); // still on the old port
    }

    private static System.Net.Sockets.Socket HoldPort(int port)
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetworkV6, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp)
        {
            DualMode = true,
        };
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.IPv6Any, port));
        return socket;
    }

    public void Dispose()
    {
        _ours.Dispose();
        _theirs.Dispose();
        _net.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private void Both(string format)
    {
        _ours.Wg(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, _ours.Name));
        _theirs.Wg(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, _theirs.Name));
    }

    private string AssertSameDump()
    {
        var ours = NormalizeDump(_ours.Wg($"show {_ours.Name} dump"));
        var theirs = NormalizeDump(_theirs.Wg($"show {_theirs.Name} dump"));
        Assert.Equal(theirs, ours);
        return ours;
    }

    private void AssertSameShowconf()
    {
        var ours = NormalizeConf(_ours.Wg($"showconf {_ours.Name}"));
        var theirs = NormalizeConf(_theirs.Wg($"showconf {_theirs.Name}"));
        Assert.Equal(theirs, ours);
    }

    // dump: device line (private, public, port, fwmark), then per peer: public, psk, endpoint, allowed-ips,
    // latest-handshake, rx, tx, keepalive. Peer order is the device's map order (random in wireguard-go), so lines are
    // sorted; allowed-ips too; handshake and transfer columns depend on timing and are left out.
    private static string NormalizeDump(string dump)
    {
        var lines = dump.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var peers = lines.Skip(1).Select(line =>
        {
            var f = line.Split('\t');
            var allowed = string.Join(",", f[3].Split(',').Order(StringComparer.Ordinal));
            return string.Join('\t', f[0], f[1], f[2], allowed, f[7]);
        }).Order(StringComparer.Ordinal);
        return string.Join('\n', new[] { lines[0] }.Concat(peers));
    }

    private static string NormalizeConf(string conf)
    {
        var sections = SectionSplit().Split(conf.Trim()).Where(s => s.Length > 0).Select(s =>
            string.Join('\n', s.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.StartsWith("AllowedIPs", StringComparison.Ordinal)
                ? "AllowedIPs = " + string.Join(", ", l["AllowedIPs = ".Length..].Split(", ").Order(StringComparer.Ordinal))
                : l)));
        var list = sections.ToList();
        return string.Join("\n\n", list.Take(1).Concat(list.Skip(1).Order(StringComparer.Ordinal)));
    }

    [GeneratedRegex(@"\n\s*\n")]
    private static partial Regex SectionSplit();

    private string PublicKey() => Cmd.Run("wg", "pubkey", stdin: Cmd.Run("wg", "genkey").Stdout).Stdout.Trim();

    private string File(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        System.IO.File.WriteAllText(path, content.Trim() + "\n");
        return path;
    }
}
