using Microsoft.Extensions.Logging;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// Moves a job off a silo that stops gracefully, as a planned move instead of a failure: the checkpoint coordinator takes
/// a checkpoint at whose barrier every subtask stops (nothing is processed after it), and the job continues in a new
/// attempt restored from that checkpoint on the other silos. The move neither records a failure nor counts against the
/// restart strategy (<see cref="JobRecord.PlannedMoves"/> counts it). When the checkpoint does not complete in time the
/// subtasks resume and the silo's departure is handled as today: the silo watchdog fails the attempt over.
/// </summary>
/// <remarks>
/// When the job grain runs on the leaving silo itself it cannot deploy the next attempt (it is deactivated with the silo
/// right after): it stops the attempt at the checkpoint, records <see cref="JobRecord.MovePending"/>, and its next
/// activation (brought back by the heartbeat of a subtask on another silo) makes the move.
/// </remarks>
internal sealed class PlannedMove(IRestartableJob job, FailoverHandler failover, SubtaskRoster subtasks, Func<ICheckpointCoordinatorGrain> coordinator, ILogger logger)
{
    private readonly HashSet<string> _leaving = new(StringComparer.Ordinal);

    /// <summary>Whether <paramref name="silo"/> announced that it leaves: no subtask is placed on it any more.</summary>
    public bool IsLeaving(SiloAddress silo) => _leaving.Contains(silo.ToString());

    /// <summary>
    /// Silo <paramref name="silo"/> stops gracefully; <paramref name="jobGrainLeaves"/> when it is the job grain's own.
    /// Returns once the checkpoint ended (the next attempt is deployed in the background); true when the job moves.
    /// </summary>
    public async Task<bool> OnSiloLeavingAsync(string silo, TimeSpan maxWait, bool jobGrainLeaves)
    {
        _leaving.Add(silo);
        if (job.Record is not { State: JobState.Running } record || failover.IsRestarting)
        {
            return false;
        }

        var attempt = record.Attempt;
        var hosted = subtasks.Ordered.Count(p => p.Key.Attempt == attempt && p.Value.Silo == silo);
        if (hosted == 0 && !jobGrainLeaves)
        {
            return false;
        }

        if (!record.Spec.Checkpointing.Enabled)
        {
            logger.LogWarning("Job {Job}: silo {Silo} stops, but the job has checkpointing off and cannot move; it fails over when the silo is gone", job.Id, silo);
            return false;
        }

        CheckpointStats stats;
        try
        {
            stats = await coordinator().TriggerStopCheckpoint(attempt, maxWait);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Job {Job}: the checkpoint to move off silo {Silo} could not be taken; the job fails over when the silo is gone", job.Id, silo);
            return false;
        }

        if (stats.Outcome != CheckpointOutcome.Completed)
        {
            logger.LogWarning("Job {Job}: the checkpoint to move off silo {Silo} did not complete in {MaxWait} ({Outcome}: {Message}); the job fails over when the silo is gone", job.Id, silo, maxWait, stats.Outcome, stats.FailureMessage);
            return false;
        }

        if (record.State != JobState.Running || record.Attempt != attempt)
        {
            return false;
        }

        var reason = $"Attempt {attempt} stopped at checkpoint {stats.CheckpointId} and moves to a new attempt because silo {silo}, which ran {hosted} of its subtasks{(jobGrainLeaves ? " and the job grain" : string.Empty)}, stops (planned move, not a failure).";
        if (jobGrainLeaves)
        {
            await job.StopCheckpointingAsync(attempt);
            record.MovePending = reason;
            record.LeavingSilo = silo;
            await job.PersistAsync();
            logger.LogInformation("Job {Job}: {Reason} The job grain's next activation makes the move.", job.Id, reason);
            return true;
        }

        _ = failover.MoveAsync(attempt, reason);
        return true;
    }

    /// <summary>
    /// Makes the move that the previous activation of the job grain recorded in <see cref="JobRecord.MovePending"/> before
    /// its silo stopped; when there is none (or it cannot be made), runs <paramref name="failOver"/> (the failover after a
    /// lost job grain).
    /// </summary>
    public async Task ResumePendingOrAsync(Func<Task> failOver)
    {
        ArgumentNullException.ThrowIfNull(failOver);
        if (job.Record?.LeavingSilo is { } leaving)
        {
            _leaving.Add(leaving);
        }

        if (job.Record is not { State: JobState.Running, MovePending: { } reason } record || !await failover.MoveAsync(record.Attempt, reason))
        {
            await failOver();
        }
    }
}
