using System.Net;
using System.Net.Sockets;
using CloudVpn.KeyStores;
using CloudVpn.Samples.Gateway;
using CloudVpn.Tunnels;
using Microsoft.Extensions.Options;

namespace CloudVpn.Samples.Tests;

/// <summary>A tunnel driver that records what it is asked and reports a status the test sets.</summary>
internal sealed class FakeTunnelDriver : ITunnelDriver
{
    private readonly Lock _lock = new();
    private readonly List<TunnelSpec> _specs = [];

    public string Name => "fake-wireguard";

    public string Family => "wireguard";

    public int Priority => 1;

    /// <summary>OpenAsync waits for this (completed by default).</summary>
    public TaskCompletionSource OpenGate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Peers' live state by public key, merged into the status.</summary>
    public Dictionary<string, PeerStatus> PeerState { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, long> HandshakeFailures { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, long> Drops { get; } = new(StringComparer.Ordinal);

    public bool Closed { get; private set; }

    /// <summary>Every spec the gateway opened or applied, in order.</summary>
    public IReadOnlyList<TunnelSpec> Specs
    {
        get
        {
            lock (_lock)
            {
                return [.. _specs];
            }
        }
    }

    public FakeTunnelDriver() => OpenGate.SetResult();

    public FakeTunnelDriver(bool gated)
    {
        if (!gated)
        {
            OpenGate.SetResult();
        }
    }

    public ValueTask<DriverProbeResult> ProbeAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(DriverProbeResult.Available("fake"));

    public async ValueTask<ITunnel> OpenAsync(TunnelSpec spec, CancellationToken cancellationToken = default)
    {
        await OpenGate.Task.WaitAsync(cancellationToken);
        Record(spec);
        return new Tunnel(this, spec.Device.Name);
    }

    private void Record(TunnelSpec spec)
    {
        lock (_lock)
        {
            _specs.Add(spec);
        }
    }

    private TunnelStatus Status(string name)
    {
        lock (_lock)
        {
            var spec = _specs[^1];
            var peers = spec.Peers
                .Select(p => PeerState.TryGetValue(p.PublicKey, out var s) ? s : new PeerStatus(p.PublicKey, null, null, 0, 0))
                .ToList();
            return new TunnelStatus(name, Name, true, spec.Device.ListenPort, null, spec.Device.Mtu, peers)
            {
                HandshakeFailures = new Dictionary<string, long>(HandshakeFailures),
                Drops = new Dictionary<string, long>(Drops),
            };
        }
    }

    private sealed class Tunnel(FakeTunnelDriver driver, string name) : ITunnel
    {
        public string Name => name;

        public string DriverName => driver.Name;

        public ValueTask<TunnelApplyResult> ApplyAsync(TunnelSpec desired, CancellationToken cancellationToken = default)
        {
            var before = driver.Specs[^1].Peers.Select(p => p.PublicKey).ToHashSet();
            driver.Record(desired);
            var after = desired.Peers.Select(p => p.PublicKey).ToHashSet();
            return ValueTask.FromResult(new TunnelApplyResult(false, [.. after.Except(before)], [], [.. before.Except(after)]));
        }

        public ValueTask<TunnelStatus> GetStatusAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(driver.Status(name));

        public ValueTask CloseAsync(CancellationToken cancellationToken = default)
        {
            driver.Closed = true;
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>A key store whose reads wait for a gate, to look at the gateway before its key is loaded.</summary>
internal sealed class GatedKeyStore(IKeyStore inner) : IKeyStore
{
    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async ValueTask<StoredSecret?> GetAsync(string id, long? version = null, CancellationToken cancellationToken = default)
    {
        await Gate.Task.WaitAsync(cancellationToken);
        return await inner.GetAsync(id, version, cancellationToken);
    }

    public ValueTask<long> PutAsync(string id, ReadOnlyMemory<byte> value, long? expectedVersion = null, CancellationToken cancellationToken = default) =>
        inner.PutAsync(id, value, expectedVersion, cancellationToken);

    public ValueTask<IReadOnlyList<SecretVersionInfo>> ListVersionsAsync(string id, CancellationToken cancellationToken = default) => inner.ListVersionsAsync(id, cancellationToken);

    public ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken = default) => inner.DeleteAsync(id, cancellationToken);

    public IAsyncEnumerable<KeyStoreChange> WatchAsync(string? id = null, CancellationToken cancellationToken = default) => inner.WatchAsync(id, cancellationToken);
}

/// <summary>A temporary folder removed on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Path = Directory.CreateTempSubdirectory("cvgw-").FullName;

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class TestPaths
{
    /// <summary>The repository root (the folder holding CloudVpn.sln).</summary>
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>Debug or Release, as this test assembly was built.</summary>
    public static string Configuration { get; } = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(System.IO.Path.DirectorySeparatorChar)).Parent!.Name;

    /// <summary>The gateway's built entry assembly.</summary>
    public static string GatewayDll => System.IO.Path.Combine(RepoRoot, "samples", "CloudVpn.Samples.Gateway", "bin", Configuration, "net10.0", "CloudVpn.Samples.Gateway.dll");

    public static string InRepo(params string[] parts) => System.IO.Path.Combine([RepoRoot, .. parts]);

    public static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "CloudVpn.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("CloudVpn.sln not found above " + AppContext.BaseDirectory);
    }
}

internal static class TestOptions
{
    public static GatewayOptions Valid(string dataDir) => new()
    {
        DataDir = dataDir,
        PublicEndpoint = "192.0.2.1:51820",
        Http = "127.0.0.1:9586",
    };

    public static IOptions<GatewayOptions> Wrap(GatewayOptions o) => Options.Create(o);
}
