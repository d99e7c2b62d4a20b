using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Functions;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State;
using StreamGrains.State.Changelog;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Operators;

/// <summary>Runs a <see cref="KeyedProcessFunction{TKey, TIn, TOut}"/> with RocksDB keyed state and processing-time timers.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "An operator's end of life is CloseAsync, which disposes the snapshotter before the state.")]
internal sealed class KeyedProcessOperator<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node, IRecordInput<TOut> next)
    : ChainOperator(node.EffectiveUid), IRecordInput<TIn>, IKeyedProcessContext<TKey>, ITimerService, ICollector<TOut>, IKeyedRuntimeContext
    where TKey : notnull
{
    private readonly KeyedProcessFunction<TKey, TIn, TOut> _function = node.Function;
    private readonly Func<TIn, TKey> _selector = node.Key.Selector;
    private RocksDbKeyedStateBackend<TKey>? _backend;
    private IncrementalSnapshotter? _snapshotter;
    private ChangelogSnapshotter? _changelog;
    private OperatorContext? _context;

    public override long? NextTimerTimestamp => Backend.NextTimerTimestamp;

    public TKey CurrentKey => Backend.CurrentKey;

    public ITimerService TimerService => this;

    public long CurrentProcessingTime => Context.Time.GetUtcNow().ToUnixTimeMilliseconds();

    public string OperatorUid => Uid;

    public int SubtaskIndex => Context.SubtaskIndex;

    public int Parallelism => Context.Parallelism;

    public int MaxParallelism => Context.Plan.MaxParallelism;

    public JobParameters Parameters => Context.Spec.Parameters;

    public KeyGroupRange KeyGroups => Context.KeyGroups;

    internal RocksDbKeyedStateBackend<TKey> Backend => _backend ?? throw new InvalidOperationException($"Operator '{Uid}' is not open.");

    private OperatorContext Context => _context ?? throw new InvalidOperationException($"Operator '{Uid}' is not open.");

    /// <summary>Where changelog mode keeps its materializations' local copies (apart from incremental checkpoints').</summary>
    private static string MaterializationRoot(string localRoot) => Path.Combine(localRoot, "materialized");

    public override async ValueTask OpenAsync(OperatorContext context)
    {
        _context = context;
        var directory = context.OperatorDirectory(Uid);
        var localRoot = context.OperatorLocalCheckpointRoot(Uid);
        var progress = context.RestoreProgress is { } reported ? new ReplayAwareProgress(reported, context.Time) : null;
        KeyedStateHandle? owned = null;
        ChangelogDownload? changelog = null;
        try
        {
            if (context.Restore is { } restore && restore.Operators.TryGetValue(Uid, out var parts) && parts.Count > 0)
            {
                var replay = parts.Select(static p => p.KeyedState).OfType<KeyedStateHandle>().Where(static h => h.Changelog is { Count: > 0 }).ToArray();
                progress?.ExpectChangelog(replay.Sum(static h => h.Changelog!.Count));
                try
                {
                    // The changelog tail downloads while the materialized files do; it is replayed once they are in place.
                    if (replay.Length > 0 && context.Storage is { } storage)
                    {
                        changelog = ChangelogDownload.Start(replay, storage, context.OperatorDirectory(Uid + ".changelog"), context.Stopping);
                    }

                    owned = await RestoreAsync(context with { RestoreProgress = progress }, restore, parts, directory, localRoot);
                }
                catch (State.Storage.CheckpointStorageException ex) when (IsDefinitive(ex))
                {
                    throw new RestoreException($"Operator '{Uid}' subtask {context.SubtaskIndex} could not restore snapshot {restore.CheckpointId}: {ex.Message}", ex);
                }
                catch (State.Storage.CheckpointStorageException ex)
                {
                    throw new RestoreInterruptedException($"Operator '{Uid}' subtask {context.SubtaskIndex} could not restore snapshot {restore.CheckpointId} now: {ex.Message}", ex);
                }
                catch (Exception ex) when (ex is State.Serialization.StateFormatException or CanonicalFormatException)
                {
                    throw new RestoreException($"Operator '{Uid}' subtask {context.SubtaskIndex} could not read snapshot {restore.CheckpointId}: {ex.Message}", ex);
                }
            }

            _backend = KeyedStateBackends.Create(node.Key.Serializer, context, Uid);
            if (changelog is not null)
            {
                try
                {
                    await changelog.ReplayAsync(_backend, progress is null ? null : progress.Replayed, context.Stopping);
                }
                catch (Exception ex) when (ex is State.Storage.CheckpointStorageException or State.Serialization.StateFormatException)
                {
                    _backend.Dispose();
                    _backend = null;
                    var message = $"Operator '{Uid}' subtask {context.SubtaskIndex} could not replay the changelog of snapshot {context.Restore!.CheckpointId}";
                    throw ex is State.Storage.CheckpointStorageException storage && !IsDefinitive(storage)
                        ? new RestoreInterruptedException($"{message} now: {ex.Message}", ex)
                        : new RestoreException($"{message}: {ex.Message}", ex);
                }
            }
        }
        finally
        {
            if (changelog is not null)
            {
                await changelog.DisposeAsync();
            }
        }

        var checkpointing = context.Spec.Checkpointing;
        if (context.Storage is { } checkpointStorage && checkpointing.Enabled)
        {
            var owner = new SnapshotOwner(context.Subtask.Job.Value, Uid, context.SubtaskIndex, context.KeyGroups);
            if (checkpointing.Mode == CheckpointMode.Changelog)
            {
                var options = new ChangelogOptions(checkpointing.MaterializationInterval, checkpointing.ChangelogSegmentBytes, checkpointing.ChangelogSegmentInterval);
                _changelog = new ChangelogSnapshotter(_backend, checkpointStorage, owner, MaterializationRoot(localRoot), owned, checkpointing.LocalRecovery, options, stopped: context.Stopping);
            }
            else
            {
                var eager = checkpointing.EagerUploadInterval is { } interval ? new EagerUploadOptions(interval, context.OperatorDirectory(Uid + ".eager"), context.Stopping) : null;
                _snapshotter = new IncrementalSnapshotter(_backend, checkpointStorage, owner, localRoot, owned, checkpointing.LocalRecovery, eager: eager);
            }
        }

        try
        {
            _function.Open(this);
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }
    }

    /// <summary>
    /// Whether a storage failure says something about the snapshot (an object is missing or corrupt: no retry will read it)
    /// rather than about the storage right now (unreachable, throttled, timed out: the same snapshot may restore later).
    /// </summary>
    private static bool IsDefinitive(State.Storage.CheckpointStorageException exception) =>
        exception is State.Storage.CheckpointObjectNotFoundException or State.Storage.CheckpointStorageCorruptException;

    /// <summary>
    /// Puts the restored state into <paramref name="directory"/>: native files of the same key groups as they are (from
    /// the local copy when there is one), native files of other key groups clipped and merged (rescaling), canonical
    /// files read key group by key group. Returns the handle whose files the job owns and may reference again.
    /// </summary>
    private async Task<KeyedStateHandle?> RestoreAsync(OperatorContext context, SubtaskRestore restore, IReadOnlyList<OperatorSubtaskState> parts, string directory, string localRoot)
    {
        var storage = context.Storage ?? throw new RestoreException("No checkpoint storage is configured to restore from.");
        var resources = context.Services.GetRequiredService<RocksDbResources>();
        var canonical = parts.Where(static p => p.CanonicalState is not null).Select(static p => p.CanonicalState!).ToArray();
        if (canonical.Length > 0)
        {
            if (canonical.Length != parts.Count)
            {
                throw new RestoreException($"Operator '{Uid}': snapshot {restore.CheckpointId} mixes canonical and native state.");
            }

            await CanonicalRestore.RestoreAsync(canonical, context.KeyGroups, context.Plan.MaxParallelism, restore.CheckpointId, storage, directory, context.OperatorDirectory(Uid + ".restore"), resources, context.RestoreProgress, context.Stopping);
            return null;
        }

        var handles = parts.Select(static p => p.KeyedState).OfType<KeyedStateHandle>().ToArray();
        if (handles.Length == 1 && handles[0].KeyGroups == context.KeyGroups)
        {
            var local = !context.Spec.Checkpointing.LocalRecovery ? null
                : handles[0].MaterializationId is { } materialization ? ChangelogSnapshotter.LocalMaterializationDirectory(MaterializationRoot(localRoot), materialization)
                : IncrementalSnapshotter.LocalCheckpointDirectory(localRoot, restore.CheckpointId);
            await KeyedStateRestorer.RestoreAsync(handles[0], restore.CheckpointId, storage, directory, local, context.RestoreProgress, context.Stopping);
            return restore.OwnsFiles ? handles[0] : null;
        }

        // Rescaling: the first checkpoint of this subtask uploads its state in full (its files are new combinations).
        await RescalingRestorer.RestoreAsync(handles, context.KeyGroups, restore.CheckpointId, storage, directory, context.OperatorDirectory(Uid + ".rescale"), resources, context.RestoreProgress, context.Services.GetService<SharedRestoreDownloads>(), context.Stopping);
        return null;
    }

    public override void Started() => _snapshotter?.StartEagerUploads();

    public override PendingSnapshot? SnapshotState(long checkpointId, SnapshotOptions options)
    {
        var index = Context.SubtaskIndex;
        if (_changelog is { } changelog && options.Format != SavepointFormat.Canonical)
        {
            var complete = changelog.Snapshot(checkpointId, Context.KeyGroups);
            return new PendingSnapshot(Uid, async cancellationToken =>
            {
                var snapshot = await complete(cancellationToken);
                var state = new OperatorSubtaskState { SubtaskIndex = index, KeyedState = snapshot.Handle };
                return new OperatorSnapshotResult(state, snapshot.BytesUploaded, snapshot.Handle.FullSize)
                {
                    ChangelogBytes = snapshot.ChangelogBytes,
                    Materialization = snapshot.Materialization,
                };
            });
        }

        if (_snapshotter is null && _changelog is null)
        {
            return null;
        }

        if (options.Format == SavepointFormat.Canonical)
        {
            var local = _changelog is { } viewed
                ? viewed.TakeLocalView(checkpointId, Context.OperatorDirectory(Uid + ".views"))
                : _snapshotter!.TakeLocalSnapshot(checkpointId);
            var directory = options.SavepointDirectory ?? throw new InvalidOperationException($"Canonical savepoint {checkpointId} has no directory.");
            var storage = Context.Storage!;
            var keyGroups = Context.KeyGroups;
            var maxParallelism = Context.Plan.MaxParallelism;
            var path = FormattableString.Invariant($"{directory}/{Uid}/{index}.state");
            return new PendingSnapshot(Uid, async cancellationToken =>
            {
                try
                {
                    var file = await CanonicalRestore.WriteAsync(local.Directory, keyGroups, maxParallelism, storage, path, cancellationToken);
                    var state = new OperatorSubtaskState { SubtaskIndex = index, CanonicalState = new CanonicalStateHandle { KeyGroups = keyGroups, File = file } };
                    return new OperatorSnapshotResult(state, file.Length, file.Length);
                }
                finally
                {
                    // The RocksDB checkpoint only served as a consistent view: it is not a local copy of a checkpoint.
                    Directory.Delete(local.Directory, recursive: true);
                }
            });
        }

        var snapshotter = _snapshotter!;
        var taken = snapshotter.TakeLocalSnapshot(checkpointId);
        return new PendingSnapshot(Uid, async cancellationToken =>
        {
            var uploaded = await snapshotter.UploadAsync(taken, cancellationToken);
            return new OperatorSnapshotResult(new OperatorSubtaskState { SubtaskIndex = index, KeyedState = uploaded.Handle }, uploaded.BytesUploaded, uploaded.Handle.FullSize);
        });
    }

    public override void NotifyCheckpointComplete(long checkpointId)
    {
        _snapshotter?.Completed(checkpointId);
        if (_changelog?.Completed(checkpointId) is { IsCompleted: false } truncation)
        {
            _ = truncation.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    /// <summary>Changelog mode: materializations that fail leave checkpoints referring to an old one, with a growing tail.</summary>
    public override string? Warning => _changelog is { LastMaterializationError: { } error } changelog
        ? $"Operator '{Uid}': the last materialization failed ({error.Message}); checkpoints still refer to materialization {changelog.Latest?.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(none)"} and the changelog a recovery replays grows until one succeeds."
        : null;

    public override Task NotifyCheckpointAbortedAsync(long checkpointId, CancellationToken cancellationToken)
    {
        _changelog?.Aborted(checkpointId);
        return _snapshotter?.AbortedAsync(checkpointId, cancellationToken) ?? Task.CompletedTask;
    }

    public override ValueTask AfterBatchAsync(CancellationToken cancellationToken)
    {
        if (_changelog is not { } changelog)
        {
            return ValueTask.CompletedTask;
        }

        changelog.Tick();
        var limit = Math.Max(32L << 20, 8L * Context.Spec.Checkpointing.ChangelogSegmentBytes);
        return changelog.Writer.PendingUploadBytes > limit ? new ValueTask(changelog.Writer.WaitForUploadsAsync(limit, cancellationToken)) : ValueTask.CompletedTask;
    }

    public void Process(TIn record)
    {
        try
        {
            Backend.SetCurrentKey(_selector(record));
            _function.ProcessElement(record, this, this);
        }
        catch (Exception ex) when (ex is not OperatorException)
        {
            throw Wrap(ex);
        }
    }

    public override void FireTimers(long now)
    {
        try
        {
            while (Backend.TryPopDueTimer(now, out var timestamp))
            {
                _function.OnTimer(timestamp, this, this);
            }
        }
        catch (Exception ex) when (ex is not OperatorException)
        {
            throw Wrap(ex);
        }
    }

    public void Collect(TOut record) => next.Process(record);

    public void RegisterProcessingTimeTimer(long timestamp) => Backend.RegisterProcessingTimeTimer(timestamp);

    public void DeleteProcessingTimeTimer(long timestamp) => Backend.DeleteProcessingTimeTimer(timestamp);

    public IValueState<T> GetValueState<T>(ValueStateDescriptor<T> descriptor) => Backend.GetValueState(descriptor);

    public IListState<T> GetListState<T>(ListStateDescriptor<T> descriptor) => Backend.GetListState(descriptor);

    public IMapState<TUserKey, TValue> GetMapState<TUserKey, TValue>(MapStateDescriptor<TUserKey, TValue> descriptor)
        where TUserKey : notnull => Backend.GetMapState(descriptor);

    public IReducingState<T> GetReducingState<T>(ReducingStateDescriptor<T> descriptor) => Backend.GetReducingState(descriptor);

    public override async ValueTask CloseAsync()
    {
        try
        {
            if (_backend is not null)
            {
                _function.Close();
            }
        }
        finally
        {
            var snapshotter = _snapshotter;
            _snapshotter = null;
            try
            {
                // The eager uploads read the instance: they stop before it closes.
                if (snapshotter is not null)
                {
                    await snapshotter.StopEagerUploadsAsync();
                }
            }
            finally
            {
                _backend?.Dispose();
                _backend = null;
            }

            if (snapshotter is not null)
            {
                await snapshotter.DisposeAsync();
            }
        }
    }
}

/// <summary>
/// Passes restore progress through, holding back "completed" until the changelog was replayed too, and records when the
/// files were in place (every restore of keyed state reports through it).
/// </summary>
internal sealed class ReplayAwareProgress(IProgress<RestoreProgress> inner, TimeProvider time) : IProgress<RestoreProgress>
{
    private RestoreProgress _last = new();
    private int _segments;

    public void ExpectChangelog(int segments) => _segments = segments;

    public void Report(RestoreProgress value)
    {
        var filesRestoredAt = value.FilesRestoredAt ?? _last.FilesRestoredAt ?? (value.Completed ? time.GetUtcNow() : null);
        _last = value with { ChangelogSegmentsTotal = _segments, Completed = value.Completed && _segments == 0, FilesRestoredAt = filesRestoredAt };
        inner.Report(_last);
    }

    public void Replayed(int done, int total, long bytes)
    {
        _last = _last with { ChangelogSegmentsDone = done, ChangelogSegmentsTotal = total, ChangelogBytesReplayed = bytes, Completed = done == total };
        inner.Report(_last);
    }
}

/// <summary>Creates the keyed state backend of an operator.</summary>
internal static class KeyedStateBackends
{
    public static RocksDbKeyedStateBackend<TKey> Create<TKey>(IKeySerializer<TKey>? keySerializer, OperatorContext context, string uid)
        where TKey : notnull
    {
        var serializer = context.Services.GetRequiredService<Orleans.Serialization.Serializer>();
        var resources = context.Services.GetRequiredService<RocksDbResources>();
        var options = new KeyedStateBackendOptions
        {
            Directory = context.OperatorDirectory(uid),
            KeyGroups = context.KeyGroups,
            MaxParallelism = context.Plan.MaxParallelism,
            CacheCapacity = context.Options.StateCacheEntries,
        };
        return new RocksDbKeyedStateBackend<TKey>(options, KeySerializers.For(keySerializer, serializer), serializer, resources);
    }
}

/// <summary>
/// Checkpoint storage failed while the state was restored, in a way that says nothing about the snapshot (unreachable,
/// throttled, timed out): the attempt fails like any other and the restart restores the same snapshot, which is kept.
/// </summary>
internal sealed class RestoreInterruptedException(string message, Exception innerException) : Exception(message, innerException);

/// <summary>
/// The state to restore cannot be read (missing or corrupt files, or it does not fit the subtask): the job discards the
/// snapshot and falls back to an older one.
/// </summary>
internal sealed class RestoreException : Exception
{
    public RestoreException(string message)
        : base(message)
    {
    }

    public RestoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
