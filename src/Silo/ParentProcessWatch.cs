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

    /// <summary>Whether the process <paramref name="processId"/> is running.</summary>
    public static bool IsAlive(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Polling: the OS offers no portable notification of the exit of a process that is not our child.
        using var timer = new PeriodicTimer(PollInterval);
        try
        {
            while (IsAlive(parentId))
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
