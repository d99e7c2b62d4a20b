using System.Globalization;

namespace StreamGrains.Runtime;

/// <summary>Identifies one subtask grain: (job, chain, subtask index, attempt).</summary>
[GenerateSerializer, Immutable]
public readonly record struct SubtaskId(
    [property: Id(0)] JobId Job,
    [property: Id(1)] int Chain,
    [property: Id(2)] int Index,
    [property: Id(3)] int Attempt)
{
    /// <summary>The grain key: <c>{job}/{chain}/{index}/{attempt}</c>.</summary>
    public string GrainKey => string.Create(CultureInfo.InvariantCulture, $"{Job.Value}/{Chain}/{Index}/{Attempt}");

    /// <summary>Parses a grain key made by <see cref="GrainKey"/>.</summary>
    /// <exception cref="FormatException">When <paramref name="key"/> is not a subtask grain key.</exception>
    public static SubtaskId Parse(string key)
    {
        var parts = key.Split('/');
        if (parts.Length != 4
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var chain)
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            || !int.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var attempt))
        {
            throw new FormatException($"'{key}' is not a subtask grain key (job/chain/index/attempt).");
        }

        return new SubtaskId(new JobId(parts[0]), chain, index, attempt);
    }

    /// <inheritdoc />
    public override string ToString() => GrainKey;
}

/// <summary>Kind of an in-band event that travels with records.</summary>
public enum StreamEventKind : byte
{
    /// <summary>The sender will send nothing more on this channel.</summary>
    EndOfInput = 0,

    /// <summary>Event time has advanced to <see cref="StreamEvent.Value"/>.</summary>
    Watermark = 1,

    /// <summary>Checkpoint barrier for checkpoint <see cref="StreamEvent.Value"/>.</summary>
    Barrier = 2,
}

/// <summary>An in-band event. Events of a batch follow all its records.</summary>
[GenerateSerializer, Immutable]
public readonly record struct StreamEvent([property: Id(0)] StreamEventKind Kind, [property: Id(1)] long Value);

/// <summary>
/// A batch of records (and trailing in-band events) sent on one channel: (edge, sender subtask) → receiver subtask.
/// </summary>
/// <remarks>
/// Marked immutable: within a silo Orleans hands the same instance to the receiver without copying, so neither side may
/// change it (or the records in it) after sending. Across silos Orleans serializes <see cref="Records"/>, an exact-length
/// array of the edge's record type.
/// </remarks>
[GenerateSerializer, Immutable]
public sealed class DataBatch
{
    /// <summary>The edge of the job plan.</summary>
    [Id(0)] public int EdgeId { get; init; }

    /// <summary>Index of the sending subtask.</summary>
    [Id(1)] public int SenderIndex { get; init; }

    /// <summary>Position of the batch on its channel, starting at 0; restores order and drops duplicates.</summary>
    [Id(2)] public long Sequence { get; init; }

    /// <summary>An array of the records (<c>T[]</c> of the edge's record type), or null when the batch carries only events.</summary>
    [Id(3)] public Array? Records { get; init; }

    /// <summary>Events that follow the records, or null.</summary>
    [Id(4)] public StreamEvent[]? Events { get; init; }

    /// <summary>Number of records.</summary>
    public int Count => Records?.Length ?? 0;

    /// <inheritdoc />
    public override string ToString() => $"edge {EdgeId} from {SenderIndex} #{Sequence}: {Count} records, {Events?.Length ?? 0} events";
}

/// <summary>What a subtask grain needs to deploy: the spec (to rebuild the graph) and its position in the plan.</summary>
[GenerateSerializer, Immutable]
public sealed record SubtaskDeployment
{
    /// <summary>The job's spec, with its id set.</summary>
    [Id(0)] public required JobSpec Spec { get; init; }

    /// <summary>Which subtask this is.</summary>
    [Id(1)] public required SubtaskId Subtask { get; init; }

