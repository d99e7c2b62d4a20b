using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Jobs;

/// <summary>What a submit found: the plan and the snapshot to restore of an acceptable spec, or why it is not.</summary>
internal sealed record SubmissionCheck(JobPlan? Plan, CompletedCheckpoint? Restore, IReadOnlyList<string> Errors)
{
    public bool Accepted => Errors.Count == 0;
}

/// <summary>
/// Checks a submitted spec before anything runs: the job definition builds a valid plan, its sources can enumerate their
/// splits, checkpoint storage can be written, and the snapshot it restores from exists and fits the job.
/// </summary>
internal sealed class JobSubmission(ICheckpointStorage storage, RestorePointReader restorePoints)
{
    private static readonly TimeSpan StorageCheckTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Checks <paramref name="spec"/> (whose <see cref="JobSpec.JobId"/> is set).</summary>
    public async Task<SubmissionCheck> CheckAsync(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        JobPlan plan;
        try
        {
            plan = JobDefinitions.Plan(spec);
            _ = RestorePlanner.AssignSplits(plan, spec, restore: null);
        }
        catch (JobValidationException ex)
        {
            return new SubmissionCheck(null, null, ex.Errors);
        }

        try
        {
            using var timeout = new CancellationTokenSource(StorageCheckTimeout);
            await storage.CheckAccessAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is CheckpointStorageException or OperationCanceledException)
        {
            return new SubmissionCheck(null, null, [$"Checkpoint storage {storage.Location} is not usable: {ex.Message}"]);
        }

        if (spec.RestoreFrom is not { } restoreFrom)
        {
            return new SubmissionCheck(plan, null, []);
        }

        var (checkpoint, errors) = await restorePoints.ReadAsync(restoreFrom, plan, spec);
        return new SubmissionCheck(checkpoint is null ? null : plan, checkpoint, errors);
    }
}
