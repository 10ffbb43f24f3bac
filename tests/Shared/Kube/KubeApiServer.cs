using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using k8s;
using k8s.Models;

namespace CloudVpn.Testing;

/// <summary>
/// A real Kubernetes API server (v1.20, built by <c>tests/kube-apiserver/build.sh</c>) with Debian's etcd, on loopback,
/// one per test process, started on first use and stopped when the process exits. RBAC is on. Besides the admin
/// (system:masters) there are four users without any rights until a test binds a Role: alice, bob, carol, dave.
/// No controller-manager and no nodes: objects are validated and stored, nothing runs.
/// </summary>
internal sealed class KubeApiServer
{
    public static readonly IReadOnlyList<string> Users = ["alice", "bob", "carol", "dave"];

    private static readonly SemaphoreSlim s_gate = new(1, 1);
    private static KubeApiServer? s_instance;
    private static string? s_failure;
    private static int s_namespaceCounter;

    private readonly string _dir;
    private readonly Dictionary<string, string> _tokens;
    private readonly List<Process> _processes = [];

    private KubeApiServer(string dir, Dictionary<string, string> tokens)
    {
        _dir = dir;
        _tokens = tokens;
    }

    public static string CacheDirectory =>
        Path.Combine(Environment.GetEnvironmentVariable("CLOUDVPN_CACHE") is { Length: > 0 } c ? c : "/var/cache/cloudvpn", "kube-apiserver");

    public static string ApiServerBinary => Path.Combine(CacheDirectory, "kube-apiserver");

    public string Url { get; private set; } = "";

    /// <summary>Admin kubeconfig (for helm and kubectl-like tools).</summary>
    public string KubeconfigPath => Path.Combine(_dir, "admin.kubeconfig");

    public string UserKubeconfigPath(string user) =>
        _tokens.ContainsKey(user) && user != "admin" ? Path.Combine(_dir, $"{user}.kubeconfig") : throw new ArgumentException($"unknown user '{user}'", nameof(user));

    public k8s.Kubernetes AdminClient() => Client("admin");

    public k8s.Kubernetes UserClient(string user) =>
        user != "admin" && _tokens.ContainsKey(user) ? Client(user) : throw new ArgumentException($"unknown user '{user}'", nameof(user));