    /// <summary>For source chains: the splits this subtask reads, with their positions.</summary>
    [Id(2)] public IReadOnlyList<Connectors.SourceSplit> Splits { get; init; } = [];

    /// <summary>The state to restore before starting, when the job starts from a checkpoint or savepoint.</summary>
    [Id(3)] public SubtaskRestore? Restore { get; init; }

    /// <summary>
    /// The job's own checkpoint the attempt restores from after a failover, with the attempt that took it; null for a
    /// fresh start or a restore from a savepoint. Set for every subtask, stateful or not: sinks use it to drop what a
    /// failed attempt wrote after that checkpoint (it is written again).
    /// </summary>
    [Id(4)] public RestoredCheckpoint? RestoredFrom { get; init; }
}

/// <summary>The checkpoint an attempt restored from and the attempt that took it.</summary>
[GenerateSerializer, Immutable]
public sealed record RestoredCheckpoint
{
    /// <summary>The checkpoint.</summary>
    [Id(0)] public required long CheckpointId { get; init; }

    /// <summary>The attempt that took it.</summary>
    [Id(1)] public required int Attempt { get; init; }
}

/// <summary>What one subtask restores: the state of each of its operators, by Uid.</summary>
[GenerateSerializer, Immutable]
public sealed record SubtaskRestore
{
    /// <summary>The checkpoint the state comes from.</summary>
    [Id(0)] public required long CheckpointId { get; init; }

    /// <summary>Path of the manifest.</summary>
    [Id(1)] public required string ManifestPath { get; init; }

    /// <summary>
    /// The state of each operator of the subtask that has any, by Uid: the snapshot's subtask entries whose keyed state
    /// overlaps this subtask's key groups (one, with the same key groups, when the parallelism is unchanged).
    /// </summary>
    [Id(2)] public required IReadOnlyDictionary<string, IReadOnlyList<Snapshots.OperatorSubtaskState>> Operators { get; init; }

    /// <summary>
    /// Whether the job owns the restored files (a failover restoring its own checkpoint): then later checkpoints
    /// reference them instead of uploading them again. False for a restore from another job's snapshot.
    /// </summary>
    [Id(3)] public bool OwnsFiles { get; init; }
}

/// <summary>Why a subtask is stopped.</summary>
public enum StopReason : byte
{
    /// <summary>The job ended (finished, cancelled or failed for good): local state and local checkpoint copies are deleted.</summary>
    JobEnded = 0,

    /// <summary>The attempt is replaced by a new one: local checkpoint copies are kept for local recovery.</summary>
    Failover = 1,
}

/// <summary>What the job grain tells the checkpoint coordinator when an attempt starts running.</summary>
[GenerateSerializer, Immutable]
public sealed record CoordinatorStart
{
    /// <summary>The job's spec.</summary>
    [Id(0)] public required JobSpec Spec { get; init; }

    /// <summary>The attempt now running.</summary>
    [Id(1)] public required int Attempt { get; init; }

    /// <summary>Every subtask of the attempt.</summary>
    [Id(2)] public required IReadOnlyList<SubtaskId> Subtasks { get; init; }

    /// <summary>The subtasks that start with a source (the coordinator triggers those).</summary>
    [Id(3)] public required IReadOnlyList<SubtaskId> Sources { get; init; }

    /// <summary>The checkpoint the attempt restored from, if any; new checkpoint ids are greater.</summary>
    [Id(4)] public long? RestoredCheckpointId { get; init; }

    /// <summary>
    /// The job record's epoch this start was written under. The coordinator deletes shared files only while the record's
    /// epoch is not newer (a newer one means another coordinator was started since: this one stops).
    /// </summary>
    [Id(5)] public long Epoch { get; init; }

    /// <summary>
    /// Whether the attempt was already running checkpoints under a coordinator that was lost: checkpoint ids continue
    /// above every id that coordinator may have used, since subtasks ignore a barrier they have already aligned.
    /// </summary>
    [Id(6)] public bool Resumed { get; init; }
}

