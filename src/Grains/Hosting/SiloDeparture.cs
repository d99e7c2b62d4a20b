using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StreamGrains.Runtime;

namespace StreamGrains.Grains;

/// <summary>
/// Moves the work of a silo that stops gracefully (SIGTERM, host stop) away before its grains are deactivated: at the stop
/// of <see cref="ServiceLifecycleStage.Active"/>, while grain calls still work and the silo is still a member, it tells
/// the job grain of every job with a subtask or its job grain on this silo that the silo leaves
/// (<see cref="IJobGrain.OnSiloLeaving"/>) and waits, up to <see cref="StreamGrainsOptions.LeaveTimeout"/>, for each to
/// take the checkpoint it moves away with. Only then are the silo's subtasks told to stop
/// (<see cref="SubtasksMustStop"/>). A stop that is not graceful (its cancellation already requested) moves nothing.
/// </summary>
internal sealed class SiloDeparture(
    IGrainFactory grains,
    ILocalSiloDetails silo,
    IOptions<StreamGrainsOptions> options,
    IHostApplicationLifetime lifetime,
    ILogger<SiloDeparture> logger) : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private static readonly GrainType JobGrainType = GrainType.Create("streamgrains.job");
    private static readonly GrainType SubtaskGrainType = GrainType.Create("streamgrains.subtask");
    private readonly CancellationTokenSource _subtasksMustStop = new();

    /// <summary>
    /// Cancelled when the silo's subtasks must stop: after the jobs moved away on a graceful stop, at once on one that is
    /// not graceful, and at the latest when the host has stopped.
    /// </summary>
    public CancellationToken SubtasksMustStop => _subtasksMustStop.Token;

    public void Participate(ISiloLifecycle lifecycle)
    {
        ArgumentNullException.ThrowIfNull(lifecycle);
        lifetime.ApplicationStopped.Register(_subtasksMustStop.Cancel);
        lifecycle.Subscribe(nameof(SiloDeparture), ServiceLifecycleStage.Active, static _ => Task.CompletedTask, OnStopAsync);
    }

    public void Dispose() => _subtasksMustStop.Dispose();

    private async Task OnStopAsync(CancellationToken cancellationToken)
    {
        try
        {
            var timeout = options.Value.LeaveTimeout;
            if (!cancellationToken.IsCancellationRequested && timeout > TimeSpan.Zero)
            {
                await MoveJobsAsync(timeout, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Silo {Silo} stops: moving its jobs away failed; they fail over when the silo is gone", silo.SiloAddress);
        }
        finally
        {
            await _subtasksMustStop.CancelAsync();
        }
    }

    private async Task MoveJobsAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var address = silo.SiloAddress;
        var management = grains.GetGrain<IManagementGrain>(0);
        var activations = await management.GetDetailedGrainStatistics(null, [address], cancellationToken).WaitAsync(timeout, cancellationToken);
        var jobs = JobsOf(activations.Select(static a => a.GrainId));
        if (jobs.Count == 0)
        {
            return;
        }

        logger.LogInformation("Silo {Silo} stops: moving {Jobs} jobs with grains on it away (waiting up to {Timeout} for their checkpoints)", address, jobs.Count, timeout);
        var moves = jobs.Select(async job =>
        {
            try
            {
                var moved = await grains.GetGrain<IJobGrain>(job).OnSiloLeaving(address.ToString(), timeout).WaitAsync(timeout + TimeSpan.FromSeconds(2), cancellationToken);
                logger.LogInformation("Job {Job}: {Outcome}", job, moved ? "stopped at a checkpoint; it moves to the other silos" : "not moved (nothing of its attempt ran here, or its checkpoint did not complete: it fails over)");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Job {Job}: moving it off the stopping silo failed; it fails over when the silo is gone", job);
            }
        });
        await Task.WhenAll(moves);
    }

    /// <summary>The ids of the jobs whose job grain or subtask grains are among <paramref name="grainIds"/>.</summary>
    internal static IReadOnlySet<string> JobsOf(IEnumerable<GrainId> grainIds)
    {
        var jobs = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var id in grainIds)
        {
            if (id.Type.Equals(JobGrainType))
            {
                jobs.Add(id.Key.ToString()!);
            }
            else if (id.Type.Equals(SubtaskGrainType))
            {
                jobs.Add(SubtaskId.Parse(id.Key.ToString()!).Job.Value);
            }
        }

        return jobs;
    }
}
