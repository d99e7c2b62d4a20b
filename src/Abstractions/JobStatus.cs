namespace StreamGrains;

/// <summary>Lifecycle state of a job.</summary>
public enum JobState : byte
{
    /// <summary>Accepted; subtasks are being deployed and their state restored.</summary>
    Deploying = 0,

    /// <summary>Every subtask is deployed and restored; sources emit.</summary>
    Running = 1,

    /// <summary>Every bounded source reached its end and every subtask processed all its input.</summary>
    Finished = 2,

    /// <summary>User code threw or the runtime failed; see <see cref="JobStatus.Failure"/>.</summary>
    Failed = 3,

    /// <summary>A cancel was requested; subtasks are stopping.</summary>
    Cancelling = 4,

    /// <summary>The job was cancelled.</summary>
    Canceled = 5,

    /// <summary>An attempt failed, or is moved off a silo that stops gracefully; the job restarts from its latest completed checkpoint.</summary>
    Restarting = 6,
}

/// <summary>Lifecycle state of one subtask.</summary>
public enum SubtaskState : byte
{
    /// <summary>Not yet deployed.</summary>
    Created = 0,

    /// <summary>Deployed: operators opened and state restored; waiting for the job to start.</summary>
    Ready = 1,

    /// <summary>Processing.</summary>
    Running = 2,

    /// <summary>All input processed and forwarded.</summary>
    Finished = 3,

    /// <summary>Stopped by an exception.</summary>
    Failed = 4,

    /// <summary>Stopped by a cancel.</summary>
    Canceled = 5,
}

/// <summary>Extension methods for <see cref="JobState"/>.</summary>
public static class JobStateExtensions
{
    /// <summary>Whether the job can no longer change state.</summary>
    public static bool IsTerminal(this JobState state) => state is JobState.Finished or JobState.Failed or JobState.Canceled;
}

/// <summary>Status and counters of one subtask.</summary>
[GenerateSerializer, Immutable]
public sealed record SubtaskStatus
{
    /// <summary>Name of the chain this subtask runs (the Uids of its operators joined by " -> ").</summary>
    [Id(0)] public required string Chain { get; init; }

    /// <summary>Index of the subtask within its chain.</summary>
    [Id(1)] public int Index { get; init; }

    /// <summary>Parallelism of the chain.</summary>
    [Id(2)] public int Parallelism { get; init; }

    /// <summary>Lifecycle state.</summary>
    [Id(3)] public SubtaskState State { get; init; }

    /// <summary>Address of the silo the subtask runs on.</summary>
    [Id(4)] public string? Silo { get; init; }

    /// <summary>Key groups owned by the subtask (empty for non-keyed chains).</summary>
    [Id(5)] public KeyGroupRange KeyGroups { get; init; } = KeyGroupRange.Empty;

    /// <summary>Records received from input channels or read from the source.</summary>
    [Id(6)] public long RecordsIn { get; init; }

    /// <summary>Records sent to output channels or written to sinks.</summary>
    [Id(7)] public long RecordsOut { get; init; }

    /// <summary>Largest number of batches seen in flight on one input channel (received, not yet processed).</summary>
    [Id(8)] public int MaxInFlightBatchesPerInputChannel { get; init; }

    /// <summary>Largest number of batches this subtask had sent on one output channel without credit back.</summary>
    [Id(9)] public int MaxUnacknowledgedBatchesPerOutputChannel { get; init; }

    /// <summary>Duplicate batches dropped by the input channels.</summary>
    [Id(10)] public long DuplicateBatchesDropped { get; init; }

    /// <summary>Batches that arrived ahead of their turn and were held back to restore order.</summary>
    [Id(11)] public long BatchesReordered { get; init; }

    /// <summary>Whether the subtask's chain starts with a source.</summary>
    [Id(12)] public bool IsSource { get; init; }

    /// <summary>Progress of the restore of the subtask's state, when it restored any.</summary>
    [Id(13)] public RestoreProgress? Restore { get; init; }

    /// <summary>When the subtask's state was ready (after any restore).</summary>
    [Id(14)] public DateTimeOffset? ReadyAt { get; init; }

    /// <summary>When the subtask first processed or emitted a record.</summary>
    [Id(15)] public DateTimeOffset? FirstRecordAt { get; init; }

    /// <summary>The attempt the subtask belongs to.</summary>
    [Id(16)] public int Attempt { get; init; }

    /// <summary>When the subtask began to open (build its chain and restore its state).</summary>
    [Id(17)] public DateTimeOffset? OpenedAt { get; init; }

    /// <summary>A condition an operator should know about while it lasts (for example materializations that fail).</summary>
    [Id(18)] public string? Warning { get; init; }
}

/// <summary>How far a subtask got restoring its state.</summary>
[GenerateSerializer, Immutable]
public sealed record RestoreProgress
{
    /// <summary>Checkpoint the state comes from.</summary>
    [Id(0)] public long CheckpointId { get; init; }

    /// <summary>Files restored so far.</summary>
    [Id(1)] public int FilesDone { get; init; }

    /// <summary>Files to restore.</summary>
    [Id(2)] public int FilesTotal { get; init; }

    /// <summary>Bytes restored so far.</summary>
    [Id(3)] public long BytesDone { get; init; }

    /// <summary>Bytes to restore.</summary>
    [Id(4)] public long BytesTotal { get; init; }

