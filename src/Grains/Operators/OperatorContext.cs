using StreamGrains.Connectors;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Operators;

/// <summary>Everything an operator of one subtask is opened with.</summary>
internal sealed record OperatorContext
{
    public required SubtaskId Subtask { get; init; }

    public required ChainPlan Chain { get; init; }

    public required JobPlan Plan { get; init; }

    public required JobSpec Spec { get; init; }

    /// <summary>Key groups of the subtask (empty when the chain is not keyed).</summary>
    public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>Splits of a source subtask.</summary>
    public required IReadOnlyList<SourceSplit> Splits { get; init; }

    /// <summary>Local working directory of the subtask's attempt; one sub-directory per operator.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>Local directory for copies of completed checkpoints, kept across attempts (local recovery).</summary>
    public required string LocalCheckpointRoot { get; init; }

    /// <summary>Checkpoint storage, when checkpointing is enabled.</summary>
    public ICheckpointStorage? Storage { get; init; }

    /// <summary>The state to restore, if any.</summary>
    public SubtaskRestore? Restore { get; init; }

    /// <summary>The job's own checkpoint the attempt restores from after a failover, and the attempt that took it.</summary>
    public RestoredCheckpoint? RestoredFrom { get; init; }

    /// <summary>Receives restore progress.</summary>
    public IProgress<RestoreProgress>? RestoreProgress { get; init; }

    /// <summary>Cancelled when the subtask stops.</summary>
    public CancellationToken Stopping { get; init; }

    public required IServiceProvider Services { get; init; }

    public required TimeProvider Time { get; init; }

    public required StreamGrainsOptions Options { get; init; }

    /// <summary>Counts records that entered the chain (from a source or a channel).</summary>
    public required Counter RecordsIn { get; init; }

    /// <summary>Counts records that left the chain (to a channel or a sink).</summary>
    public required Counter RecordsOut { get; init; }

    public int SubtaskIndex => Subtask.Index;

    public int Parallelism => Chain.Parallelism;

    public string OperatorDirectory(string uid) => Path.Combine(StateDirectory, uid);

    /// <summary>Where the local copies of an operator's checkpoints are kept: by Uid and key groups, not by attempt, so a restarted subtask finds them.</summary>
    public string OperatorLocalCheckpointRoot(string uid) => State.KeyedStateDirectories.LocalRecoveryRootOf(LocalCheckpointRoot, uid, KeyGroups);
}

/// <summary>A counter owned by one subtask (single-threaded).</summary>
internal sealed class Counter
{
    public long Value { get; private set; }

    public void Increment() => Value++;

    public void Add(long n) => Value += n;
}
