using CloudVpn.OpenVpn.Interop;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace CloudVpn.OpenVpn.Supervision;

/// <summary>Timings of the process supervisor.</summary>
/// <param name="RestartDelay">First restart delay after a crash; it doubles with each crash in a row.</param>
/// <param name="MaxRestartDelay">Cap of the restart delay.</param>
/// <param name="StableAfter">A process that ran this long before dying is restarted at once and the backoff starts over.</param>
/// <param name="StopTimeout">How long a clean stop (SIGTERM) may take before SIGKILL.</param>
internal sealed record SupervisorTimings(TimeSpan RestartDelay, TimeSpan MaxRestartDelay, TimeSpan StableAfter, TimeSpan StopTimeout);

/// <summary>
/// Keeps one openvpn process running: starts it, restarts it with exponential backoff (Polly) when it dies,
/// stops it cleanly (SIGTERM, then SIGKILL after a timeout), and passes its log lines to an <see cref="ILogger"/>.
/// </summary>
internal sealed partial class OpenVpnSupervisor : IAsyncDisposable
{
    private const int LogTail = 40;
    private readonly IOpenVpnProcessLauncher _launcher;
    private readonly string _binary;
    private readonly IReadOnlyList<string> _arguments;
    private readonly SupervisorTimings _timings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _restartPipeline;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Queue<string> _tail = new();
    private readonly Lock _lock = new();
    private IOpenVpnProcess? _current;
    private Task? _loop;
    private int _starts;
    private bool _restartRequested;

    public OpenVpnSupervisor(IOpenVpnProcessLauncher launcher, string binary, IReadOnlyList<string> arguments, SupervisorTimings timings, TimeProvider time, ILogger logger)
    {
        _launcher = launcher;
        _binary = binary;
        _arguments = arguments;
        _timings = timings;
        _time = time;
        _logger = logger;
        _restartPipeline = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<OpenVpnExitedException>(),
                BackoffType = DelayBackoffType.Exponential,
                Delay = timings.RestartDelay,
                MaxDelay = timings.MaxRestartDelay,
                // One local child process: there is no herd of clients to spread out, so the delays stay predictable.
                UseJitter = false,
                MaxRetryAttempts = int.MaxValue,
                OnRetry = args =>
                {
                    var exit = args.Outcome.Exception as OpenVpnExitedException;
                    LogRestarting(_logger, exit?.ExitCode ?? -1, args.RetryDelay, args.AttemptNumber + 1);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>How many times a process was started.</summary>
    public int Starts => Volatile.Read(ref _starts);

    /// <summary>Id of the running process, null between runs.</summary>
    public int? ProcessId
    {
        get
        {
            lock (_lock)
            {
                return _current?.Id;
            }
        }
    }

    /// <summary>Raised with every log line of the process (after it is logged).</summary>
    public event Action<string>? LineReceived;

    /// <summary>The supervision loop; faults when the binary cannot be started at all.</summary>
    public Task Completion => _loop ?? Task.CompletedTask;

    /// <summary>The last log lines, for error messages.</summary>
    public IReadOnlyList<string> RecentLines
    {
        get
        {
            lock (_lock)
            {
                return [.. _tail];
            }
        }
    }

    /// <summary>Starts the supervision loop (once).</summary>
    public void Start() => _loop ??= Task.Run(RunAsync);

    /// <summary>Sends <paramref name="signal"/> to the running process; false when none runs.</summary>
    public bool Signal(int signal)
    {
        lock (_lock)
        {
            return _current?.Signal(signal) ?? false;
        }
    }

    /// <summary>Stops the process (SIGTERM) and starts it again at once, without backoff (after a configuration change).</summary>
    public bool Restart()
    {
        lock (_lock)
        {
            if (_current is null)
            {
                return false;
            }

            _restartRequested = true;
            return _current.Signal(Signals.SigTerm);
        }
    }

    /// <summary>Stops supervision and the process: SIGTERM, then SIGKILL after the stop timeout. Harmless twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        if (_loop is not null)
        {
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                // The start failure was already reported through Completion.
            }
        }

        _stopping.Dispose();
    }

