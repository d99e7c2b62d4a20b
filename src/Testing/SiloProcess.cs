using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;

namespace StreamGrains.Testing;

/// <summary>
/// One silo of a <see cref="SiloProcessCluster"/>: a child process of the real host, its ports and directory, and its
/// output (all of it in <see cref="SiloProcessLayout.LogFile"/>, the last lines in memory).
/// </summary>
public sealed class SiloProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly Queue<string> _tail = new();
    private readonly int _tailLines;
    private readonly object _lock = new();
    private bool _logClosed;

    private SiloProcess(SiloProcessLayout layout, Process process, StreamWriter log, int tailLines)
    {
        Layout = layout;
        _process = process;
        _log = log;
        _tailLines = tailLines;
    }

    /// <summary>Ports and directories of this silo.</summary>
    public SiloProcessLayout Layout { get; }

    /// <summary>Index of the silo in its cluster.</summary>
    public int Index => Layout.Index;

    /// <summary>The OS process id.</summary>
    public int ProcessId { get; private set; }

    /// <summary>Whether the process has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code once the process has exited.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>Completes when the process has exited and its output is read to the end.</summary>
    public Task Exited { get; private set; } = Task.CompletedTask;

    /// <summary>Starts the host as a child process with <c>run --config {settings file}</c> and the given environment.</summary>
    internal static SiloProcess Start(SiloProcessClusterOptions options, SiloProcessLayout layout, IReadOnlyDictionary<string, string> environment)
    {
        var host = Path.GetFullPath(options.HostPath);
        if (!File.Exists(host))
        {
            throw new FileNotFoundException($"The silo host '{host}' does not exist; build src/Silo or set HostPath to the built StreamGrains.Silo.dll.", host);
        }

        var isDll = host.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var start = new ProcessStartInfo(isDll ? options.DotnetPath : host)
        {
            WorkingDirectory = layout.Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        if (isDll)
        {
            start.ArgumentList.Add(host);
        }

        start.ArgumentList.Add("run");
        start.ArgumentList.Add("--config");
        start.ArgumentList.Add(layout.SettingsFile);

        // Settings come from the generated file only: variables the test process inherited must not override them.
        foreach (var name in start.Environment.Keys.Where(static k => k.StartsWith("STREAMGRAINS_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var log = new StreamWriter(new FileStream(layout.LogFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"'{start.FileName}' did not start.");
        }
        catch (Exception ex) when (ex is Win32Exception or InvalidOperationException)
        {
            log.Dispose();
            throw new InvalidOperationException($"Silo {layout.Index} could not be started ('{start.FileName}'): {ex.Message}", ex);
        }

        var silo = new SiloProcess(layout, process, log, options.LogTailLines) { ProcessId = process.Id };
        silo.Exited = silo.PumpAsync();
        return silo;
    }

    /// <summary>The last lines the silo printed (stdout and stderr, stderr lines marked <c>[err]</c>).</summary>
    public string LogTail()
    {
        lock (_lock)
        {
            return string.Join(System.Environment.NewLine, _tail);
        }
    }

    /// <summary>Kills the process at once (SIGKILL on Unix): no shutdown code runs, like a crashed machine's silo.</summary>
    public async Task KillAsync()
    {
        try
        {
            _process.Kill();
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }

        await Exited;
    }

    /// <summary>
    /// Asks the process to stop (SIGTERM on Unix, which the host handles as a graceful shutdown) and waits until it
    /// exits; kills it when it is still running after <paramref name="timeout"/>. Returns the exit code.
    /// </summary>
    /// <exception cref="TimeoutException">When the silo did not stop within <paramref name="timeout"/> (it was killed).</exception>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            if (OperatingSystem.IsWindows())
            {
                throw new PlatformNotSupportedException("A graceful stop needs SIGTERM, which Windows does not have; use KillAsync.");
            }

            await SendTermAsync();
        }

        using var timeoutSource = new CancellationTokenSource(timeout);
        try
        {
            await Exited.WaitAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
            throw new TimeoutException($"Silo {Index} did not stop within {timeout.TotalSeconds:0} s of SIGTERM and was killed. Its last output:{System.Environment.NewLine}{LogTail()}");
        }

        return _process.ExitCode;
    }

    /// <summary>Kills the process if it still runs and releases it.</summary>
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(TimeSpan.FromSeconds(10));
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or Win32Exception)
        {
            // Already gone.
        }

        _process.Dispose();
        lock (_lock)
        {
            _logClosed = true;
            _log.Dispose();
        }
    }

    /// <summary>Sends SIGTERM with <c>kill -TERM</c> (.NET's <see cref="Process.Kill()"/> only sends SIGKILL).</summary>
    private async Task SendTermAsync()
    {
        var start = new ProcessStartInfo("kill") { UseShellExecute = false, RedirectStandardError = true };
        start.ArgumentList.Add("-TERM");
        start.ArgumentList.Add(ProcessId.ToString(CultureInfo.InvariantCulture));
        using var kill = Process.Start(start) ?? throw new InvalidOperationException("'kill' did not start.");
        var error = await kill.StandardError.ReadToEndAsync();
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0 && !_process.HasExited)
        {
            throw new InvalidOperationException($"'kill -TERM {ProcessId}' failed with exit code {kill.ExitCode}: {error}");
        }
    }

    /// <summary>Copies stdout and stderr into the log file and the tail until the process ends.</summary>
    private async Task PumpAsync()
    {
        await Task.WhenAll(
            Task.Run(() => PumpAsync(_process.StandardOutput, string.Empty)),
            Task.Run(() => PumpAsync(_process.StandardError, "[err] ")));
        await _process.WaitForExitAsync();
        Append($"[kit] silo {Index} (pid {ProcessId}) exited with code {_process.ExitCode.ToString(CultureInfo.InvariantCulture)}");
    }

    private async Task PumpAsync(StreamReader reader, string prefix)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            Append(prefix + line);
        }
    }

    private void Append(string line)
    {
        lock (_lock)
        {
            if (!_logClosed)
            {
                _log.WriteLine(line);
            }

            _tail.Enqueue(line);
            if (_tail.Count > _tailLines)
            {
                _tail.Dequeue();
            }
        }
    }
}
