// A drop-in for the wireguard-go command: `<program> [-f|--foreground] <interface>` creates the TUN interface and the
// userspace API socket /var/run/wireguard/<interface>.sock, then waits to be configured with `wg` and `ip` exactly as
// wireguard-go is. It exits cleanly on SIGINT/SIGTERM, when its socket file is removed or when the interface is deleted.
using System.Diagnostics;
using System.Runtime.InteropServices;
using CloudVpn.WireGuard.Device;
using Microsoft.Extensions.Logging;

const string ForegroundEnv = "WG_PROCESS_FOREGROUND";
const int ExitSetupFailed = 1;

string? name = null;
var foreground = Environment.GetEnvironmentVariable(ForegroundEnv) == "1";
foreach (var arg in args)
{
    switch (arg)
    {
        case "-f" or "--foreground":
            foreground = true;
            break;
        case "--version" or "-v":
            Console.WriteLine($"cloudvpn-userspace-wireguard {typeof(WireGuardDevice).Assembly.GetName().Version}");
            return 0;
        case "-h" or "--help":
            PrintUsage(Console.Out);
            return 0;
        default:
            if (arg.StartsWith('-') || name is not null)
            {
                PrintUsage(Console.Error);
                return ExitSetupFailed;
            }

            name = arg;
            break;
    }
}

if (name is null)
{
    PrintUsage(Console.Error);
    return ExitSetupFailed;
}

if (!foreground)
{
    return Daemonize(name);
}

var level = (Environment.GetEnvironmentVariable("LOG_LEVEL") ?? "error").ToLowerInvariant() switch
{
    "debug" => LogLevel.Debug,
    "verbose" or "info" => LogLevel.Information,
    "silent" => LogLevel.None,
    _ => LogLevel.Error,
};
using var loggerFactory = LoggerFactory.Create(b => b.SetMinimumLevel(level).AddSimpleConsole(o =>
{
    o.SingleLine = true;
    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
    o.UseUtcTimestamp = true;
}));
var log = loggerFactory.CreateLogger("wireguard");

// Signals first: a SIGTERM that arrives while the device is being created (its socket already visible) must still
// lead to a clean shutdown.
var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult("SIGINT"); });
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult("SIGTERM"); });

WireGuardDevice device;
try
{
    device = WireGuardDevice.Create(new WireGuardDeviceOptions { Name = name, DataPath = WireGuardDataPathOptions.FromEnvironment() }, loggerFactory);
}
catch (Exception ex) when (ex is IOException or ArgumentException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"Failed to create interface {name}: {ex.Message}");
    return ExitSetupFailed;
}

_ = device.Closed.ContinueWith(_ => stop.TrySetResult(device.CloseReason ?? "closed"), TaskScheduler.Default);

#pragma warning disable CA1848 // a handful of lines at start and stop
log.LogInformation("Device {Name} started (UDP port {Port})", device.Name, device.ListenPort);

// CLOUDVPN_WG_STATS_FILE: every half second, the process's managed allocations, collections, TUN packet counts, the
// data path allocation counter in total and per thread, and what writing the file allocated itself (key=value lines,
// replaced atomically), so a benchmark or test can read them during a transfer
long statsWriterBytes = 0;
using var stats = Environment.GetEnvironmentVariable("CLOUDVPN_WG_STATS_FILE") is { Length: > 0 } statsPath
    ? new Timer(_ => WriteStats(statsPath, device, ref statsWriterBytes), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(500))
    : null;
