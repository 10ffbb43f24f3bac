using System.Globalization;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

namespace CloudVpn.Benchmarks;

/// <summary>
/// Runs the scale benchmarks through BenchmarkDotNet and prints their figures as quotable lines: allowed-IP lookup
/// ns at each table size, handshakes per second per core, and the allocations of encrypt and decrypt.
/// Run: <c>dotnet run -c Release --project bench/CloudVpn.Benchmarks -- scale-figures [short]</c>
/// ("short" uses BenchmarkDotNet's short job: quicker, wider error bars).
/// </summary>
internal static class ScaleFigures
{
    public static int Run(string[] args)
    {
        var job = args.Length > 1 && args[1] == "short" ? Job.ShortRun : Job.Default;
        IConfig config = DefaultConfig.Instance.AddJob(job.WithId("scale"));
        if (Environment.GetEnvironmentVariable("BDN_ARTIFACTS") is { Length: > 0 } artifacts)
        {
            config = config.WithArtifactsPath(artifacts);
        }

        var lines = new List<string>();

        var lookup = BenchmarkRunner.Run<AllowedIpsLookupBenchmark>(config);
        foreach (var method in new[] { nameof(AllowedIpsLookupBenchmark.LookupV4), nameof(AllowedIpsLookupBenchmark.LookupV6) })
        {
            var figures = lookup.Reports
                .Where(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == method && r.ResultStatistics is not null)
                .OrderBy(r => (int)r.BenchmarkCase.Parameters["Peers"])
                .Select(r => $"{r.ResultStatistics!.Mean.ToString("F1", CultureInfo.InvariantCulture)} ns at {r.BenchmarkCase.Parameters["Peers"]}");
            lines.Add($"scale: allowed-IP lookup {(method.EndsWith("V4", StringComparison.Ordinal) ? "IPv4" : "IPv6")}: {string.Join(", ", figures)} peers");
        }

        var handshake = BenchmarkRunner.Run<NoiseHandshakeBenchmark>(config);
        foreach (var report in handshake.Reports.Where(r => r.ResultStatistics is not null))
        {
            var mean = report.ResultStatistics!.Mean; // ns
            lines.Add($"scale: handshakes per second per core (BenchmarkDotNet, both sides on one thread): {1e9 / mean:F0} ({mean / 1000:F0} us each, {report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)} B allocated)");
        }

        var batched = BenchmarkRunner.Run<BatchedHandshakeBenchmark>(config);
        foreach (var report in batched.Reports.Where(r => r.ResultStatistics is not null))
        {
            var mean = report.ResultStatistics!.Mean; // ns per handshake (eight per call)
            lines.Add($"scale: handshakes per second per core, eight at a time with X25519 in AVX-512 lanes (BenchmarkDotNet, both sides on one thread): {1e9 / mean:F0} ({mean / 1000:F0} us each, {report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)} B allocated)");
        }

        foreach (var summary in new[] { BenchmarkRunner.Run<EncryptBenchmark>(config), BenchmarkRunner.Run<DecryptBenchmark>(config) })
        {
            foreach (var report in summary.Reports.Where(r => r.ResultStatistics is not null))
            {
                lines.Add($"scale: {report.BenchmarkCase.Descriptor.WorkloadMethod.Name} {report.BenchmarkCase.Parameters["PacketSize"]} B: " +
                    $"{report.ResultStatistics!.Mean.ToString("F0", CultureInfo.InvariantCulture)} ns, {report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase)} B allocated per packet");
            }
        }

        Console.WriteLine();
        foreach (var line in lines)
        {
            Console.WriteLine(line);
        }

        return 0;
    }
}
