using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Functions;
using StreamGrains.Graph;
using StreamGrains.Snapshots;
using StreamGrains.State;
using StreamGrains.State.RocksDb;
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
        if (context.Restore is { } restore && restore.Operators.TryGetValue(Uid, out var state) && state.KeyedState is { } handle)
        {
            if (handle.KeyGroups != context.KeyGroups)
            {
                throw new RestoreException($"Operator '{Uid}' subtask {context.SubtaskIndex} owns key groups {context.KeyGroups} but checkpoint {restore.CheckpointId} has {handle.KeyGroups} for it; restoring with another parallelism is not supported yet.");
            }

            var storage = context.Storage ?? throw new RestoreException("No checkpoint storage is configured to restore from.");
            var local = context.Spec.Checkpointing.LocalRecovery ? IncrementalSnapshotter.LocalCheckpointDirectory(localRoot, restore.CheckpointId) : null;
            try
            {
                await KeyedStateRestorer.RestoreAsync(handle, restore.CheckpointId, storage, directory, local, context.RestoreProgress, context.Stopping);
            }
            catch (State.Storage.CheckpointStorageException ex)
            {
                throw new RestoreException($"Operator '{Uid}' subtask {context.SubtaskIndex} could not restore checkpoint {restore.CheckpointId}: {ex.Message}", ex);
            }

            owned = restore.OwnsFiles ? handle : null;
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

    public override PendingSnapshot? SnapshotState(long checkpointId)
    {
        if (_snapshotter is not { } snapshotter)
        {
            return null;
        }

        var local = snapshotter.TakeLocalSnapshot(checkpointId);
        var index = Context.SubtaskIndex;
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