    /// <summary>Bytes downloaded from checkpoint storage (0 when everything came from the local copy).</summary>
    [Id(5)] public long BytesDownloaded { get; init; }

    /// <summary>Whether the restore is complete.</summary>
    [Id(6)] public bool Completed { get; init; }

    /// <summary>
    /// Bytes hard-linked instead of downloaded: from filesystem checkpoint storage (read once to verify their
    /// checksums, never copied), or from the verified download of another restore running in the same silo.
    /// </summary>
    [Id(7)] public long BytesLinked { get; init; }

    /// <summary>Changelog mode: segments replayed so far.</summary>
    [Id(8)] public int ChangelogSegmentsDone { get; init; }

    /// <summary>Changelog mode: segments to replay after the materialized files.</summary>
    [Id(9)] public int ChangelogSegmentsTotal { get; init; }

    /// <summary>Changelog mode: bytes of changelog replayed so far.</summary>
    [Id(10)] public long ChangelogBytesReplayed { get; init; }

    /// <summary>When the state files were in place (before any changelog replay); null until then.</summary>
    [Id(11)] public DateTimeOffset? FilesRestoredAt { get; init; }

    /// <inheritdoc />
    public override string ToString() => $"checkpoint {CheckpointId}: {FilesDone}/{FilesTotal} files, {BytesDone}/{BytesTotal} bytes ({BytesDownloaded} downloaded, {BytesLinked} linked){(ChangelogSegmentsTotal > 0 ? $", changelog {ChangelogSegmentsDone}/{ChangelogSegmentsTotal} segments" : string.Empty)}{(Completed ? ", done" : string.Empty)}";
}

/// <summary>A snapshot of a job's status.</summary>
[GenerateSerializer, Immutable]
public sealed record JobStatus
{
    /// <summary>The job.</summary>
    [Id(0)] public required JobId JobId { get; init; }

    /// <summary>The job definition's type name.</summary>
    [Id(1)] public required string JobType { get; init; }

    /// <summary>Lifecycle state.</summary>
    [Id(2)] public JobState State { get; init; }

    /// <summary>Increases with every state change; use it to wait for the next change.</summary>
    [Id(3)] public long Version { get; init; }

    /// <summary>The current attempt (1 for the first deployment).</summary>
    [Id(4)] public int Attempt { get; init; }

    /// <summary>When the job was submitted.</summary>
    [Id(5)] public DateTimeOffset SubmittedAt { get; init; }

    /// <summary>When the job reached a terminal state, if it did.</summary>
    [Id(6)] public DateTimeOffset? EndedAt { get; init; }

    /// <summary>Why the job failed, when <see cref="State"/> is <see cref="JobState.Failed"/>.</summary>
    [Id(7)] public JobFailure? Failure { get; init; }

    /// <summary>Per-subtask status and counters (as of the last refresh).</summary>
    [Id(8)] public IReadOnlyList<SubtaskStatus> Subtasks { get; init; } = [];

    /// <summary>Restarts so far (failovers).</summary>
    [Id(9)] public int Restarts { get; init; }

    /// <summary>The latest completed checkpoint.</summary>
    [Id(10)] public Snapshots.CheckpointStats? LatestCheckpoint { get; init; }

    /// <summary>The most recent checkpoints (completed, aborted, in progress), newest first.</summary>
    [Id(11)] public IReadOnlyList<Snapshots.CheckpointStats> RecentCheckpoints { get; init; } = [];

    /// <summary>
    /// Things an operator should know about: events of the job's life (for example a checkpoint that could not be
    /// restored), then the current <see cref="SubtaskStatus.Warning"/> of each subtask of the running attempt.
    /// </summary>
    [Id(12)] public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The checkpoint the current attempt restored from, if any.</summary>
    [Id(13)] public string? RestoredFrom { get; init; }

    /// <summary>The latest savepoint of the job (in progress, completed or failed).</summary>
    [Id(14)] public Snapshots.SavepointStatus? LatestSavepoint { get; init; }

    /// <summary>The savepoint the job was stopped with, when it ended by stop-with-savepoint.</summary>
    [Id(15)] public string? FinalSavepoint { get; init; }

    /// <summary>
    /// Records the sources had read before the current attempt: up to the checkpoint it restored from, over all earlier
    /// attempts; 0 when it started without state. Records an earlier attempt read after that checkpoint are not in it:
    /// the current attempt reads them again.
    /// </summary>
    [Id(21)] public long SourceRecordsBefore { get; init; }

    /// <summary>
    /// Records read by all sources of the job so far, across attempts: <see cref="SourceRecordsBefore"/> plus what the
    /// sources of the current attempt read since. A record re-read after a failover counts once, so a bounded job that
    /// finished reports exactly its input, however often it failed over.
    /// </summary>
    public long SourceRecords => SourceRecordsBefore + Subtasks.Where(static s => s.IsSource).Sum(static s => s.RecordsIn);

    /// <summary>
    /// Planned moves so far: attempts that ended because a silo they ran on stopped gracefully and were continued by a new
    /// attempt from a checkpoint taken for it. They are not failures and do not count in <see cref="Restarts"/>.
    /// </summary>
    [Id(16)] public int PlannedMoves { get; init; }

    /// <inheritdoc />
    public override string ToString() => Failure is null ? $"{JobId} {State}" : $"{JobId} {State}: {Failure}";
}
