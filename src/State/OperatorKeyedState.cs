using StreamGrains.Snapshots;
using StreamGrains.State.Changelog;
using StreamGrains.State.Restore;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;

namespace StreamGrains.State;

/// <summary>Opens the keyed state of an operator subtask (<see cref="OperatorKeyedState{TKey}"/>).</summary>
public static class OperatorKeyedState
{
    /// <summary>
    /// Opens the keyed state of one operator subtask in one call: restores the snapshot of
    /// <see cref="OperatorKeyedStateRequest.Restore"/>, if any (<see cref="KeyedStateRestore"/>), opens its RocksDB backend
    /// and replays the changelog into it, and sets up its snapshots for the job's checkpoint mode.
    /// </summary>
    /// <typeparam name="TKey">The operator's key type.</typeparam>
    /// <param name="request">Whose state, where, what to restore, how to checkpoint.</param>
    /// <param name="serializer">Orleans' serializer, for values (and keys without <paramref name="keySerializer"/>).</param>
    /// <param name="keySerializer">The key serializer the job gave, if any (<see cref="KeySerializers.For{T}"/>).</param>
    /// <returns>The state; the caller disposes it.</returns>
    /// <exception cref="RestoreException">When the snapshot cannot be read (the job falls back to an older one).</exception>
    /// <exception cref="RestoreInterruptedException">When storage failed in a way that says nothing about the snapshot.</exception>
    public static async Task<OperatorKeyedState<TKey>> OpenAsync<TKey>(OperatorKeyedStateRequest request, Orleans.Serialization.Serializer serializer, IKeySerializer<TKey>? keySerializer = null)
        where TKey : notnull
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(serializer);
        var options = new KeyedStateBackendOptions { Directory = request.Directories.Working, KeyGroups = request.Owner.KeyGroups, MaxParallelism = request.MaxParallelism };
        if (request.CacheCapacity is { } capacity)
        {
            options = options with { CacheCapacity = capacity };
        }

