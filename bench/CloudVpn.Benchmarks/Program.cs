using BenchmarkDotNet.Running;
using CloudVpn.Benchmarks;

if (args.Length > 0 && args[0] == "udp")
{
    return UdpBench.Run(args);
}

if (args.Length > 0 && args[0] == "scale-figures")
{
    return ScaleFigures.Run(args);
}

if (args.Length > 0 && args[0] == "scale")
{
    return await ScaleRun.RunAsync(args);
}

BenchmarkSwitcher.FromAssembly(typeof(ScaleRun).Assembly).Run(args);
return 0;
