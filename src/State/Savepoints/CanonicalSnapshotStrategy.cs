using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Savepoints;

/// <summary>
/// Canonical savepoints on top of the checkpoint strategy the job runs: a snapshot whose format is
/// <see cref="SavepointFormat.Canonical"/> takes a local view from that strategy on the mailbox and writes and uploads its
/// canonical state file off it (<see cref="CanonicalRestore.WriteAsync"/>); every other snapshot, and every notification,
/// goes to the checkpoint strategy.
/// </summary>
/// <param name="checkpoints">The job's checkpoint strategy (incremental or changelog).</param>
/// <param name="storage">Checkpoint storage.</param>
/// <param name="owner">Whose state this is: the operator Uid and subtask name the file, the key groups are written.</param>
/// <param name="maxParallelism">Number of key groups of the job.</param>
internal sealed class CanonicalSnapshotStrategy(IKeyedStateSnapshotStrategy checkpoints, ICheckpointStorage storage, SnapshotOwner owner, int maxParallelism) : IKeyedStateSnapshotStrategy
{
    /// <summary>The checkpoint strategy underneath.</summary>
    internal IKeyedStateSnapshotStrategy Checkpoints => checkpoints;

    public string? Warning => checkpoints.Warning;

    /// <inheritdoc />
    /// <remarks>
    /// A canonical savepoint's file is <c>{savepoint directory}/{operator uid}/{subtask index}.state</c>; the local view
    /// only served as a consistent view of the instance (it is not a local copy of a checkpoint) and is deleted once
    /// the file is written.
    /// </remarks>
    public Func<CancellationToken, Task<OperatorSnapshotResult>> Snapshot(long checkpointId, SnapshotOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Format != SavepointFormat.Canonical)
        {
            return checkpoints.Snapshot(checkpointId, options);
        }

        var local = checkpoints.TakeLocalView(checkpointId);
        var directory = options.SavepointDirectory ?? throw new InvalidOperationException($"Canonical savepoint {checkpointId} has no directory.");
        var index = owner.SubtaskIndex;
        var keyGroups = owner.KeyGroups;
        var path = FormattableString.Invariant($"{directory}/{owner.OperatorUid}/{index}.state");
        return async cancellationToken =>
        {
            try
            {
                var file = await CanonicalRestore.WriteAsync(local.Directory, keyGroups, maxParallelism, storage, path, cancellationToken);
                var state = new OperatorSubtaskState { SubtaskIndex = index, CanonicalState = new CanonicalStateHandle { KeyGroups = keyGroups, File = file } };
                return new OperatorSnapshotResult(state, file.Length, file.Length);
            }
            finally
            {
                Directory.Delete(local.Directory, recursive: true);
            }
        };
    }

    public LocalSnapshot TakeLocalView(long checkpointId) => checkpoints.TakeLocalView(checkpointId);

    public void Started() => checkpoints.Started();

    public void Completed(long checkpointId) => checkpoints.Completed(checkpointId);

    public Task AbortedAsync(long checkpointId, CancellationToken cancellationToken) => checkpoints.AbortedAsync(checkpointId, cancellationToken);

    public ValueTask AfterBatchAsync(CancellationToken cancellationToken) => checkpoints.AfterBatchAsync(cancellationToken);

    public Task StopAsync() => checkpoints.StopAsync();

    public ValueTask DisposeAsync() => checkpoints.DisposeAsync();
}