    /// <summary>Creates a namespace with a unique name starting with <paramref name="prefix"/> and returns its name.</summary>
    public async Task<string> CreateNamespaceAsync(string prefix)
    {
        var name = $"{prefix}-{Environment.ProcessId % 100000}-{Interlocked.Increment(ref s_namespaceCounter)}".ToLowerInvariant();
        using var client = AdminClient();
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = name } }).ConfigureAwait(false);
        return name;
    }

    /// <summary>The shared server; skips (or under CI fails) the test when the server is not built.</summary>
    public static async Task<KubeApiServer> GetAsync()
    {
        Prerequisite.RequireRoot();
        Prerequisite.Require(File.Exists(ApiServerBinary), $"kube-apiserver built at {ApiServerBinary} (run tests/kube-apiserver/build.sh)");
        Prerequisite.RequireCommand("etcd");
        Prerequisite.RequireCommand("openssl");
        await s_gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (s_failure is not null)
            {
                Assert.Fail($"kube-apiserver did not start earlier in this run: {s_failure}");
            }

            if (s_instance is null)
            {
                try
                {
                    s_instance = await StartAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or IOException)
                {
                    s_failure = ex.Message;
                    throw;
                }
            }

            return s_instance;
        }
        finally
        {
            s_gate.Release();
        }
    }

    private k8s.Kubernetes Client(string user) => new(new KubernetesClientConfiguration
    {
        Host = Url,
        AccessToken = _tokens[user],
        SkipTlsVerify = true,
    });

    private static async Task<KubeApiServer> StartAsync()
    {
        var dir = Directory.CreateTempSubdirectory("cloudvpn-kube-").FullName;
        var tokens = new Dictionary<string, string>(StringComparer.Ordinal) { ["admin"] = Convert.ToHexString(Guid.NewGuid().ToByteArray()) };
        foreach (var u in Users)
        {
            tokens[u] = Convert.ToHexString(Guid.NewGuid().ToByteArray());
        }

        var server = new KubeApiServer(dir, tokens);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Stop();

        var tokenLines = tokens.Select(kv => kv.Key == "admin"
            ? $"{kv.Value},admin,uid-admin,\"system:masters\""
            : $"{kv.Value},{kv.Key},uid-{kv.Key}");
        await File.WriteAllLinesAsync(Path.Combine(dir, "tokens.csv"), tokenLines).ConfigureAwait(false);
        Cmd.Run("openssl", $"genrsa -out {dir}/sa.key 2048");
        Cmd.Run("openssl", $"rsa -in {dir}/sa.key -pubout -out {dir}/sa.pub");

        int etcdClient = FreePort(), etcdPeer = FreePort(), securePort = FreePort();
        server.Spawn("etcd",
            $"--data-dir {dir}/etcd --listen-client-urls http://127.0.0.1:{etcdClient} --advertise-client-urls http://127.0.0.1:{etcdClient} " +
            $"--listen-peer-urls http://127.0.0.1:{etcdPeer} --initial-advertise-peer-urls http://127.0.0.1:{etcdPeer} " +
            $"--initial-cluster default=http://127.0.0.1:{etcdPeer} --log-level warn",
            Path.Combine(dir, "etcd.log"));
        server.Spawn(ApiServerBinary,
            $"--etcd-servers=http://127.0.0.1:{etcdClient} --bind-address=127.0.0.1 --advertise-address=127.0.0.1 " +
            $"--secure-port={securePort} --cert-dir={dir}/certs --service-account-key-file={dir}/sa.pub " +
            $"--service-account-signing-key-file={dir}/sa.key --service-account-issuer=https://kubernetes.default.svc " +
            $"--token-auth-file={dir}/tokens.csv --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 " +
            "--enable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook " +
            // no controller-manager creates service accounts and their tokens here, so pods are admitted without them
            "--disable-admission-plugins=ServiceAccount,StorageObjectInUseProtection,DefaultStorageClass,PersistentVolumeClaimResize,DefaultTolerationSeconds,TaintNodesByCondition,Priority,RuntimeClass,CertificateApproval,CertificateSigning,CertificateSubjectRestriction,DefaultIngressClass",
            Path.Combine(dir, "kube-apiserver.log"));
        server.Url = $"https://127.0.0.1:{securePort}";

        foreach (var user in tokens.Keys)
        {
            var kubeconfig = $"""
                apiVersion: v1
                kind: Config
                clusters:
                - name: test
                  cluster:
                    server: {server.Url}
                    insecure-skip-tls-verify: true
                users:
                - name: {user}
                  user:
                    token: {tokens[user]}
                contexts:
                - name: test
                  context:
                    cluster: test
                    user: {user}
                    namespace: default
                current-context: test
                """;
            var path = Path.Combine(dir, $"{user}.kubeconfig");
            await File.WriteAllTextAsync(path, kubeconfig).ConfigureAwait(false);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        using var http = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = static (_, _, _, _) => true });
        http.DefaultRequestHeaders.Authorization = new("Bearer", tokens["admin"]);
        var started = TimeProvider.System.GetTimestamp();
        string last = "no answer";
        while (TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(90))
        {
            if (server._processes.Any(p => p.HasExited))
            {
                var logs = string.Join("\n", new[] { "etcd.log", "kube-apiserver.log" }.Select(f => Tail(Path.Combine(dir, f))));
                server.Stop();
                throw new InvalidOperationException($"etcd or kube-apiserver exited during start:\n{logs}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri($"{server.Url}/readyz")).ConfigureAwait(false);
                last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync().ConfigureAwait(false)}";
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    await server.WaitForDefaultNamespaceAsync().ConfigureAwait(false);
                    return server;
                }
            }
            catch (HttpRequestException ex)
            {
                last = ex.Message;
            }

            await Task.Delay(250).ConfigureAwait(false);
        }

        server.Stop();
        throw new TimeoutException($"kube-apiserver not ready after 90 s: {last}\n{Tail(Path.Combine(dir, "kube-apiserver.log"))}");
    }

    private async Task WaitForDefaultNamespaceAsync()
    {
        using var client = AdminClient();
        for (var i = 0; i < 100; i++)
        {
            try
            {
                await client.CoreV1.ReadNamespaceAsync("default").ConfigureAwait(false);
                return;
            }
            catch (k8s.Autorest.HttpOperationException)
            {
                await Task.Delay(100).ConfigureAwait(false);
            }
        }
    }

    private void Spawn(string file, string arguments, string logFile)
    {
        var psi = new ProcessStartInfo(Prerequisite.FindCommand(file) ?? file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var log = new StreamWriter(logFile) { AutoFlush = true };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (log) { log.WriteLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (log) { log.WriteLine(e.Data); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
    }

    private void Stop()
    {
        for (var i = _processes.Count - 1; i >= 0; i--)
        {
            try
            {
                if (!_processes[i].HasExited)
                {
                    _processes[i].Kill(entireProcessTree: true);
                    _processes[i].WaitForExit(5000);
                }
            }
            catch (InvalidOperationException)
            {
            }
        }

        if (Environment.GetEnvironmentVariable("CLOUDVPN_KEEP_KUBE_LOGS") is { Length: > 0 } keep)
        {
            Directory.CreateDirectory(keep);
            foreach (var log in Directory.GetFiles(_dir, "*.log"))
            {
                File.Copy(log, Path.Combine(keep, Path.GetFileName(log)), overwrite: true);
            }
        }

        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string Tail(string file)
    {
        try
        {
            var lines = File.ReadAllLines(file);
            return string.Join("\n", lines.Skip(Math.Max(0, lines.Length - 30)));
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