        var keys = KeySerializers.For(keySerializer, serializer);
        var restored = await KeyedStateRestore.RestoreAsync(request, () => new RocksDbKeyedStateBackend<TKey>(options, keys, serializer, request.Resources));
        try
        {
            var snapshots = CreateSnapshotStrategy(restored.Instance, request, restored.Result.OwnedHandle);
            return new OperatorKeyedState<TKey>(restored.Instance, snapshots, restored.Result);
        }
        catch
        {
            restored.Instance.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The snapshots of an instance: none without checkpoint storage or with checkpointing off; otherwise the checkpoint
    /// strategy of the job's mode, with canonical savepoints on top.
    /// </summary>
    /// <param name="instance">The instance, restored (changelog mode installs its changelog on it).</param>
    /// <param name="request">The request it was opened with.</param>
    /// <param name="restored">The restored handle whose files the job owns: they are in storage already.</param>
    internal static IKeyedStateSnapshotStrategy? CreateSnapshotStrategy(IRocksDbInstance instance, OperatorKeyedStateRequest request, KeyedStateHandle? restored)
    {
        var checkpointing = request.Checkpointing;
        if (request.Storage is not { } storage || !checkpointing.Enabled)
        {
            return null;
        }

        var owner = request.Owner;
        var directories = request.Directories;
        IKeyedStateSnapshotStrategy checkpoints;
        if (checkpointing.Mode == CheckpointMode.Changelog)
        {
            var options = new ChangelogOptions(checkpointing.MaterializationInterval, checkpointing.ChangelogSegmentBytes, checkpointing.ChangelogSegmentInterval);
            var changelog = new ChangelogSnapshotter(instance, storage, owner, directories.LocalMaterializations, restored, checkpointing.LocalRecovery, options, stopped: request.Stopping);
            checkpoints = new ChangelogSnapshotStrategy(changelog, owner, directories.CanonicalViews, options.SegmentBytes);
        }
        else
        {
            var eager = checkpointing.EagerUploadInterval is { } interval ? new EagerUploadOptions(interval, directories.EagerUploadStaging, request.Stopping) : null;
            var snapshotter = new IncrementalSnapshotter(instance, storage, owner, directories.LocalCheckpoints, restored, checkpointing.LocalRecovery, eager: eager);
            checkpoints = new IncrementalSnapshotStrategy(snapshotter, owner.SubtaskIndex);
        }

        return new CanonicalSnapshotStrategy(checkpoints, storage, owner, request.MaxParallelism);
    }
}

/// <summary>
/// The keyed state of one operator in one subtask (<see cref="OperatorKeyedState.OpenAsync{TKey}"/>): the backend the
/// operator's function uses, and its snapshots, whichever strategy the job's checkpoint mode and each savepoint's format
/// ask for.
/// </summary>
/// <remarks>
/// Threading: every member runs on the subtask's mailbox, except the asynchronous part a snapshot returns. Without
/// checkpoint storage, or with checkpointing off, there are no snapshots: <see cref="Snapshot"/> returns null and the
/// notifications do nothing.
/// </remarks>
/// <typeparam name="TKey">The operator's key type.</typeparam>
public sealed class OperatorKeyedState<TKey> : IAsyncDisposable
    where TKey : notnull
{
    private readonly RocksDbKeyedStateBackend<TKey> _backend;
    private readonly IKeyedStateSnapshotStrategy? _snapshots;
    private bool _disposed;

    internal OperatorKeyedState(RocksDbKeyedStateBackend<TKey> backend, IKeyedStateSnapshotStrategy? snapshots, KeyedStateRestoreResult restored)
    {
        _backend = backend;
        _snapshots = snapshots;
        Restored = restored;
    }

    /// <summary>The backend: states, timers and the current key.</summary>
    public IKeyedStateBackend<TKey> Backend => _backend;

    /// <summary>What the restore did.</summary>
    public KeyedStateRestoreResult Restored { get; }

    /// <summary>A condition worth a warning in the subtask's status while it lasts (failing materializations); null when all is well.</summary>
    public string? Warning => _snapshots?.Warning;

    /// <summary>The snapshot strategy; null without snapshots (for tests).</summary>
    internal IKeyedStateSnapshotStrategy? Snapshots => _snapshots;

    /// <summary>
    /// The synchronous part of a snapshot, on the mailbox; returns its asynchronous part, or null when the state is not
    /// snapshotted.
    /// </summary>
    /// <param name="checkpointId">The checkpoint or savepoint.</param>
    /// <param name="options">A checkpoint or a savepoint (native or canonical).</param>
    public Func<CancellationToken, Task<OperatorSnapshotResult>>? Snapshot(long checkpointId, SnapshotOptions options) => _snapshots?.Snapshot(checkpointId, options);

    /// <summary>The subtask starts running: the eager uploads (incremental mode) start.</summary>
    public void Started() => _snapshots?.Started();

    /// <summary>Checkpoint <paramref name="checkpointId"/> completed.</summary>
    public void Completed(long checkpointId) => _snapshots?.Completed(checkpointId);

    /// <summary>Checkpoint <paramref name="checkpointId"/> was aborted.</summary>
    public Task AbortedAsync(long checkpointId, CancellationToken cancellationToken) => _snapshots?.AbortedAsync(checkpointId, cancellationToken) ?? Task.CompletedTask;

    /// <summary>After each batch: changelog mode streams and materializes, and holds the batch while its uploads lag too far behind.</summary>
    public ValueTask AfterBatchAsync(CancellationToken cancellationToken) => _snapshots?.AfterBatchAsync(cancellationToken) ?? ValueTask.CompletedTask;

    /// <summary>
    /// Closes the state in order: the background work that reads the instance stops (eager uploads), the instance closes
    /// (writes still in its cache are dropped: the durable state is the last checkpoint), then the snapshots release what
    /// they hold (eager uploads no snapshot took are deleted).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            if (_snapshots is not null)
            {
                await _snapshots.StopAsync();
            }
        }
        finally
        {
            _backend.Dispose();
        }

        if (_snapshots is not null)
        {
            await _snapshots.DisposeAsync();
        }
    }
}
