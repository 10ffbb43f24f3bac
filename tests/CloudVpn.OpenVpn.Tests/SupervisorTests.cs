using CloudVpn.OpenVpn.Interop;
using CloudVpn.OpenVpn.Supervision;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.OpenVpn.Tests;

public sealed class SupervisorTests
{
    private static readonly SupervisorTimings Timings = new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeLogCollector _logs = new();
    private readonly FakeLauncher _launcher = new();

    private OpenVpnSupervisor NewSupervisor() =>
        new(_launcher, "/usr/sbin/openvpn", ["--config", "/x/server.conf"], Timings, _time, new FakeLogger(_logs));

    [Fact]
    public async Task A_crashing_process_is_restarted_with_growing_backoff_and_its_lines_are_logged()
    {
        await using var supervisor = NewSupervisor();
        supervisor.Start();
        var first = await _launcher.NextAsync();
        Assert.Equal(["--config", "/x/server.conf"], first.Arguments);
        first.Print("Initialization Sequence Completed");
        first.Print("Exiting due to fatal error");

        first.Exit(1);
        await WaitForBackoffAsync(supervisor);
        var firstDelay = await AdvanceUntilStartAsync(2);
        var second = await _launcher.NextAsync();
        Assert.Equal(second.Id, supervisor.ProcessId);

        // A second crash in a row waits twice as long.
        second.Exit(1);
        await WaitForBackoffAsync(supervisor);
        var secondDelay = await AdvanceUntilStartAsync(3);
        _ = await _launcher.NextAsync();

        Assert.InRange(firstDelay, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1.3));
        Assert.InRange(secondDelay, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2.3));

        var records = _logs.GetSnapshot();
        Assert.Contains(records, r => r.Level == LogLevel.Information && r.Message == "openvpn: Initialization Sequence Completed");
        Assert.Contains(records, r => r.Level == LogLevel.Warning && r.Message == "openvpn: Exiting due to fatal error");
        Assert.Contains(records, r => r.Level == LogLevel.Warning && r.Message.StartsWith("openvpn exited with code 1; restarting in", StringComparison.Ordinal));
        Assert.Contains("Exiting due to fatal error", supervisor.RecentLines);
    }

    [Fact]
    public async Task A_process_that_ran_long_enough_is_restarted_at_once()
    {
        await using var supervisor = NewSupervisor();
        supervisor.Start();
        var first = await _launcher.NextAsync();
        _time.Advance(TimeSpan.FromMinutes(5));
        first.Exit(0);
        _ = await _launcher.NextAsync();
        Assert.Equal(2, supervisor.Starts);
    }

    [Fact]
    public async Task A_requested_restart_skips_the_backoff()
    {
        await using var supervisor = NewSupervisor();
        supervisor.Start();
        var first = await _launcher.NextAsync();
        Assert.True(supervisor.Restart());
        Assert.Equal([Signals.SigTerm], first.Signals);
        first.Exit(0);
        _ = await _launcher.NextAsync();
        Assert.Equal(2, supervisor.Starts);
    }

    [Fact]
    public async Task Stop_sends_sigterm_and_kills_a_process_that_ignores_it()
    {
        var supervisor = NewSupervisor();
        supervisor.Start();
        var polite = await _launcher.NextAsync();
        polite.ExitOnSignal = Signals.SigTerm;
        await supervisor.DisposeAsync();
        Assert.Equal([Signals.SigTerm], polite.Signals);
        Assert.Equal(1, supervisor.Starts);

        var stubbornSupervisor = NewSupervisor();
        stubbornSupervisor.Start();
        var stubborn = await _launcher.NextAsync();
        stubborn.ExitOnSignal = Signals.SigKill;
        var stopping = stubbornSupervisor.DisposeAsync().AsTask();
        var waited = TimeSpan.Zero;
        while (!stopping.IsCompleted && waited < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20, TestContext.Current.CancellationToken);
            if (stubborn.Signals.Count > 0)
            {
                _time.Advance(TimeSpan.FromMilliseconds(250));
                waited += TimeSpan.FromMilliseconds(250);
            }
        }

        await stopping;
        Assert.InRange(waited, Timings.StopTimeout, Timings.StopTimeout + TimeSpan.FromSeconds(1));
        Assert.Equal([Signals.SigTerm, Signals.SigKill], stubborn.Signals);
        Assert.Contains(_logs.GetSnapshot(), r => r.Message.Contains("ignored SIGTERM", StringComparison.Ordinal));
    }

    private async Task<TimeSpan> AdvanceUntilStartAsync(int starts)
    {
        var advanced = TimeSpan.Zero;
        while (advanced < TimeSpan.FromMinutes(1))
        {
            _time.Advance(TimeSpan.FromMilliseconds(100));
            advanced += TimeSpan.FromMilliseconds(100);
            for (var i = 0; i < 5 && _launcher.Started < starts; i++)
            {
                await Task.Delay(10);
            }

            if (_launcher.Started >= starts)
            {
                return advanced;
            }
        }

        throw new Xunit.Sdk.XunitException($"no start #{starts} after {advanced} of fake time");
    }

    private async Task WaitForBackoffAsync(OpenVpnSupervisor supervisor)
    {
        // The restart delay is armed once the exit has been seen and logged.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!_logs.GetSnapshot().Any(r => r.Message.StartsWith("openvpn exited with code", StringComparison.Ordinal) && r.Message.Contains($"attempt {supervisor.Starts}", StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, "the supervisor never saw the exit");
            await Task.Delay(10);
        }
    }

    private sealed class FakeLauncher : IOpenVpnProcessLauncher
    {
        private readonly Lock _lock = new();
        private readonly Queue<FakeProcess> _started = new();
        private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _nextId = 1000;
        private int _count;

        public int Started => Volatile.Read(ref _count);

        public IOpenVpnProcess Start(string binary, IReadOnlyList<string> arguments, Action<string> onLine)
        {
            var process = new FakeProcess(Interlocked.Increment(ref _nextId), arguments, onLine);
            lock (_lock)
            {
                _started.Enqueue(process);
                _count++;
                _signal.TrySetResult();
            }

            return process;
        }

        public async Task<FakeProcess> NextAsync()
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                Task wait;
                lock (_lock)
                {
                    if (_started.TryDequeue(out var p))
                    {
                        return p;
                    }

                    _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
                    wait = _signal.Task;
                }

                await wait.WaitAsync(deadline - DateTime.UtcNow);
            }
        }
    }

    private sealed class FakeProcess(int id, IReadOnlyList<string> arguments, Action<string> onLine) : IOpenVpnProcess
    {
        private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Id { get; } = id;

        public IReadOnlyList<string> Arguments { get; } = arguments;

        public List<int> Signals { get; } = [];

        public int? ExitOnSignal { get; set; } = OpenVpn.Interop.Signals.SigTerm;

        public Task<int> Exited => _exited.Task;

        public void Print(string line) => onLine(line);

        public void Exit(int code) => _exited.TrySetResult(code);

        public bool Signal(int signal)
        {
            if (_exited.Task.IsCompleted)
            {
                return false;
            }

            Signals.Add(signal);
            if (signal == ExitOnSignal)
            {
                Exit(128 + signal);
            }

            return true;
        }

        public void Dispose()
        {
        }
    }
}
