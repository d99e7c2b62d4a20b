using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace StreamGrains.Silo;

/// <summary>
/// Stops the silo when the process that started it is gone: a test or supervisor sets <c>STREAMGRAINS_PARENT_PID</c>
/// to its own process id, and this service polls that process, so a killed parent (even by SIGKILL) leaves no silo
/// behind. The silo first stops gracefully; if that takes longer than <see cref="GracePeriod"/> the process kills itself.
/// </summary>
internal sealed class ParentProcessWatch(int parentId, IHostApplicationLifetime lifetime) : BackgroundService
{
    /// <summary>The environment variable that names the parent process.</summary>
    public const string VariableName = "STREAMGRAINS_PARENT_PID";

    /// <summary>How long a graceful stop may take once the parent is gone.</summary>
    public static readonly TimeSpan GracePeriod = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Registers the watch when <see cref="VariableName"/> is set; adds a message to <paramref name="errors"/> when its
    /// value is not a process id.
    /// </summary>
    public static void AddIfRequested(IServiceCollection services, List<string> errors)
    {
        var value = Environment.GetEnvironmentVariable(VariableName);
        if (string.IsNullOrWhiteSpace(value))
        {
            return;
        }

        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id < 1)
        {
            errors.Add($"{VariableName} '{value}' is not a process id.");
            return;
        }

        services.AddHostedService(sp => new ParentProcessWatch(id, sp.GetRequiredService<IHostApplicationLifetime>()));
    }

    /// <summary>
    /// When the process <paramref name="processId"/> started, or null when it is not running (gone, or a zombie that has
    /// exited and waits to be reaped).
    /// </summary>
    public static DateTime? StartTimeOf(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return process.HasExited || IsZombie(processId) ? null : process.StartTime;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    /// <summary>Whether Linux reports the process as a zombie (state <c>Z</c> in <c>/proc/{pid}/stat</c>).</summary>
    private static bool IsZombie(int processId)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{processId.ToString(CultureInfo.InvariantCulture)}/stat");
            var end = stat.LastIndexOf(')');
            return end >= 0 && end + 2 < stat.Length && stat[end + 2] == 'Z';
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Polling: the OS offers no portable notification of the exit of a process that is not our child. The start
        // time tells the parent from a later process that was given the same id.
        using var timer = new PeriodicTimer(PollInterval);
        var started = StartTimeOf(parentId);
        try
        {
            while (started is not null && StartTimeOf(parentId) == started)
            {
                await timer.WaitForNextTickAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }

        await Console.Error.WriteLineAsync($"Parent process {parentId.ToString(CultureInfo.InvariantCulture)} ({VariableName}) is gone; stopping the silo.");
        _ = Task.Delay(GracePeriod, CancellationToken.None).ContinueWith(
            static _ =>
            {
                Console.Error.WriteLine($"The silo did not stop within {GracePeriod.TotalSeconds:0} s after its parent process was gone; killing it.");
                using var self = Process.GetCurrentProcess();
                self.Kill();
            },
            TaskScheduler.Default);
        lifetime.StopApplication();
    }
}
