using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using StreamGrains.Client;
using StreamGrains.Samples;

namespace StreamGrains.Silo.Tests;

/// <summary>The real <c>run</c> host as a child process: <c>dotnet StreamGrains.Silo.dll run --config file</c>.</summary>
public sealed class RunHostProcessTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "streamgrains-host-tests", Guid.NewGuid().ToString("N")[..12]);

    public RunHostProcessTests() => Directory.CreateDirectory(_root);

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task The_run_host_puts_checkpoints_job_records_and_state_where_its_settings_say()
    {
        var checkpoints = Path.Combine(_root, "shared-checkpoints");
        var state = Path.Combine(_root, "local-state");
        var siloPort = LocalSilo.FreePort();
        var gatewayPort = LocalSilo.FreePort();
        var clusterId = "host-test-" + Guid.NewGuid().ToString("N")[..6];
        var config = WriteConfig(new
        {
            Cluster = new { ClusterId = clusterId, ServiceId = "host-test", Clustering = "Localhost", SiloPort = siloPort, GatewayPort = gatewayPort, PrimarySiloEndpoint = $"127.0.0.1:{siloPort}", Membership = new { ProbeTimeout = "00:00:03" } },
            StreamGrains = new { DeleteLocalStateOnStop = false, CheckpointStorage = new { Kind = "FileSystem", Path = checkpoints } },
        });

        // The state directory comes from an environment variable, which overrides the settings files.
        await using var host = HostProcess.Start(config, new Dictionary<string, string> { ["STREAMGRAINS_StreamGrains__StateDirectory"] = state });
        await host.WaitForLineAsync("Ctrl+C stops it.", TimeSpan.FromMinutes(2));
        Assert.Contains(host.Output, l => l.Contains($"FileSystem {checkpoints}", StringComparison.Ordinal));
        Assert.Contains(host.Output, l => l.Contains($"Local state: {state}", StringComparison.Ordinal));
        Assert.Contains(host.Output, l => l.Contains("failure detection: probe every 3 s", StringComparison.Ordinal));
        Assert.Contains(host.Output, l => l.Contains($"cluster '{clusterId}'", StringComparison.Ordinal) && l.Contains($"silo port {siloPort}, gateway port {gatewayPort}", StringComparison.Ordinal));

        await using var client = await ConnectAsync(host, new StreamGrainsClientOptions
        {
            Gateways = [new IPEndPoint(IPAddress.Loopback, gatewayPort)],
            ClusterId = clusterId,
            ServiceId = "host-test",
        });
        var jobId = await client.SubmitAsync(new JobSpec
        {
            JobType = typeof(ClickCounts).FullName!,
            Parallelism = 2,
            Parameters = JobParameters.Empty.With("events", 0L).With("keys", 100L).With("rate", "2000").With("sink", "none"),
            Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromMilliseconds(500) },
        });
        try
        {
            var status = await client.WaitForStateAsync(jobId, JobState.Running, TimeSpan.FromMinutes(1));
            Assert.Equal(JobState.Running, status.State);
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
            while (status.LatestCheckpoint is null && DateTime.UtcNow < deadline)
            {
                status = await client.GetStatusAsync(jobId, refreshSubtasks: false);
                if (status.LatestCheckpoint is null)
                {
                    await Task.Delay(200);
                }
            }

            Assert.NotNull(status.LatestCheckpoint);
            var jobDirectory = Path.Combine(checkpoints, jobId.Value);
            Assert.True(File.Exists(Path.Combine(jobDirectory, "_job.record")), $"no job record in {jobDirectory}");
            Assert.NotEmpty(Directory.GetFiles(jobDirectory, "_manifest.json", SearchOption.AllDirectories));
            Assert.NotEmpty(Directory.GetFiles(state, "*", SearchOption.AllDirectories));
        }
        finally
        {
            await client.CancelAsync(jobId);
        }
    }

    [Fact]
    public async Task An_unknown_checkpoint_storage_kind_stops_the_host_with_exit_code_2_naming_the_setting()
    {
        var config = WriteConfig(new { StreamGrains = new { CheckpointStorage = new { Kind = "Tape" } } });

        await using var host = HostProcess.Start(config, new Dictionary<string, string>());
        var exitCode = await host.WaitForExitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(2, exitCode);
        Assert.Contains(host.Errors, l => l.Contains("StreamGrains:CheckpointStorage:Kind 'Tape' is not supported", StringComparison.Ordinal));
    }

    /// <summary>Connects once the silo's gateway listens (it opens after the silo joined its cluster).</summary>
    private static async Task<StreamGrainsClient> ConnectAsync(HostProcess host, StreamGrainsClientOptions options)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (true)
        {
            try
            {
                return await StreamGrainsClient.ConnectAsync(options);
            }
            catch (ClusterConnectionException ex) when (ex.Reason == ClusterConnectionFailure.NothingListening && !host.HasExited && DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
            }
        }
    }

    private string WriteConfig(object settings)
    {
        var path = Path.Combine(_root, "settings.json");
        File.WriteAllText(path, JsonSerializer.Serialize(settings));
        return path;
    }

    /// <summary>A <c>run</c> host child process with its output; disposing kills it (with its children).</summary>
    private sealed class HostProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _output = new();
        private readonly ConcurrentQueue<string> _errors = new();
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _waits = new();

        private HostProcess(Process process) => _process = process;

        public IReadOnlyCollection<string> Output => _output;

        public IReadOnlyCollection<string> Errors => _errors;

        public bool HasExited => _process.HasExited;

        public static HostProcess Start(string config, Dictionary<string, string> environment)
        {
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = Path.GetDirectoryName(config)!,
            };
            start.ArgumentList.Add(SiloAssembly());
            start.ArgumentList.Add("run");
            start.ArgumentList.Add("--config");
            start.ArgumentList.Add(config);
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }

            var process = new Process { StartInfo = start };
            var host = new HostProcess(process);
            process.OutputDataReceived += (_, e) => host.OnLine(e.Data, host._output);
            process.ErrorDataReceived += (_, e) => host.OnLine(e.Data, host._errors);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return host;
        }

        public async Task WaitForLineAsync(string text, TimeSpan timeout)
        {
            var wait = _waits.GetOrAdd(text, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            if (_output.Any(l => l.Contains(text, StringComparison.Ordinal)))
            {
                wait.TrySetResult();
            }

            var exited = _process.WaitForExitAsync();
            using var cts = new CancellationTokenSource(timeout);
            var done = await Task.WhenAny(wait.Task, exited, Task.Delay(Timeout.Infinite, cts.Token));
            if (done != wait.Task)
            {
                throw new InvalidOperationException($"The host did not print '{text}' ({(done == exited ? "it exited" : "timeout")}). Output:\n{string.Join('\n', _output)}\nErrors:\n{string.Join('\n', _errors)}");
            }
        }

        public async Task<int> WaitForExitAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            await _process.WaitForExitAsync(cts.Token);
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }

        private void OnLine(string? line, ConcurrentQueue<string> lines)
        {
            if (line is null)
            {
                return;
            }

            lines.Enqueue(line);
            foreach (var (text, wait) in _waits)
            {
                if (line.Contains(text, StringComparison.Ordinal))
                {
                    wait.TrySetResult();
                }
            }
        }

        /// <summary>StreamGrains.Silo.dll of the same configuration as this test assembly (built by the project reference).</summary>
        private static string SiloAssembly()
        {
            var here = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
            var framework = Path.GetFileName(here);
            var configuration = Path.GetFileName(Path.GetDirectoryName(here)!);
            var repository = Path.GetFullPath(Path.Combine(here, "..", "..", "..", "..", ".."));
            var path = Path.Combine(repository, "src", "Silo", "bin", configuration, framework, "StreamGrains.Silo.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException($"The silo host is not built at {path}.", path);
        }
    }
}