    private async Task RunAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            await _restartPipeline.ExecuteAsync(RunOnceAsync, token);
        }
    }

    private async ValueTask RunOnceAsync(CancellationToken token)
    {
        token.ThrowIfCancellationRequested();
        var startedAt = _time.GetTimestamp();
        IOpenVpnProcess process;
        lock (_lock)
        {
            process = _launcher.Start(_binary, _arguments, OnLine);
            _current = process;
        }

        var number = Interlocked.Increment(ref _starts);
        LogStarted(_logger, process.Id, number);
        int exitCode;
        try
        {
            exitCode = await process.Exited.WaitAsync(token);
        }
        catch (OperationCanceledException)
        {
            await StopAsync(process);
            throw;
        }
        finally
        {
            lock (_lock)
            {
                _current = null;
            }
        }

        process.Dispose();
        bool requested;
        lock (_lock)
        {
            requested = _restartRequested;
            _restartRequested = false;
        }

        if (requested)
        {
            LogRestartRequested(_logger, exitCode);
            return;
        }

        var ran = _time.GetElapsedTime(startedAt);
        LogExited(_logger, process.Id, exitCode, ran);
        if (ran < _timings.StableAfter)
        {
            throw new OpenVpnExitedException(exitCode);
        }

        // It ran long enough to count as healthy: restart at once, and let the next crash start the backoff over.
    }

    private async Task StopAsync(IOpenVpnProcess process)
    {
        if (!process.Signal(Signals.SigTerm))
        {
            process.Dispose();
            return;
        }

        try
        {
            await process.Exited.WaitAsync(_timings.StopTimeout, _time);
            LogStopped(_logger, process.Id);
        }
        catch (TimeoutException)
        {
            LogKilled(_logger, process.Id, _timings.StopTimeout);
            process.Signal(Signals.SigKill);
            await process.Exited;
        }

        process.Dispose();
    }

    private void OnLine(string line)
    {
        lock (_lock)
        {
            _tail.Enqueue(line);
            while (_tail.Count > LogTail)
            {
                _tail.Dequeue();
            }
        }

        if (line.Contains("MANAGEMENT: CMD", StringComparison.Ordinal))
        {
            // Our own status polls; useful only when debugging.
            LogLineDebug(_logger, line);
        }
        else if (line.Contains("ERROR", StringComparison.Ordinal) || line.Contains("error", StringComparison.Ordinal) || line.Contains("FATAL", StringComparison.OrdinalIgnoreCase))
        {
            LogLineWarning(_logger, line);
        }
        else
        {
            LogLine(_logger, line);
        }

        LineReceived?.Invoke(line);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "openvpn started (pid {Pid}, start #{Start})")]
    private static partial void LogStarted(ILogger logger, int pid, int start);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "openvpn (pid {Pid}) exited with code {ExitCode} after {RunTime}")]
    private static partial void LogExited(ILogger logger, int pid, int exitCode, TimeSpan runTime);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "openvpn exited with code {ExitCode}; restarting in {Delay} (attempt {Attempt})")]
    private static partial void LogRestarting(ILogger logger, int exitCode, TimeSpan delay, int attempt);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "openvpn stopped for a requested restart (exit code {ExitCode})")]
    private static partial void LogRestartRequested(ILogger logger, int exitCode);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "openvpn (pid {Pid}) stopped cleanly")]
    private static partial void LogStopped(ILogger logger, int pid);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "openvpn (pid {Pid}) ignored SIGTERM for {Timeout}; killed")]
    private static partial void LogKilled(ILogger logger, int pid, TimeSpan timeout);

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "openvpn: {Line}")]
    private static partial void LogLine(ILogger logger, string line);

    [LoggerMessage(EventId = 112, Level = LogLevel.Debug, Message = "openvpn: {Line}")]
    private static partial void LogLineDebug(ILogger logger, string line);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "openvpn: {Line}")]
    private static partial void LogLineWarning(ILogger logger, string line);
}

/// <summary>The openvpn process ended on its own.</summary>
internal sealed class OpenVpnExitedException(int exitCode) : Exception($"openvpn exited with code {exitCode}.")
{
    public int ExitCode { get; } = exitCode;
}
