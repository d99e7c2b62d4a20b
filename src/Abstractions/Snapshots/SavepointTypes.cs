using System.Text.Json.Serialization;

namespace StreamGrains.Snapshots;

/// <summary>How a savepoint stores keyed state.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SavepointFormat>))]
public enum SavepointFormat : byte
{
    /// <summary>
    /// The state backend's own files (RocksDB SSTs), copied inside checkpoint storage from the latest checkpoint
    /// (server-side copy on Blob Storage, hard links on a filesystem) plus the delta since: costs about one incremental
    /// checkpoint. Restores fast, also with another parallelism.
    /// </summary>
    Native = 0,

    /// <summary>
    /// Backend-independent: per operator Uid, per state and per key group, with a key-group index (docs/formats.md).
    /// Costs a full write of the state; restores with write batches.
    /// </summary>
    Canonical = 1,
}

/// <summary>Who owns the files of the snapshot a job is restored from.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RestoreMode>))]
public enum RestoreMode : byte
{
    /// <summary>
    /// The snapshot stays the user's: the new job never deletes its files and does not build on them (its first
    /// checkpoint uploads its state in full). Default.
    /// </summary>
    NoClaim = 0,

    /// <summary>
    /// The new job takes the snapshot over: its checkpoints reference the restored files and delete them once no
    /// retained checkpoint does. The snapshot must not be used by anything else afterwards.
    /// </summary>
    Claim = 1,
}

/// <summary>What a savepoint request asks for.</summary>
[GenerateSerializer, Immutable]
public sealed record SavepointRequest
{
    /// <summary>Native (default) or canonical.</summary>
    [Id(0)] public SavepointFormat Format { get; init; } = SavepointFormat.Native;

    /// <summary>
    /// Directory in checkpoint storage for the savepoint (relative to the storage root); default
    /// <c>savepoints/{job}/sp-{checkpoint id}-{random}</c>.
    /// </summary>
    [Id(1)] public string? Directory { get; init; }

    /// <summary>What happens to the job once the savepoint is complete.</summary>
    [Id(2)] public SavepointThen Then { get; init; } = SavepointThen.KeepRunning;
}

/// <summary>What happens to the job after its savepoint.</summary>
public enum SavepointThen : byte
{
    /// <summary>The job keeps running.</summary>
    KeepRunning = 0,

    /// <summary>
    /// Stop with savepoint: sources stop right after injecting the savepoint barrier, every record before it is
    /// processed, no timer fires after the snapshot, and the job ends (Finished) once the savepoint is complete. When
    /// the savepoint fails the sources resume and the job keeps running.
    /// </summary>
    Stop = 1,

    /// <summary>Cancel with savepoint: the job is cancelled once the savepoint is complete (records after the savepoint may already have been processed).</summary>
    Cancel = 2,
}

/// <summary>Phase of a savepoint.</summary>
public enum SavepointPhase : byte
{
    /// <summary>Subtasks are snapshotting their state.</summary>
    Snapshotting = 0,

    /// <summary>Files are being copied into the savepoint directory.</summary>
    Copying = 1,

    /// <summary>The savepoint is complete and self-contained.</summary>
    Completed = 2,

    /// <summary>The savepoint failed; see the failure message.</summary>
    Failed = 3,
}

/// <summary>Progress and outcome of a savepoint.</summary>
[GenerateSerializer, Immutable]
public sealed record SavepointStatus
{
    /// <summary>Id of the checkpoint the savepoint was taken as.</summary>
    [Id(0)] public long CheckpointId { get; init; }

    /// <summary>Native or canonical.</summary>
    [Id(1)] public SavepointFormat Format { get; init; }

    /// <summary>Where the savepoint is (its directory in checkpoint storage): what <see cref="JobSpec.RestoreFrom"/> takes.</summary>
    [Id(2)] public string Directory { get; init; } = string.Empty;

    /// <summary>Current phase.</summary>
    [Id(3)] public SavepointPhase Phase { get; init; }

    /// <summary>Files copied into the savepoint directory so far.</summary>
    [Id(4)] public int FilesCopied { get; init; }

    /// <summary>Files to copy.</summary>
    [Id(5)] public int FilesTotal { get; init; }

    /// <summary>Bytes the savepoint references (its full size).</summary>
    [Id(6)] public long FullSize { get; init; }

    /// <summary>Bytes subtasks uploaded for it (the delta since the last checkpoint, or the canonical files).</summary>
    [Id(7)] public long BytesUploaded { get; init; }

    /// <summary>When it was triggered.</summary>
    [Id(8)] public DateTimeOffset TriggeredAt { get; init; }

    /// <summary>Time from the trigger to completion (or to now while in progress).</summary>
    [Id(9)] public TimeSpan Duration { get; init; }

    /// <summary>Why it failed.</summary>
    [Id(10)] public string? FailureMessage { get; init; }

    /// <summary>What happens to the job afterwards.</summary>
    [Id(11)] public SavepointThen Then { get; init; }

    /// <summary>Whether the savepoint reached its end (completed or failed).</summary>
    public bool IsDone => Phase is SavepointPhase.Completed or SavepointPhase.Failed;

    /// <inheritdoc />
    public override string ToString() => Phase switch
    {
        SavepointPhase.Completed => $"{Format} savepoint {Directory} completed in {Duration.TotalSeconds:0.###} s ({FullSize} bytes, {BytesUploaded} uploaded)",
        SavepointPhase.Failed => $"{Format} savepoint (checkpoint {CheckpointId}) failed: {FailureMessage}",
        SavepointPhase.Copying => $"{Format} savepoint {Directory}: copying {FilesCopied}/{FilesTotal} files",
        _ => $"{Format} savepoint (checkpoint {CheckpointId}): snapshotting",
    };
}

/// <summary>A savepoint found in checkpoint storage.</summary>
[GenerateSerializer, Immutable]
public sealed record SavepointInfo
{
    /// <summary>Its directory (what <see cref="JobSpec.RestoreFrom"/> takes).</summary>
    [Id(0)] public required string Directory { get; init; }

    /// <summary>The job it was taken of.</summary>
    [Id(1)] public required string JobId { get; init; }

    /// <summary>The job definition's type.</summary>
    [Id(2)] public required string JobType { get; init; }

    /// <summary>Checkpoint id it was taken as.</summary>
    [Id(3)] public long CheckpointId { get; init; }

    /// <summary>Native or canonical.</summary>
    [Id(4)] public SavepointFormat Format { get; init; }

    /// <summary>When it completed.</summary>
    [Id(5)] public DateTimeOffset CompletedAt { get; init; }

    /// <summary>Total bytes of its files.</summary>
    [Id(6)] public long Size { get; init; }
}

/// <summary>
/// What a subtask needs to know about a checkpoint before its barrier arrives: whether it is a savepoint, in which
/// format, and whether the job stops after it.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SnapshotOptions
{
    /// <summary>A plain checkpoint.</summary>
    public static readonly SnapshotOptions Checkpoint = new();

    /// <summary>Native (incremental files) or canonical.</summary>
    [Id(0)] public SavepointFormat Format { get; init; } = SavepointFormat.Native;

    /// <summary>For a canonical savepoint: the savepoint's directory, where subtasks write their state files.</summary>
    [Id(1)] public string? SavepointDirectory { get; init; }

    /// <summary>Whether processing stops at the barrier (stop with savepoint) until the job ends or the savepoint fails.</summary>
    [Id(2)] public bool Stop { get; init; }
}
