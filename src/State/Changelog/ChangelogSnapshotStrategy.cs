using System.Globalization;
using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;

namespace StreamGrains.State.Changelog;

/// <summary>
/// Changelog mode (<see cref="ChangelogSnapshotter"/>): the synchronous part seals the changelog's tail, the asynchronous
/// part waits for its upload (and for the first materialization, when there is none yet). After each batch the
/// changelog is written back and sealed on time, materializations are started, and the batch waits while too much of
/// the changelog is still to upload.
/// </summary>
internal sealed class ChangelogSnapshotStrategy : IKeyedStateSnapshotStrategy
{
    private readonly ChangelogSnapshotter _changelog;
    private readonly SnapshotOwner _owner;
    private readonly string _viewsDirectory;
    private readonly long _uploadBacklogLimit;

    /// <summary>Creates the strategy.</summary>
    /// <param name="changelog">The snapshotter, installed on the instance.</param>
    /// <param name="owner">Whose state this is.</param>
    /// <param name="viewsDirectory">Where local views are taken (apart from the materializations' local copies).</param>
    /// <param name="segmentBytes">The changelog's segment size (<see cref="ChangelogOptions.SegmentBytes"/>).</param>
    public ChangelogSnapshotStrategy(ChangelogSnapshotter changelog, SnapshotOwner owner, string viewsDirectory, int segmentBytes)
    {
        _changelog = changelog;
        _owner = owner;
        _viewsDirectory = viewsDirectory;

        // Backpressure: a batch waits while more than this is still to upload (at least 32 MiB, or 8 segments).
        _uploadBacklogLimit = Math.Max(32L << 20, 8L * segmentBytes);
    }

    /// <summary>The snapshotter (for tests).</summary>
    internal ChangelogSnapshotter Changelog => _changelog;

    /// <summary>Materializations that fail leave checkpoints referring to an old one, with a growing tail.</summary>
    public string? Warning => _changelog.LastMaterializationError is { } error
        ? $"Operator '{_owner.OperatorUid}': the last materialization failed ({error.Message}); checkpoints still refer to materialization {_changelog.Latest?.Id.ToString(CultureInfo.InvariantCulture) ?? "(none)"} and the changelog a recovery replays grows until one succeeds."
        : null;

    /// <inheritdoc />
    /// <remarks>A native snapshot, whatever the format of <paramref name="options"/>: canonical savepoints go through <see cref="Savepoints.CanonicalSnapshotStrategy"/>.</remarks>
    public Func<CancellationToken, Task<OperatorSnapshotResult>> Snapshot(long checkpointId, SnapshotOptions options)
    {
        var complete = _changelog.Snapshot(checkpointId, _owner.KeyGroups);
        var index = _owner.SubtaskIndex;
        return async cancellationToken =>
        {
            var snapshot = await complete(cancellationToken);
            var state = new OperatorSubtaskState { SubtaskIndex = index, KeyedState = snapshot.Handle };
            return new OperatorSnapshotResult(state, snapshot.BytesUploaded, snapshot.Handle.FullSize)
            {
                ChangelogBytes = snapshot.ChangelogBytes,
                Materialization = snapshot.Materialization,
            };
        };
    }

    /// <inheritdoc />
    /// <remarks>Taken in a directory of its own, apart from the materializations' local copies; the caller deletes it.</remarks>
    public LocalSnapshot TakeLocalView(long checkpointId) => _changelog.TakeLocalView(checkpointId, _viewsDirectory);

    public void Started()
    {
    }

    public void Completed(long checkpointId)
    {
        if (_changelog.Completed(checkpointId) is { IsCompleted: false } truncation)
        {
            // The truncation deletes files off the mailbox; a failed deletion is observed here (the files stay behind).
            _ = truncation.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    public Task AbortedAsync(long checkpointId, CancellationToken cancellationToken)
    {
        _changelog.Aborted(checkpointId);
        return Task.CompletedTask;
    }

    public ValueTask AfterBatchAsync(CancellationToken cancellationToken)
    {
        _changelog.Tick();
        var writer = _changelog.Writer;
        return writer.PendingUploadBytes > _uploadBacklogLimit ? new ValueTask(writer.WaitForUploadsAsync(_uploadBacklogLimit, cancellationToken)) : ValueTask.CompletedTask;
    }

    /// <summary>Nothing reads the instance in the background: materializations read their own RocksDB checkpoints.</summary>
    public Task StopAsync() => Task.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
