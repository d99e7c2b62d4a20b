using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Functions;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Operators;

/// <summary>Runs a <see cref="KeyedProcessFunction{TKey, TIn, TOut}"/> with RocksDB keyed state and processing-time timers.</summary>
internal sealed class KeyedProcessOperator<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node, IRecordInput<TOut> next)
    : ChainOperator(node.EffectiveUid), IRecordInput<TIn>, IKeyedProcessContext<TKey>, ITimerService, ICollector<TOut>, IKeyedRuntimeContext
    where TKey : notnull
{
    private readonly KeyedProcessFunction<TKey, TIn, TOut> _function = node.Function;
    private readonly Func<TIn, TKey> _selector = node.Key.Selector;
    private RocksDbKeyedStateBackend<TKey>? _backend;
    private IncrementalSnapshotter? _snapshotter;
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

    public override async ValueTask OpenAsync(OperatorContext context)
    {
        _context = context;
        var directory = context.OperatorDirectory(Uid);
        var localRoot = context.OperatorLocalCheckpointRoot(Uid);
        KeyedStateHandle? owned = null;
        if (context.Restore is { } restore && restore.Operators.TryGetValue(Uid, out var parts) && parts.Count > 0)
        {
            try
            {
                owned = await RestoreAsync(context, restore, parts, directory, localRoot);
            }
            catch (State.Storage.CheckpointStorageException ex)
            {
                throw new RestoreException($"Operator '{Uid}' subtask {context.SubtaskIndex} could not restore snapshot {restore.CheckpointId}: {ex.Message}", ex);
            }
            catch (Exception ex) when (ex is State.Serialization.StateFormatException or CanonicalFormatException)
            {
                throw new RestoreException($"Operator '{Uid}' subtask {context.SubtaskIndex} could not read snapshot {restore.CheckpointId}: {ex.Message}", ex);
            }
        }

        _backend = KeyedStateBackends.Create(node.Key.Serializer, context, Uid);
        if (context.Storage is { } checkpointStorage && context.Spec.Checkpointing.Enabled)
        {
            var owner = new SnapshotOwner(context.Subtask.Job.Value, Uid, context.SubtaskIndex, context.KeyGroups);
            _snapshotter = new IncrementalSnapshotter(_backend, checkpointStorage, owner, localRoot, owned, context.Spec.Checkpointing.LocalRecovery);
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
            var local = context.Spec.Checkpointing.LocalRecovery ? IncrementalSnapshotter.LocalCheckpointDirectory(localRoot, restore.CheckpointId) : null;
            await KeyedStateRestorer.RestoreAsync(handles[0], restore.CheckpointId, storage, directory, local, context.RestoreProgress, context.Stopping);
            return restore.OwnsFiles ? handles[0] : null;
        }

        // Rescaling: the first checkpoint of this subtask uploads its state in full (its files are new combinations).
        await RescalingRestorer.RestoreAsync(handles, context.KeyGroups, restore.CheckpointId, storage, directory, context.OperatorDirectory(Uid + ".rescale"), resources, context.RestoreProgress, context.Stopping);
        return null;
    }

    public override PendingSnapshot? SnapshotState(long checkpointId, SnapshotOptions options)
    {
        if (_snapshotter is not { } snapshotter)
        {
            return null;
        }

        var local = snapshotter.TakeLocalSnapshot(checkpointId);
        var index = Context.SubtaskIndex;
        if (options.Format == SavepointFormat.Canonical)
        {
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

        return new PendingSnapshot(Uid, async cancellationToken =>
        {
            var uploaded = await snapshotter.UploadAsync(local, cancellationToken);
            return new OperatorSnapshotResult(new OperatorSubtaskState { SubtaskIndex = index, KeyedState = uploaded.Handle }, uploaded.BytesUploaded, uploaded.Handle.FullSize);
        });
    }

    public override void NotifyCheckpointComplete(long checkpointId) => _snapshotter?.Completed(checkpointId);

    public override Task NotifyCheckpointAbortedAsync(long checkpointId, CancellationToken cancellationToken) =>
        _snapshotter?.AbortedAsync(checkpointId, cancellationToken) ?? Task.CompletedTask;

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

    public override ValueTask CloseAsync()
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
            _backend?.Dispose();
            _backend = null;
        }

        return ValueTask.CompletedTask;
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

/// <summary>The state to restore could not be read (missing or corrupt files, or it does not fit the subtask).</summary>
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
