using StreamGrains.State.Restore;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State;

/// <summary>
/// Everything opening the keyed state of one operator in one subtask needs (<see cref="OperatorKeyedState.OpenAsync{TKey}"/>):
/// restoring it from a snapshot, if any (<see cref="KeyedStateRestore.RestoreAsync{TInstance}"/>), opening its RocksDB
/// instance, and setting up its snapshots for the job's checkpoint mode.
/// </summary>
public sealed record OperatorKeyedStateRequest
{
    /// <summary>Whose state this is: job, operator Uid and subtask name its files in storage; the key groups are the subtask's.</summary>
    public required SnapshotOwner Owner { get; init; }

    /// <summary>Number of key groups of the job.</summary>
    public required int MaxParallelism { get; init; }

    /// <summary>Where the state lives on local disk.</summary>
    public required KeyedStateDirectories Directories { get; init; }

    /// <summary>Checkpoint storage; null when there is none (then there is nothing to restore from, and no snapshot).</summary>
    public ICheckpointStorage? Storage { get; init; }

    /// <summary>The silo's RocksDB resources, whose options every instance opens with.</summary>
    public required RocksDbResources Resources { get; init; }

    /// <summary>Entries of the backend's write-back cache (<see cref="KeyedStateBackendOptions.CacheCapacity"/>); null for its default.</summary>
    public int? CacheCapacity { get; init; }

    /// <summary>How the job checkpoints (mode, local recovery, eager uploads, changelog settings); default off.</summary>
    public CheckpointSettings Checkpointing { get; init; } = CheckpointSettings.Disabled;

    /// <summary>The snapshot to restore; null to start with empty state.</summary>
    public SnapshotToRestore? Restore { get; init; }

    /// <summary>Downloads shared with the other restores running in the silo (rescaling restores use them); null to download alone.</summary>
    public SharedRestoreDownloads? SharedDownloads { get; init; }

    /// <summary>Receives the restore's progress.</summary>
    public IProgress<RestoreProgress>? Progress { get; init; }

    /// <summary>The clock the restore's progress takes the time its files were in place from.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Cancelled when the subtask stops: cancels the restore, and stops the snapshots' background uploads.</summary>
    public CancellationToken Stopping { get; init; }
}
