namespace StreamGrains.Snapshots;

/// <summary>What a subtask sends the coordinator when its part of a checkpoint is stored.</summary>
[GenerateSerializer, Immutable]
public sealed record SubtaskCheckpointAck
{
    /// <summary>The checkpoint.</summary>
    [Id(0)] public required long CheckpointId { get; init; }

    /// <summary>The subtask.</summary>
    [Id(1)] public required Runtime.SubtaskId Subtask { get; init; }

    /// <summary>The state of each operator of the subtask that has state, by Uid.</summary>
    [Id(2)] public required IReadOnlyDictionary<string, OperatorSubtaskState> Operators { get; init; }

    /// <summary>Timings and sizes of the subtask's part.</summary>
    [Id(3)] public required SubtaskCheckpointStats Stats { get; init; }
}

/// <summary>Timings and sizes of one subtask's part of a checkpoint.</summary>
[GenerateSerializer, Immutable]
public sealed record SubtaskCheckpointStats
{
    /// <summary>Index of the subtask.</summary>
    [Id(0)] public int SubtaskIndex { get; init; }

    /// <summary>Name of the chain.</summary>
    [Id(1)] public string Chain { get; init; } = string.Empty;

    /// <summary>From the first barrier received to the last one (0 for sources and single-input subtasks).</summary>
    [Id(2)] public TimeSpan Alignment { get; init; }

    /// <summary>The synchronous part on the mailbox: cache flush and RocksDB checkpoint.</summary>
    [Id(3)] public TimeSpan Synchronous { get; init; }

    /// <summary>The asynchronous part: uploads.</summary>
    [Id(4)] public TimeSpan Asynchronous { get; init; }

    /// <summary>Bytes uploaded for this checkpoint.</summary>
    [Id(5)] public long BytesUploaded { get; init; }

    /// <summary>Full size of the subtask's state (including files reused from earlier checkpoints).</summary>
    [Id(6)] public long FullSize { get; init; }

    /// <summary>Changelog mode: bytes of changelog written since the subtask's previous checkpoint (uploaded mostly before the barrier).</summary>
    [Id(7)] public long ChangelogBytes { get; init; }

    /// <summary>Changelog mode: the materialization the checkpoint refers to.</summary>
    [Id(8)] public long? MaterializationId { get; init; }

    /// <summary>Changelog mode: size of that materialization.</summary>
    [Id(9)] public long MaterializedSize { get; init; }

    /// <summary>Changelog mode: how long that materialization took (local snapshot and upload).</summary>
    [Id(10)] public TimeSpan? MaterializationDuration { get; init; }

    /// <summary>When the first barrier reached the subtask (its silo's clock); with the trigger time, how long the barrier travelled.</summary>
    [Id(11)] public DateTimeOffset? BarrierAt { get; init; }

    /// <summary>When the coordinator received the acknowledgement (its clock).</summary>
    [Id(12)] public DateTimeOffset? AcknowledgedAt { get; init; }
}

/// <summary>Why a checkpoint did not complete.</summary>
public enum CheckpointFailureReason : byte
{
    /// <summary>Not every subtask acknowledged within the timeout.</summary>
    Timeout = 0,

    /// <summary>A subtask could not take or store its part.</summary>
    Declined = 1,

    /// <summary>The manifest could not be written.</summary>
    ManifestWriteFailed = 2,

    /// <summary>A source could not be triggered.</summary>
    TriggerFailed = 3,

    /// <summary>The attempt ended (failover, cancel, finish) while the checkpoint was pending.</summary>
    AttemptEnded = 4,

    /// <summary>A source subtask had finished, so it could not inject the barrier.</summary>
    SubtasksFinished = 5,
}

/// <summary>Why a subtask declined its part of a checkpoint (the checkpoint then fails with <see cref="CheckpointFailureReason.Declined"/>).</summary>
public enum CheckpointDeclineReason : byte
{
    /// <summary>The synchronous part on the subtask's mailbox threw: an operator could not take its snapshot.</summary>
    SnapshotFailed = 0,

    /// <summary>The asynchronous part threw: the subtask's state could not be stored (uploaded).</summary>
    StoreFailed = 1,
}

/// <summary>Outcome of a checkpoint.</summary>
public enum CheckpointOutcome : byte
{
    /// <summary>Still running.</summary>
    InProgress = 0,

    /// <summary>Completed: the manifest is written.</summary>
    Completed = 1,

    /// <summary>Aborted.</summary>
    Aborted = 2,
}

/// <summary>Statistics of one checkpoint.</summary>
[GenerateSerializer, Immutable]
public sealed record CheckpointStats
{
    /// <summary>The checkpoint.</summary>
    [Id(0)] public required long CheckpointId { get; init; }

    /// <summary>Outcome.</summary>
    [Id(1)] public CheckpointOutcome Outcome { get; init; }

    /// <summary>When it was triggered.</summary>
    [Id(2)] public DateTimeOffset TriggeredAt { get; init; }

    /// <summary>From trigger to completion or abort.</summary>
    [Id(3)] public TimeSpan? Duration { get; init; }

    /// <summary>Why it was aborted.</summary>
    [Id(4)] public CheckpointFailureReason? FailureReason { get; init; }

    /// <summary>Details of the failure.</summary>
    [Id(5)] public string? FailureMessage { get; init; }

    /// <summary>Bytes uploaded by all subtasks.</summary>
    [Id(6)] public long BytesUploaded { get; init; }

    /// <summary>Full size of the checkpointed state.</summary>
    [Id(7)] public long FullSize { get; init; }

    /// <summary>Longest synchronous part of any subtask.</summary>
    [Id(8)] public TimeSpan MaxSynchronous { get; init; }

    /// <summary>Longest asynchronous part of any subtask.</summary>
    [Id(9)] public TimeSpan MaxAsynchronous { get; init; }

    /// <summary>Longest alignment of any subtask.</summary>
    [Id(10)] public TimeSpan MaxAlignment { get; init; }

    /// <summary>Per-subtask figures (acknowledged subtasks only).</summary>
    [Id(11)] public IReadOnlyList<SubtaskCheckpointStats> Subtasks { get; init; } = [];

    /// <summary>Path of the manifest, when completed.</summary>
    [Id(12)] public string? ManifestPath { get; init; }

    /// <summary>Changelog mode: changelog bytes written by all subtasks since their previous checkpoint.</summary>
    [Id(13)] public long ChangelogBytes { get; init; }

    /// <summary>Why the subtask declined, when <see cref="FailureReason"/> is <see cref="CheckpointFailureReason.Declined"/>.</summary>
    [Id(14)] public CheckpointDeclineReason? DeclineReason { get; init; }
}
