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
    /// For each attempt that started: the records the job's sources had read before it, up to the checkpoint it restored
    /// from (<see cref="SourceRecordCounter"/>).
    /// </summary>
    [Id(21)] public Dictionary<int, long> SourceRecordsBefore { get; set; } = [];

    /// <summary>Planned moves so far (the attempt moved off a silo that stopped gracefully); they are not restarts.</summary>
    [Id(11)] public int PlannedMoves { get; set; }

    /// <summary>
    /// Set when the job grain's own silo stopped gracefully after the attempt stopped at a completed checkpoint: the job
    /// grain's next activation moves the job to a new attempt from that checkpoint instead of failing over. Says why.
    /// </summary>
    [Id(12)] public string? MovePending { get; set; }

    /// <summary>With <see cref="MovePending"/>: the silo that stopped, on which the move places nothing.</summary>
    [Id(13)] public string? LeavingSilo { get; set; }

    /// <summary>
    /// Raised each time the job grain starts the checkpoint coordinator (each attempt, and each restart of a lost
    /// coordinator); a coordinator started with an older epoch stops deleting files (<see cref="Checkpointing.EpochFence"/>).
    /// </summary>
    [Id(14)] public long Epoch { get; set; }

    public static string PlacementKey(SubtaskId subtask) => $"{subtask.Chain}/{subtask.Index}";

    public static string PathOf(string jobId) => SnapshotLayout.JobRecordPath(jobId);
}
