using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// The job grain's watch over its checkpoint coordinator, whose state lives only in its activation: while an attempt
/// runs, <see cref="CheckAsync"/> (on the job grain's watchdog timer) asks the coordinator which attempt it runs; a
/// coordinator that runs none was lost with its silo and reactivated empty, so the watch starts it again (a new epoch
/// in the job record, the same subtasks, <see cref="CoordinatorStart.Resumed"/>), and it reloads the retained
/// checkpoints from their manifests. A stop-with-savepoint the lost coordinator was taking is aborted: every subtask is
/// told to resume (again on each check until a later checkpoint completes, in case a barrier was still on its way),
/// the savepoint's directory is deleted, and the savepoint reports failed.
/// </summary>
internal sealed class CoordinatorWatch(ICheckpointCoordinatorGrain coordinator, IGrainFactory grains, CheckpointCleaner cleaner, TimeProvider time, ILogger logger, JobId job)
{
    private CoordinatorStart? _start;
    private (int Attempt, SavepointStatus Status)? _savepoint;
    private (int Attempt, long CheckpointId)? _resuming;

    /// <summary>The last savepoint this watch aborted, reported in place of the lost coordinator's.</summary>
    public SavepointStatus? Aborted { get; private set; }

    /// <summary>The coordinator runs <paramref name="start"/>.</summary>
    public void Started(CoordinatorStart? start)
    {
        _start = start;
        _savepoint = null;
        _resuming = null;
    }

    /// <summary>The coordinator started a stop-with-savepoint in <paramref name="attempt"/>.</summary>
    public Task SavepointStarted(int attempt, SavepointStatus savepoint)
    {
        _savepoint = (attempt, savepoint);
        return Task.CompletedTask;
    }

    /// <summary>A savepoint ended (completed or failed) where its coordinator could report it: nothing to abort.</summary>
    public void SavepointEnded(SavepointStatus status)
    {
        if (status.IsDone && IsInFlight(status.CheckpointId))
        {
            _savepoint = null;
        }
    }

    /// <summary>The savepoint of <paramref name="checkpointId"/> if it is the one in flight (its coordinator may be lost).</summary>
    public bool IsInFlight(long checkpointId) => _savepoint is { } running && running.Status.CheckpointId == checkpointId;

    /// <summary>The coordinator's checkpoint statistics and latest savepoint (or the one this watch aborted); empty when it does not answer in time.</summary>
    public async Task<(CheckpointStats? Latest, IReadOnlyList<CheckpointStats> Recent, SavepointStatus? Savepoint)> GetStatsAsync()
    {
        try
        {
            var (latest, recent) = await coordinator.GetStats().WaitAsync(GrainSubtaskGateway.CallTimeout);
            var savepoint = await coordinator.GetLatestSavepoint().WaitAsync(GrainSubtaskGateway.CallTimeout);
            return (latest, recent, savepoint ?? Aborted);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogDebug(ex, "Checkpoint statistics of job {Job} unavailable", job);
            return (null, [], Aborted);
        }
    }

    /// <summary>When the job ends: deletes every checkpoint through the coordinator, unless the spec retains them.</summary>
    public async Task DeleteCheckpointsUnlessRetainedAsync(JobSpec spec)
    {
        if (spec.Checkpointing.Enabled && !spec.Checkpointing.RetainOnCancel)
        {
            try
            {
                await coordinator.DeleteAll();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Job {Job}: deleting its checkpoints failed", job);
            }
        }
    }

    /// <summary>Takes a savepoint through the coordinator; when the coordinator fails while a stop-with-savepoint is in flight, aborts it and reports it failed.</summary>
    public async Task<SavepointStatus> TriggerSavepointAsync(int attempt, SavepointRequest request, TimeSpan maxWait)
    {
        try
        {
            var status = await coordinator.TriggerSavepoint(attempt, request, maxWait);
            SavepointEnded(status);
            return status;
        }
        catch (Exception ex) when (ex is not InvalidOperationException and not OperationCanceledException)
        {
            if (await AbortSavepointAsync(attempt, $"its checkpoint coordinator failed: {ex.Message}") is { } aborted)
            {
                return aborted;
            }

            throw;
        }
    }