/// <summary>A checkpoint that can be restored: its id and manifest.</summary>
[GenerateSerializer, Immutable]
public sealed record CompletedCheckpoint
{
    /// <summary>The checkpoint.</summary>
    [Id(0)] public required long CheckpointId { get; init; }

    /// <summary>Path of the manifest in checkpoint storage.</summary>
    [Id(1)] public required string ManifestPath { get; init; }

    /// <summary>The manifest.</summary>
    [Id(2)] public required Snapshots.CheckpointManifest Manifest { get; init; }
}

/// <summary>A subtask's answer to a deploy.</summary>
[GenerateSerializer, Immutable]
public sealed record DeployResult
{
    /// <summary>Address of the silo the subtask runs on.</summary>
    [Id(0)] public required string Silo { get; init; }

    /// <summary>Key groups the subtask owns (empty when it is not keyed).</summary>
    [Id(1)] public KeyGroupRange KeyGroups { get; init; } = KeyGroupRange.Empty;

    /// <summary>Why the subtask could not be deployed (for example an operator's Open threw); null on success.</summary>
    [Id(2)] public JobFailure? Failure { get; init; }

    /// <summary>Whether the failure was reading the state to restore (missing or corrupt files): another checkpoint may work.</summary>
    [Id(3)] public bool RestoreFailed { get; init; }

    /// <summary>How the restore went, when there was one.</summary>
    [Id(4)] public RestoreProgress? Restore { get; init; }
}

/// <summary>Answer to a submit.</summary>
[GenerateSerializer, Immutable]
public sealed record SubmitResult
{
    /// <summary>The job's id (also when it was rejected).</summary>
    [Id(0)] public required JobId JobId { get; init; }

    /// <summary>Why the job was rejected; empty when it was accepted.</summary>
    [Id(1)] public IReadOnlyList<string> Errors { get; init; } = [];

    /// <summary>Whether the job was accepted.</summary>
    public bool Accepted => Errors.Count == 0;
}

/// <summary>A batch of records for a collect sink.</summary>
[GenerateSerializer, Immutable]
public sealed class CollectedBatch
{
    /// <summary>Index of the sending sink subtask.</summary>
    [Id(0)] public int SenderIndex { get; init; }

    /// <summary>Position of the batch among its sender's batches of one attempt, starting at 0.</summary>
    [Id(1)] public long Sequence { get; init; }

    /// <summary>The job attempt of the sender; batches of older attempts than one already seen are dropped.</summary>
    [Id(4)] public int Attempt { get; init; }

    /// <summary>The records.</summary>
    [Id(2)] public required object?[] Records { get; init; }

    /// <summary>For upsert sinks: each record's key; a later record replaces an earlier one with an equal key.</summary>
    [Id(3)] public object?[]? Keys { get; init; }

    /// <summary>
    /// The last checkpoint whose barrier the sender had passed when it wrote these records (the checkpoint its attempt
    /// restored from, or 0, before the first barrier of the attempt).
    /// </summary>
    [Id(5)] public long After { get; init; }

    /// <summary>The checkpoint the sender's attempt restored from after a failover; 0 when it started from scratch.</summary>
    [Id(6)] public long RestoredCheckpointId { get; init; }

    /// <summary>The attempt that took <see cref="RestoredCheckpointId"/>; 0 when the attempt started from scratch.</summary>
    [Id(7)] public int RestoredCheckpointAttempt { get; init; }
}

/// <summary>A page of collected records.</summary>
[GenerateSerializer, Immutable]
public sealed class CollectedPage
{
    /// <summary>The records of the page.</summary>
    [Id(0)] public required object?[] Records { get; init; }

    /// <summary>Total number of records collected.</summary>
    [Id(1)] public long Total { get; init; }
}
