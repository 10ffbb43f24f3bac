using BenchmarkDotNet.Running;
using CloudVpn.Benchmarks;

if (args.Length > 0 && args[0] == "udp")
{
    return UdpBench.Run(args);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
