using StreamGrains.Snapshots;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// Incremental checkpoints (<see cref="IncrementalSnapshotter"/>): the synchronous part flushes and takes a RocksDB
/// checkpoint into the local-recovery directory, the asynchronous part uploads the SST files storage does not have yet
/// (some of them uploaded ahead by the eager uploads, which start when the subtask starts).
/// </summary>
internal sealed class IncrementalSnapshotStrategy(IncrementalSnapshotter snapshotter, int subtaskIndex) : IKeyedStateSnapshotStrategy
{
    /// <summary>The snapshotter (for tests).</summary>
    internal IncrementalSnapshotter Snapshotter => snapshotter;

    public string? Warning => null;

    /// <inheritdoc />
    /// <remarks>A native snapshot, whatever the format of <paramref name="options"/>: canonical savepoints go through <see cref="Savepoints.CanonicalSnapshotStrategy"/>.</remarks>
    public Func<CancellationToken, Task<OperatorSnapshotResult>> Snapshot(long checkpointId, SnapshotOptions options)
    {
        var taken = snapshotter.TakeLocalSnapshot(checkpointId);
        return async cancellationToken =>
        {
            var uploaded = await snapshotter.UploadAsync(taken, cancellationToken);
            return new OperatorSnapshotResult(new OperatorSubtaskState { SubtaskIndex = subtaskIndex, KeyedState = uploaded.Handle }, uploaded.BytesUploaded, uploaded.Handle.FullSize);
        };
    }

    /// <inheritdoc />
    /// <remarks>Taken where the checkpoints' local copies are (<c>chk-{n}</c>); the caller deletes it.</remarks>
    public LocalSnapshot TakeLocalView(long checkpointId) => snapshotter.TakeLocalSnapshot(checkpointId);

    public void Started() => snapshotter.StartEagerUploads();

    public void Completed(long checkpointId) => snapshotter.Completed(checkpointId);

    public Task AbortedAsync(long checkpointId, CancellationToken cancellationToken) => snapshotter.AbortedAsync(checkpointId, cancellationToken);

    public ValueTask AfterBatchAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Stops the eager uploads, which read the instance.</summary>
    public Task StopAsync() => snapshotter.StopEagerUploadsAsync();

    /// <summary>Deletes what the eager uploads uploaded that no snapshot took.</summary>
    public ValueTask DisposeAsync() => snapshotter.DisposeAsync();
}