    /// <summary>Waits for a savepoint through the coordinator; one this watch aborted (or must abort now: the coordinator lost it) reports failed.</summary>
    public async Task<SavepointStatus> WaitForSavepointAsync(int attempt, long checkpointId, TimeSpan maxWait)
    {
        if (Aborted is { } aborted && aborted.CheckpointId == checkpointId)
        {
            return aborted;
        }

        try
        {
            var status = await coordinator.WaitForSavepoint(checkpointId, maxWait);
            SavepointEnded(status);
            return status;
        }
        catch (Exception ex) when (ex is not OperationCanceledException && IsInFlight(checkpointId))
        {
            return await AbortSavepointAsync(attempt, $"its checkpoint coordinator lost it: {ex.Message}") ?? throw new InvalidOperationException($"Job {job} has no record of a savepoint taken as checkpoint {checkpointId}.", ex);
        }
    }

    /// <summary>
    /// Starts the coordinator again when it does not run <paramref name="attempt"/> (aborting a savepoint in flight);
    /// <paramref name="nextEpoch"/> raises and stores the record's epoch (null when it could not be stored: the next check
    /// tries again), <paramref name="isCurrent"/> tells whether the attempt still runs after each wait.
    /// </summary>
    public async Task CheckAsync(int attempt, Func<Task<long?>> nextEpoch, Func<bool> isCurrent)
    {
        if (_start is not { } start || start.Attempt != attempt)
        {
            return;
        }

        (int Attempt, long Epoch) running;
        try
        {
            running = await coordinator.GetAttempt().WaitAsync(GrainSubtaskGateway.CallTimeout);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogDebug(ex, "Job {Job}: the checkpoint coordinator did not answer; asking again at the next check", job);
            return;
        }

        if (running.Attempt == attempt && running.Epoch == start.Epoch)
        {
            await ResumeSubtasksAsync(attempt, start);
            return;
        }

        logger.LogWarning("Job {Job}: the checkpoint coordinator runs attempt {Running} (epoch {RunningEpoch}), not {Attempt} (epoch {Epoch}): it was lost with its silo; starting it again", job, running.Attempt, running.Epoch, attempt, start.Epoch);
        await AbortSavepointAsync(attempt, "its checkpoint coordinator was lost with its silo");
        if (await nextEpoch() is not { } epoch || !isCurrent())
        {
            return;
        }

        var restart = start with { Epoch = epoch, Resumed = true };
        try
        {
            await coordinator.Start(restart).WaitAsync(GrainSubtaskGateway.CallTimeout);
            if (isCurrent() && _start == start)
            {
                _start = restart;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Job {Job}: starting the checkpoint coordinator again failed; trying again at the next check", job);
        }
    }

    /// <summary>
    /// Aborts the stop-with-savepoint in flight in <paramref name="attempt"/>, if any: subtasks resume, its directory is
    /// deleted, and <see cref="Aborted"/> reports it failed with <paramref name="reason"/>.
    /// </summary>
    public async Task<SavepointStatus?> AbortSavepointAsync(int attempt, string reason)
    {
        if (_savepoint is not { } savepoint || savepoint.Attempt != attempt)
        {
            return null;
        }

        _savepoint = null;
        var status = savepoint.Status with { Phase = SavepointPhase.Failed, FailureMessage = reason, Duration = time.GetUtcNow() - savepoint.Status.TriggeredAt };
        Aborted = status;
        logger.LogWarning("Job {Job}: savepoint {Checkpoint} into {Directory} aborted: {Reason}; its subtasks resume", job, status.CheckpointId, status.Directory, reason);
        _resuming = (attempt, status.CheckpointId);
        if (_start is { } start && start.Attempt == attempt)
        {
            Resume(start, status.CheckpointId);
        }

        await cleaner.DeletePrefixAsync(status.Directory);
        return status;
    }

    /// <summary>After an aborted savepoint: tells the subtasks to resume until the coordinator completed a later checkpoint.</summary>
    private async Task ResumeSubtasksAsync(int attempt, CoordinatorStart start)
    {
        if (_resuming is not { } resuming || resuming.Attempt != attempt)
        {
            return;
        }

        try
        {
            var (latest, _) = await coordinator.GetStats().WaitAsync(GrainSubtaskGateway.CallTimeout);
            if (latest?.CheckpointId > resuming.CheckpointId)
            {
                _resuming = null;
                return;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogDebug(ex, "Job {Job}: checkpoint statistics unavailable", job);
        }

        Resume(start, resuming.CheckpointId);
    }

    private void Resume(CoordinatorStart start, long checkpointId)
    {
        foreach (var subtask in start.Subtasks)
        {
            _ = grains.GetGrain<ISubtaskGrain>(subtask.GrainKey).ResumeAfterSavepoint(checkpointId);
        }
    }
}
