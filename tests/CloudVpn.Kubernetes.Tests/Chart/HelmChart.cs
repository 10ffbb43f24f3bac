using System.Text.Json;
using CloudVpn.Testing;

namespace CloudVpn.Kubernetes.Tests.Chart;

/// <summary>The real helm binary (installed by tests/prerequisites.d/helm.sh) and the chart folder of this repository.</summary>
internal static class HelmChart
{
    public const string PublicEndpoint = "203.0.113.1:51820";

    public static string HelmPath => Path.Combine(Environment.GetEnvironmentVariable("CLOUDVPN_CACHE") is { Length: > 0 } c ? c : "/var/cache/cloudvpn", "helm", "helm");

    public static string ChartDirectory { get; } = FindChart();

    /// <summary>Skips (or fails under CI) when helm is not installed.</summary>
    public static void RequireHelm() => Prerequisite.Require(File.Exists(HelmPath), $"helm at {HelmPath} (run tests/prerequisites.d/helm.sh)");

    public static (int ExitCode, string Stdout, string Stderr) Helm(string arguments, int timeoutMs = 120_000) =>
        Cmd.Run(HelmPath, arguments, check: false, timeoutMs: timeoutMs);

    /// <summary>Writes a values tree as a JSON values file (JSON is YAML) and returns its path.</summary>
    public static string WriteValues(TempDir dir, string name, object values)
    {
        var path = Path.Combine(dir.Path, name + ".json");
        File.WriteAllText(path, JsonSerializer.Serialize(values));
        return path;
    }

    /// <summary>helm template with the given values files, Kubernetes version and extra API versions.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Template(
        IEnumerable<string> valuesFiles, string kubeVersion, IEnumerable<string>? apiVersions = null, string release = "vpn-gateway",
        string ns = "vpn", string? chartDirectory = null, IEnumerable<string>? sets = null)
    {
        var args = $"template {release} {chartDirectory ?? ChartDirectory} --namespace {ns} --kube-version {kubeVersion}";
        foreach (var f in valuesFiles)
        {
            args += $" -f {f}";
        }

        foreach (var a in apiVersions ?? [])
        {
            args += $" --api-versions {a}";
        }

        foreach (var s in sets ?? [])
        {
            args += $" --set {s}";
        }

        return Helm(args);
    }

    private static string FindChart()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "deploy", "helm", "cloudvpn-gateway");
            if (File.Exists(Path.Combine(candidate, "Chart.yaml")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("deploy/helm/cloudvpn-gateway not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A temporary folder removed on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cloudvpn-k8s-" + Guid.NewGuid().ToString("N")[..12]);

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
