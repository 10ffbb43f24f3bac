using System.Diagnostics;
using CloudVpn.OpenVpn.Interop;

namespace CloudVpn.OpenVpn.Supervision;

/// <summary>A running openvpn child process, as the supervisor sees it.</summary>
internal interface IOpenVpnProcess : IDisposable
{
    /// <summary>Process id.</summary>
    int Id { get; }

    /// <summary>Completes with the exit code when the process ends.</summary>
    Task<int> Exited { get; }

    /// <summary>Sends a POSIX signal; false when the process is already gone.</summary>
    bool Signal(int signal);
}

/// <summary>Starts openvpn processes; the seam that lets the supervisor be tested without the binary.</summary>
internal interface IOpenVpnProcessLauncher
{
    /// <summary>Starts <paramref name="binary"/> with <paramref name="arguments"/>, passing each output line to <paramref name="onLine"/>.</summary>
    IOpenVpnProcess Start(string binary, IReadOnlyList<string> arguments, Action<string> onLine);
}

/// <summary>Starts the real openvpn binary with its standard output and error captured line by line.</summary>
internal sealed class OpenVpnProcessLauncher : IOpenVpnProcessLauncher
{
    public static OpenVpnProcessLauncher Instance { get; } = new();

    public IOpenVpnProcess Start(string binary, IReadOnlyList<string> arguments, Action<string> onLine)
    {
        var info = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                onLine(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                onLine(e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new RealProcess(process);
    }

    private sealed class RealProcess : IOpenVpnProcess
    {
        private readonly Process _process;

        public RealProcess(Process process)
        {
            _process = process;
            Id = process.Id;
            Exited = WaitAsync();
        }

        public int Id { get; }

        public Task<int> Exited { get; }

        public bool Signal(int signal) => !_process.HasExited && Signals.Send(Id, signal);

        public void Dispose() => _process.Dispose();

        private async Task<int> WaitAsync()
        {
            // WaitForExitAsync also waits for the output pipes to drain, so the last log lines are seen first.
            await _process.WaitForExitAsync();
            return _process.ExitCode;
        }
    }
}
