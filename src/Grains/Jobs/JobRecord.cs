using StreamGrains.Runtime;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// What the job grain keeps in checkpoint storage (<c>{job}/_job.record</c>, Orleans' version-tolerant codec), so that
/// a job grain reactivated on another silo knows the job and restarts it from its latest checkpoint.
/// </summary>
[GenerateSerializer]
internal sealed class JobRecord
{
    [Id(0)] public required JobSpec Spec { get; set; }

    [Id(1)] public JobState State { get; set; }

    [Id(2)] public int Attempt { get; set; }

    [Id(3)] public int Restarts { get; set; }

    [Id(4)] public JobFailure? Failure { get; set; }

    [Id(5)] public DateTimeOffset SubmittedAt { get; set; }

    [Id(6)] public DateTimeOffset? EndedAt { get; set; }

    [Id(7)] public string? RestoredFrom { get; set; }

    [Id(8)] public List<string> Warnings { get; set; } = [];

    /// <summary>Silo of each subtask of the last deployment, by "chain/index" (sticky placement).</summary>
    [Id(9)] public Dictionary<string, string> Placement { get; set; } = [];

    /// <summary>The savepoint the job was stopped with (stop-with-savepoint).</summary>
    [Id(10)] public string? FinalSavepoint { get; set; }

    /// <summary>
    /// Raised each time the job grain starts the checkpoint coordinator (each attempt, and each restart of a lost
    /// coordinator); a coordinator started with an older epoch stops deleting files (<see cref="Checkpointing.EpochFence"/>).
    /// </summary>
    [Id(11)] public long Epoch { get; set; }

    public static string PlacementKey(SubtaskId subtask) => $"{subtask.Chain}/{subtask.Index}";

    public static string PathOf(string jobId) => SnapshotLayout.JobRecordPath(jobId);
}
