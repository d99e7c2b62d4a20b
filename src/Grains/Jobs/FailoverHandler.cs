using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Jobs;

/// <summary>What the failover handler does to the job it restarts; the job grain implements it.</summary>
internal interface IRestartableJob
{
    JobId Id { get; }

    /// <summary>The job's record; null until the job was submitted.</summary>
    JobRecord? Record { get; }

    JobPlan Plan { get; }

    /// <summary>Changes the job's state (and wakes clients waiting for a change); does not persist.</summary>
    void SetState(JobState state);

    /// <summary>Writes the record to checkpoint storage; false when that failed.</summary>
    Task<bool> PersistAsync();

    /// <summary>
    /// Whether another activation of the job grain wrote the job's record since this one last read or wrote it (a
    /// write was refused): this activation no longer owns the job and must not stop, deploy or restart anything.
    /// </summary>
    bool Superseded { get; }

    /// <summary>Stops watching the attempt's silos and stops its checkpoints.</summary>
    Task StopCheckpointingAsync(int attempt);

    /// <summary>Collects the final counters of the attempt's subtasks and stops them.</summary>
    Task ReleaseSubtasksAsync(int attempt, StopReason reason);

    /// <summary>Ends the job as failed with <paramref name="failure"/>.</summary>
    Task FailForGoodAsync(JobFailure failure);

    /// <summary>Deploys and starts <paramref name="attempt"/>, restoring <paramref name="restore"/>; the job is Running when it returns <see cref="DeployOutcome.Started"/>.</summary>
    Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAttemptAsync(int attempt, CompletedCheckpoint? restore, bool ownsFiles);

    /// <summary>The job's retained completed checkpoints, newest first.</summary>
    Task<IReadOnlyList<CompletedCheckpoint>> GetCompletedCheckpointsAsync();

    /// <summary>Removes a checkpoint that cannot be restored from the retained ones and deletes it.</summary>
    Task DiscardCheckpointAsync(long checkpointId, string reason);
}

/// <summary>
/// Restarts a job whose attempt failed: stops the attempt, asks the job's restart strategy whether and when to restart
/// (fixed delay or exponential backoff, up to a number of restarts; then the job fails for good), and deploys the next
/// attempt from the newest checkpoint that can be restored. A checkpoint with a missing file, or whose state a subtask
/// cannot read, is discarded with a warning and the one before it is tried; without checkpoints the job restarts from
/// the snapshot it was submitted with, or empty.
/// </summary>
/// <remarks>
/// <para>No error leaves the job Restarting: an error that says something about one checkpoint (a corrupt manifest, a
/// missing or unreadable file) makes it unreadable and the restart falls back to the one before; any other (storage that
/// cannot list or read the checkpoints, a deploy that throws) fails this restart with the cause (kind
/// <see cref="JobFailureKind.Storage"/>, <see cref="JobFailureKind.RestoreFailed"/> or
/// <see cref="JobFailureKind.Runtime"/>) in the job's warnings, and the restart strategy decides about the next one,
/// until the job is Failed with that cause.</para>
/// <para>One restart at a time: a failure reported while a restart is under way is kept and handled after it, and only if
/// it concerns the attempt then running (failures of the attempt being replaced are expected and dropped).</para>
/// </remarks>
internal sealed class FailoverHandler(IRestartableJob job, CheckpointCleaner cleaner, RestorePointReader restorePoints, ICheckpointStorage storage, TimeProvider time, ILogger logger)
{
    private bool _restarting;
    private (JobFailure Failure, int Attempt)? _failureWhileRestarting;

    /// <summary>Whether a restart is under way.</summary>
    public bool IsRestarting => _restarting;

    /// <summary>Handles the failure of <paramref name="failedAttempt"/>; nothing happens when the job has moved on from it or ended.</summary>
    public async Task FailoverAsync(JobFailure failure, int failedAttempt)
    {
        if (job.Superseded || job.Record is not { } record || record.State.IsTerminal() || record.State == JobState.Cancelling || failedAttempt != record.Attempt)
        {
            return;
        }

        if (_restarting)
        {
            _failureWhileRestarting = (failure, failedAttempt);
            return;
        }

        _restarting = true;
        try
        {
            while (true)
            {
                logger.LogWarning("Job {Job} attempt {Attempt} failed: {Failure}", job.Id, record.Attempt, failure);
                var old = record.Attempt;
                await QuietlyAsync(() => job.StopCheckpointingAsync(old), "stopping the checkpoints of the failed attempt");
                var restarts = record.Restarts + 1;
                if (record.Spec.EffectiveRestart.DelayBefore(restarts) is not { } delay)
                {
                    await FailForGoodAsync(failure);
                    return;
                }

                record.Restarts = restarts;
                record.Warnings.Add($"Attempt {old} failed and the job restarts ({restarts} of {record.Spec.EffectiveRestart.MaxAttempts} restarts): {failure}");
                job.SetState(JobState.Restarting);
                await QuietlyAsync(job.PersistAsync, "writing the job's record");
                if (IsSuperseded())
                {
                    return;
                }

                await QuietlyAsync(() => job.ReleaseSubtasksAsync(old, StopReason.Failover), "stopping the subtasks of the failed attempt");
                await Task.Delay(delay, time);
                if (record.State != JobState.Restarting)
                {
                    return;
                }

                var (outcome, next) = await RestartGuardedAsync(record);
                if (outcome != DeployOutcome.Failed)
                {
                    return;
                }

                failure = next!;
            }
        }
        finally
        {
            _restarting = false;
            if (_failureWhileRestarting is { } pending)
            {
                _failureWhileRestarting = null;
                _ = FailoverAsync(pending.Failure, pending.Attempt);
            }
        }
    }

