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
/// One restart at a time: a failure reported while a restart is under way is kept and handled after it, and only if it
/// concerns the attempt then running (failures of the attempt being replaced are expected and dropped).
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
        if (job.Record is not { } record || record.State.IsTerminal() || record.State == JobState.Cancelling || failedAttempt != record.Attempt)
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
                await job.StopCheckpointingAsync(old);
                var restarts = record.Restarts + 1;
                if (record.Spec.EffectiveRestart.DelayBefore(restarts) is not { } delay)
                {
                    await job.FailForGoodAsync(failure);
                    return;
                }

                record.Restarts = restarts;
                record.Warnings.Add($"Attempt {old} failed and the job restarts ({restarts} of {record.Spec.EffectiveRestart.MaxAttempts} restarts): {failure}");
                job.SetState(JobState.Restarting);
                await job.PersistAsync();
                await job.ReleaseSubtasksAsync(old, StopReason.Failover);
                await Task.Delay(delay, time);
                if (record.State != JobState.Restarting)
                {
                    return;
                }

                var (outcome, next) = await RestartFromLatestAsync(record);
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

    private async Task<(DeployOutcome Outcome, JobFailure? Failure)> RestartFromLatestAsync(JobRecord record)
    {
        var candidates = new List<(CompletedCheckpoint Checkpoint, bool Owned)>();
        IReadOnlySet<string>? stored = null;
        if (record.Spec.Checkpointing.Enabled)
        {
            candidates.AddRange((await job.GetCompletedCheckpointsAsync()).Select(static c => (c, true)));
            if (candidates.Count > 0)
            {
                stored = (await cleaner.CollectOrphansAsync(job.Id.Value, candidates.Select(static c => c.Checkpoint))).Listed;
            }
        }

        if (candidates.Count == 0 && record.Spec.RestoreFrom is { } restoreFrom)
        {
            var (original, errors) = await restorePoints.ReadAsync(restoreFrom, job.Plan, record.Spec);
            if (original is null)
            {
                var failure = JobFailure.Of(JobFailureKind.RestoreFailed, string.Join(" ", errors));
                await job.FailForGoodAsync(failure);
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
            catch (CheckpointStorageException ex)
            {
                // Storage cannot tell now whether the files are there (unreachable, throttled): that says nothing about
                // the checkpoint, which stays; this restart fails and the restart strategy decides about the next one.
                logger.LogWarning(ex, "Job {Job}: checking the files of checkpoint {Checkpoint} failed", job.Id, checkpoint.CheckpointId);
                return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.Storage, operatorUid: null, subtaskIndex: -1) with { Message = $"Checking the files of checkpoint {checkpoint.CheckpointId} failed: {ex.Message}" });
            }

            if (missing is not null)
            {
                await DiscardAsync(record, checkpoint, owned, $"its file '{missing}' is missing from checkpoint storage");
                continue;
            }

            record.Attempt++;
            await job.PersistAsync();
            var (outcome, failure) = await job.DeployAttemptAsync(record.Attempt, checkpoint, owned);
            if (outcome != DeployOutcome.RestoreFailed)
            {
                return (outcome, failure);
            }

            await DiscardAsync(record, checkpoint, owned, failure?.Message ?? "its state could not be read");
        }

        if (candidates.Count > 0)
        {
            var failure = JobFailure.Of(JobFailureKind.RestoreFailed, "No retained checkpoint of the job could be restored; see the warnings.");
            await job.FailForGoodAsync(failure);
            return (DeployOutcome.RestoreFailed, failure);
        }

        record.Attempt++;
        await job.PersistAsync();
        return await job.DeployAttemptAsync(record.Attempt, restore: null, ownsFiles: false);
    }

    private async Task DiscardAsync(JobRecord record, CompletedCheckpoint checkpoint, bool owned, string reason)
    {
        var warning = $"Checkpoint {checkpoint.CheckpointId} ({checkpoint.ManifestPath}) cannot be restored: {reason}; falling back to an older checkpoint.";
        logger.LogWarning("Job {Job}: {Warning}", job.Id, warning);
        record.Warnings.Add(warning);
        job.SetState(record.State);
        if (owned)
        {
            await job.DiscardCheckpointAsync(checkpoint.CheckpointId, reason);
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