var reason = await stop.Task;
log.LogInformation("Shutting down {Name}: {Reason}", device.Name, reason);
log.LogInformation(
    "Managed allocations since start: {Bytes} bytes; collections gen0 {Gen0}, gen1 {Gen1}, gen2 {Gen2}",
    GC.GetTotalAllocatedBytes(precise: true), GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
#pragma warning restore CA1848
await device.DisposeAsync();
return 0;

// writerBytes: what the writes so far allocated themselves (their own figure, stats_writer_allocated_bytes, so that
// a reader can tell the rest of the process's allocations from the cost of watching them)
static void WriteStats(string path, WireGuardDevice device, ref long writerBytes)
{
    var start = GC.GetAllocatedBytesForCurrentThread();
    try
    {
        var (read, written) = device.TunPackets;
        var (superRead, superWritten) = device.TunSuperPackets;
        var text = new System.Text.StringBuilder();
        text.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"time_ms={Environment.TickCount64}\nallocated_bytes={GC.GetTotalAllocatedBytes(precise: true)}\n" +
            $"gen0={GC.CollectionCount(0)}\ngen1={GC.CollectionCount(1)}\ngen2={GC.CollectionCount(2)}\n" +
            $"tun_packets_read={read}\ntun_packets_written={written}\n" +
            $"tun_super_packets_read={superRead}\ntun_super_packets_written={superWritten}\n" +
            $"data_path_allocated_bytes={device.Engine.DataPathAllocations.AllocatedBytes}\n" +
            $"data_path_packets={device.Engine.DataPathAllocations.Packets}\n" +
            $"initiation_lane_groups={device.Engine.Counters.InitiationLaneGroups}\n" +
            $"response_lane_groups={device.Engine.Counters.ResponseLaneGroups}\n" +
            $"stats_writer_allocated_bytes={Interlocked.Read(ref writerBytes)}\n" +
            $"thread_pool_threads={ThreadPool.ThreadCount}\n");

        // the same per data path thread, e.g. data_path_allocated_bytes.udp-read_12 (name and managed thread id)
        foreach (var thread in device.Engine.DataPathAllocations.Threads)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"data_path_allocated_bytes.{thread.Name.Replace(' ', '_')}={thread.AllocatedBytes}\n");
        }

        var temporary = path + ".tmp";
        File.WriteAllText(temporary, text.ToString());
        File.Move(temporary, path, overwrite: true);
    }
    catch (IOException)
    {
        // the next tick tries again
    }
    catch (ObjectDisposedException)
    {
        // shutting down
    }
    finally
    {
        Interlocked.Add(ref writerBytes, GC.GetAllocatedBytesForCurrentThread() - start);
    }
}

// Without -f, wireguard-go re-launches itself in the background; so do we: a new session (setsid) with -f, output
// discarded, and this process returns once the interface's socket exists.
static int Daemonize(string name)
{
    var self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find the program's own path");
    var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
    psi.ArgumentList.Add("-c");
    psi.ArgumentList.Add("command -v setsid >/dev/null && exec setsid \"$0\" -f \"$1\" </dev/null >/dev/null 2>&1; exec \"$0\" -f \"$1\" </dev/null >/dev/null 2>&1");
    psi.ArgumentList.Add(self);
    psi.ArgumentList.Add(name);
    psi.Environment[ForegroundEnv] = "1";
    using var child = Process.Start(psi) ?? throw new InvalidOperationException("could not start the background process");
    var socket = Path.Combine("/var/run/wireguard", name + ".sock");
    var deadline = Stopwatch.StartNew();
    while (deadline.Elapsed < TimeSpan.FromSeconds(10))
    {
        if (child.HasExited)
        {
            Console.Error.WriteLine($"The background process exited with code {child.ExitCode}; run with -f to see why.");
            return child.ExitCode == 0 ? ExitSetupFailed : child.ExitCode;
        }

        if (File.Exists(socket))
        {
            return 0;
        }

        Thread.Sleep(50);
    }

    Console.Error.WriteLine($"Interface {name} did not come up within 10 s.");
    return ExitSetupFailed;
}

static void PrintUsage(TextWriter writer) => writer.WriteLine(
    $"Usage: {Path.GetFileName(Environment.ProcessPath ?? "cloudvpn-wireguard")} [-f/--foreground] INTERFACE-NAME");