    /// <summary>
    /// Restarts from the newest restorable checkpoint; an exception nobody expected counts as a failed restart (kind
    /// <see cref="JobFailureKind.RestoreFailed"/>, the restart strategy decides about the next one), so that the job never
    /// stays Restarting.
    /// </summary>
    private async Task<(DeployOutcome Outcome, JobFailure? Failure)> RestartGuardedAsync(JobRecord record)
    {
        try
        {
            return await RestartFromLatestAsync(record);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Job {Job}: restarting failed", job.Id);
            return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.RestoreFailed, operatorUid: null, subtaskIndex: -1) with { Message = $"Restarting failed: {ex.Message}" });
        }
    }

    /// <summary>Ends the job as failed; should even that throw, the job is marked Failed in memory at least, never left Restarting.</summary>
    private async Task FailForGoodAsync(JobFailure failure)
    {
        try
        {
            await job.FailForGoodAsync(failure);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Job {Job}: ending the job as failed ({Failure}) did not complete", job.Id, failure);
            if (job.Record is { } record && !record.State.IsTerminal())
            {
                record.Failure = failure;
                job.SetState(JobState.Failed);
            }
        }
    }

    /// <summary>Runs a step of the restart whose failure must not stop it (the step logs or retries on its own otherwise).</summary>
    private async Task QuietlyAsync(Func<Task> step, string what)
    {
        try
        {
            await step();
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Job {Job}: {What} failed; the restart goes on", job.Id, what);
        }
    }

    private async Task<(DeployOutcome Outcome, JobFailure? Failure)> RestartFromLatestAsync(JobRecord record)
    {
        var candidates = new List<(CompletedCheckpoint Checkpoint, bool Owned)>();
        IReadOnlySet<string>? stored = null;
        if (record.Spec.Checkpointing.Enabled)
        {
            try
            {
                candidates.AddRange((await job.GetCompletedCheckpointsAsync()).Select(static c => (c, true)));
            }
            catch (Exception ex)
            {
                // The coordinator could not list or read the job's checkpoints (storage unreachable, or a grain call that
                // failed): nothing is known about the checkpoints, which stay; this restart fails and the strategy decides.
                logger.LogWarning(ex, "Job {Job}: reading its completed checkpoints failed", job.Id);
                return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.Storage, operatorUid: null, subtaskIndex: -1) with { Message = $"Reading the job's completed checkpoints from checkpoint storage failed: {ex.Message}" });
            }

            if (candidates.Count > 0)
            {
                stored = await ListStoredAsync(candidates);
            }
        }

        if (candidates.Count == 0 && record.Spec.RestoreFrom is { } restoreFrom)
        {
            var (original, errors, transient) = await restorePoints.TryReadAsync(restoreFrom, job.Plan, record.Spec);
            if (original is null)
            {
                var failure = JobFailure.Of(transient ? JobFailureKind.Storage : JobFailureKind.RestoreFailed, string.Join(" ", errors));
                if (transient)
                {
                    return (DeployOutcome.Failed, failure);
                }

                await FailForGoodAsync(failure);
                return (DeployOutcome.RestoreFailed, failure);
            }

            candidates.Add((original, record.Spec.RestoreMode == RestoreMode.Claim));
        }

        foreach (var (checkpoint, owned) in candidates)
        {
            string? missing;
            try
            {
                missing = await CheckpointFileCheck.FindMissingFileAsync(storage, checkpoint.Manifest, stored);
            }
            catch (CheckpointStorageException ex) when (ex is not CheckpointStorageCorruptException)
            {
                // Storage cannot tell now whether the files are there (unreachable, throttled): that says nothing about
                // the checkpoint, which stays; this restart fails and the restart strategy decides about the next one.
                logger.LogWarning(ex, "Job {Job}: checking the files of checkpoint {Checkpoint} failed", job.Id, checkpoint.CheckpointId);
                return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.Storage, operatorUid: null, subtaskIndex: -1) with { Message = $"Checking the files of checkpoint {checkpoint.CheckpointId} failed: {ex.Message}" });
            }
            catch (Exception ex)
            {
                // The manifest names a file storage refuses to look up (a path it cannot hold): the checkpoint is unreadable.
                await DiscardAsync(record, checkpoint, owned, $"its files cannot be checked: {ex.Message}");
                continue;
            }

            if (missing is not null)
            {
                await DiscardAsync(record, checkpoint, owned, $"its file '{missing}' is missing from checkpoint storage");
                continue;
            }

            record.Attempt++;
            await job.PersistAsync();
            if (IsSuperseded())
            {
                return (DeployOutcome.Superseded, null);
            }

            var (outcome, failure) = await DeployAsync(record.Attempt, checkpoint, owned);
            if (outcome != DeployOutcome.RestoreFailed)
            {
                return (outcome, failure);
            }

            await DiscardAsync(record, checkpoint, owned, failure?.Message ?? "its state could not be read");
        }

        if (candidates.Count > 0)
        {
            var failure = JobFailure.Of(JobFailureKind.RestoreFailed, "No retained checkpoint of the job could be restored; see the warnings.");
            await FailForGoodAsync(failure);
            return (DeployOutcome.RestoreFailed, failure);
        }

        record.Attempt++;
        await job.PersistAsync();
        return IsSuperseded() ? (DeployOutcome.Superseded, null) : await DeployAsync(record.Attempt, restore: null, ownsFiles: false);
    }

    /// <summary>Every path storage lists for the job, or null when the listing did not complete (then each file is asked for).</summary>
    private async Task<IReadOnlySet<string>?> ListStoredAsync(List<(CompletedCheckpoint Checkpoint, bool Owned)> candidates)
    {
        try
        {
            return (await cleaner.CollectOrphansAsync(job.Id.Value, candidates.Select(static c => c.Checkpoint))).Listed;
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Job {Job}: listing its files in checkpoint storage failed; each file is checked on its own", job.Id);
            return null;
        }
    }

    /// <summary>
    /// Whether another activation of the job grain took the job over (its record write was refused): this one then stops
    /// here, so that two activations never deploy and stop each other's attempts in turn (each would see the other's
    /// subtasks as "already deployed" or lost, and the restarts would run out).
    /// </summary>
    private bool IsSuperseded()
    {
        if (!job.Superseded)
        {
            return false;
        }

        logger.LogWarning("Job {Job}: another activation of the job grain wrote its record; this activation stops, deploys and restarts nothing more", job.Id);
        return true;
    }

    /// <summary>Deploys an attempt; an exception is a failed deploy (the restart strategy applies), not a hung restart.</summary>
    private async Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAsync(int attempt, CompletedCheckpoint? restore, bool ownsFiles)
    {
        try
        {
            return await job.DeployAttemptAsync(attempt, restore, ownsFiles);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Job {Job}: deploying attempt {Attempt} failed", job.Id, attempt);
            return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.Runtime, operatorUid: null, subtaskIndex: -1));
        }
    }

    private async Task DiscardAsync(JobRecord record, CompletedCheckpoint checkpoint, bool owned, string reason)
    {
        var warning = $"Checkpoint {checkpoint.CheckpointId} ({checkpoint.ManifestPath}) cannot be restored: {reason}; falling back to an older checkpoint.";
        logger.LogWarning("Job {Job}: {Warning}", job.Id, warning);
        record.Warnings.Add(warning);
        job.SetState(record.State);
        if (owned)
        {
            await QuietlyAsync(() => job.DiscardCheckpointAsync(checkpoint.CheckpointId, reason), $"discarding checkpoint {checkpoint.CheckpointId}");
        }
    }

    /// <summary>
    /// A planned move of <paramref name="attempt"/> (its subtasks stopped at a completed checkpoint): stops the attempt and
    /// deploys the next one from the newest checkpoint that can be restored, as a restart does, but without asking the
    /// restart strategy, counting a restart or recording a failure. A deployment that then fails is handled as any
    /// failure of the new attempt. False when the job does not run <paramref name="attempt"/> or a restart is under way.
    /// </summary>
    public async Task<bool> MoveAsync(int attempt, string reason)
    {
        if (job.Record is not { State: JobState.Running } record || record.Attempt != attempt || _restarting)
        {
            return false;
        }

        _restarting = true;
        (DeployOutcome Outcome, JobFailure? Failure) result = (DeployOutcome.Superseded, null);
        try
        {
            logger.LogInformation("Job {Job}: {Reason}", job.Id, reason);
            await job.StopCheckpointingAsync(attempt);
            record.PlannedMoves++;
            (record.MovePending, record.LeavingSilo) = (null, null);
            record.Warnings.Add(reason);
            job.SetState(JobState.Restarting);
            await job.PersistAsync();
            if (IsSuperseded())
            {
                return true;
            }

            await job.ReleaseSubtasksAsync(attempt, StopReason.Failover);
            if (record.State == JobState.Restarting)
            {
                result = await RestartFromLatestAsync(record);
            }

            return true;
        }
        finally
        {
            _restarting = false;
            var pending = _failureWhileRestarting;
            _failureWhileRestarting = null;
            if (result is { Outcome: DeployOutcome.Failed, Failure: { } failure })
            {
                _ = FailoverAsync(failure, record.Attempt);
            }
            else if (pending is { } failed)
            {
                _ = FailoverAsync(failed.Failure, failed.Attempt);
            }
        }
    }
}
