using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Functions;
using StreamGrains.Graph;
using StreamGrains.Snapshots;
using StreamGrains.State;
using StreamGrains.State.Restore;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Operators;

/// <summary>Runs a <see cref="KeyedProcessFunction{TKey, TIn, TOut}"/> with keyed state and processing-time timers.</summary>
/// <remarks>
/// The keyed state is State's (<see cref="OperatorKeyedState{TKey}"/>): it restores, opens the backend and snapshots
/// with whichever strategy the job's checkpoint mode and each savepoint's format ask for; the operator passes the
/// subtask's calls through and gives its function the backend.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "An operator's end of life is CloseAsync, which disposes the state.")]
internal sealed class KeyedProcessOperator<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node, IRecordInput<TOut> next)
    : ChainOperator(node.EffectiveUid), IRecordInput<TIn>, IKeyedProcessContext<TKey>, ITimerService, ICollector<TOut>, IKeyedRuntimeContext
    where TKey : notnull
{
    private readonly KeyedProcessFunction<TKey, TIn, TOut> _function = node.Function;
    private readonly Func<TIn, TKey> _selector = node.Key.Selector;
    private OperatorKeyedState<TKey>? _state;
    private IKeyedStateBackend<TKey>? _backend;
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

    internal IKeyedStateBackend<TKey> Backend => _backend ?? throw new InvalidOperationException($"Operator '{Uid}' is not open.");

    /// <summary>Changelog mode: materializations that fail leave checkpoints referring to an old one, with a growing tail.</summary>
    public override string? Warning => _state?.Warning;

    private OperatorContext Context => _context ?? throw new InvalidOperationException($"Operator '{Uid}' is not open.");

    private OperatorKeyedState<TKey> KeyedState => _state ?? throw new InvalidOperationException($"Operator '{Uid}' is not open.");

    public override async ValueTask OpenAsync(OperatorContext context)
    {
        _context = context;
        var services = context.Services;
        var restore = context.Restore is { } snapshot && snapshot.Operators.TryGetValue(Uid, out var parts) ? new SnapshotToRestore(snapshot.CheckpointId, parts, snapshot.OwnsFiles) : null;
        var request = new OperatorKeyedStateRequest
        {
            Owner = new SnapshotOwner(context.Subtask.Job.Value, Uid, context.SubtaskIndex, context.KeyGroups),
            MaxParallelism = context.Plan.MaxParallelism,
            Directories = new KeyedStateDirectories(context.OperatorDirectory(Uid), context.OperatorLocalCheckpointRoot(Uid)),
            Storage = context.Storage,
            Resources = services.GetRequiredService<RocksDbResources>(),
            CacheCapacity = context.Options.StateCacheEntries,
            Checkpointing = context.Spec.Checkpointing,
            Restore = restore,
            SharedDownloads = services.GetService<SharedRestoreDownloads>(),
            Progress = context.RestoreProgress,
            Time = context.Time,
            Stopping = context.Stopping,
        };
        _state = await OperatorKeyedState.OpenAsync(request, services.GetRequiredService<Orleans.Serialization.Serializer>(), node.Key.Serializer);
        _backend = _state.Backend;
        try
        {
            _function.Open(this);
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }
    }

    public override void Started() => _state?.Started();

    public override PendingSnapshot? SnapshotState(long checkpointId, SnapshotOptions options) =>
        KeyedState.Snapshot(checkpointId, options) is { } complete ? new PendingSnapshot(Uid, complete) : null;

    public override void NotifyCheckpointComplete(long checkpointId) => _state?.Completed(checkpointId);

    public override Task NotifyCheckpointAbortedAsync(long checkpointId, CancellationToken cancellationToken) =>
        _state?.AbortedAsync(checkpointId, cancellationToken) ?? Task.CompletedTask;

    public override ValueTask AfterBatchAsync(CancellationToken cancellationToken) =>
        _state?.AfterBatchAsync(cancellationToken) ?? ValueTask.CompletedTask;

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
            if (_state is not null)
            {
                _function.Close();
            }
        }
        finally
        {
            var state = _state;
            _state = null;
            _backend = null;
            if (state is not null)
            {
                await state.DisposeAsync();
            }
        }
    }
}
