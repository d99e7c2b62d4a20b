using StreamGrains.Snapshots;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// How the keyed state of one operator subtask is snapshotted: a synchronous step on the subtask's mailbox, which returns
/// the asynchronous part (the uploads), and the notifications a strategy needs between snapshots.
/// </summary>
/// <remarks>
/// <para>Implementations: incremental RocksDB checkpoints (<see cref="IncrementalSnapshotStrategy"/>), changelog mode
/// (<see cref="Changelog.ChangelogSnapshotStrategy"/>), and canonical savepoints on top of either
/// (<see cref="Savepoints.CanonicalSnapshotStrategy"/>), which is chosen per savepoint by its format.</para>
/// <para>Threading: every member runs on the mailbox, except the asynchronous part <see cref="Snapshot"/> returns, which
/// runs off it (possibly while the mailbox goes on) and only touches what the synchronous part captured.</para>
/// </remarks>
public interface IKeyedStateSnapshotStrategy : IAsyncDisposable
{
    /// <summary>A condition worth a warning in the subtask's status while it lasts; null when all is well.</summary>
    string? Warning { get; }

    /// <summary>
    /// The synchronous part of a snapshot (a flush and a RocksDB checkpoint, a changelog seal, or a local view): what the
    /// snapshot contains is fixed when it returns. Returns the asynchronous part, which uploads and yields the operator
    /// subtask's entry of the manifest with what storing it cost.
    /// </summary>
    /// <param name="checkpointId">The checkpoint or savepoint.</param>
    /// <param name="options">Whether it is a savepoint, and in which format.</param>
    Func<CancellationToken, Task<OperatorSnapshotResult>> Snapshot(long checkpointId, SnapshotOptions options);

    /// <summary>A consistent view of the instance on local disk (a RocksDB checkpoint), which the caller deletes once read.</summary>
    LocalSnapshot TakeLocalView(long checkpointId);

    /// <summary>The subtask starts running (every operator of its chain is open and its state restored).</summary>
    void Started();

    /// <summary>Checkpoint <paramref name="checkpointId"/> completed.</summary>
    void Completed(long checkpointId);

    /// <summary>Checkpoint <paramref name="checkpointId"/> was aborted.</summary>
    Task AbortedAsync(long checkpointId, CancellationToken cancellationToken);

    /// <summary>Called after each batch the operator processed: background work that follows the mailbox, and backpressure.</summary>
    ValueTask AfterBatchAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Stops the background work that reads the instance: once this completes, the instance may be closed. Never throws.
    /// <see cref="IAsyncDisposable.DisposeAsync"/> follows once it is closed.
    /// </summary>
    Task StopAsync();
}
