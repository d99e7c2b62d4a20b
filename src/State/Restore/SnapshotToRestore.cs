using StreamGrains.Snapshots;

namespace StreamGrains.State.Restore;

/// <summary>The snapshot an operator subtask restores its keyed state from.</summary>
/// <param name="CheckpointId">The checkpoint or savepoint.</param>
/// <param name="Parts">
/// The operator's entries of the snapshot whose key groups overlap the subtask's: one, with the same key groups, when the
/// parallelism is unchanged; empty when the snapshot has no state of the operator (nothing is restored).
/// </param>
/// <param name="OwnsFiles">
/// Whether the job owns the snapshot's files (a failover restoring its own checkpoint): later snapshots then reference
/// them instead of uploading them again. False for a restore from another job's snapshot.
/// </param>
public sealed record SnapshotToRestore(long CheckpointId, IReadOnlyList<OperatorSubtaskState> Parts, bool OwnsFiles);
