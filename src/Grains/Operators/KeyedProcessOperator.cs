using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Functions;
using StreamGrains.Graph;
using StreamGrains.State;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;

namespace StreamGrains.Grains.Operators;

/// <summary>Runs a <see cref="KeyedProcessFunction{TKey, TIn, TOut}"/> with RocksDB keyed state and processing-time timers.</summary>
internal sealed class KeyedProcessOperator<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node, IRecordInput<TOut> next)
    : ChainOperator(node.EffectiveUid), IRecordInput<TIn>, IKeyedProcessContext<TKey>, ITimerService, ICollector<TOut>, IKeyedRuntimeContext
    where TKey : notnull
{
    private readonly KeyedProcessFunction<TKey, TIn, TOut> _function = node.Function;
    private readonly Func<TIn, TKey> _selector = node.Key.Selector;
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

    private OperatorContext Context => _context ?? throw new InvalidOperationException($"Operator '{Uid}' is not open.");

    public override void Open(OperatorContext context)
    {
        _context = context;
        _backend = KeyedStateBackends.Create(node.Key.Serializer, context, Uid);
        try
        {
            _function.Open(this);
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }
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
    public static IKeyedStateBackend<TKey> Create<TKey>(IKeySerializer<TKey>? keySerializer, OperatorContext context, string uid)
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
