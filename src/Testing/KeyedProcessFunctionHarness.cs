using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.Grains;
using StreamGrains.Grains.Operators;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.State;
using StreamGrains.State.RocksDb;

namespace StreamGrains.Testing;

/// <summary>
/// Runs one <see cref="KeyedProcessFunction{TKey, TIn, TOut}"/> without a cluster: real RocksDB state in a temporary
/// directory, processing-time timers on a manual clock, and the emitted records collected in <see cref="Output"/>.
/// </summary>
/// <remarks>
/// It runs the same operator code as a subtask, owning every key group. Typical use: <see cref="ProcessElement"/>
/// some records, <see cref="AdvanceProcessingTime"/> to fire timers, assert on <see cref="Output"/> and on state read
/// with <see cref="GetValueState{T}"/>.
/// </remarks>
public sealed class KeyedProcessFunctionHarness<TKey, TIn, TOut> : IAsyncDisposable
    where TKey : notnull
{
    private const string OperatorUid = "harness";
    private readonly KeyedProcessOperator<TKey, TIn, TOut> _operator;
    private readonly CollectingInput _output = new();
    private readonly ServiceProvider _services;
    private readonly string _directory;
    private bool _disposed;

    /// <summary>Opens the function (its <c>Open</c> runs here).</summary>
    /// <param name="function">The function under test.</param>
    /// <param name="keySelector">Extracts each record's key.</param>
    /// <param name="maxParallelism">Number of key groups (the harness owns them all).</param>
    /// <param name="parameters">Job parameters visible to the function.</param>
    /// <param name="clock">The processing-time clock; a new <see cref="ManualTimeProvider"/> when null.</param>
    public KeyedProcessFunctionHarness(
        KeyedProcessFunction<TKey, TIn, TOut> function,
        Func<TIn, TKey> keySelector,
        int maxParallelism = KeyGroups.DefaultMaxParallelism,
        JobParameters? parameters = null,
        ManualTimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(keySelector);
        Clock = clock ?? new ManualTimeProvider();
        _directory = Path.Combine(Path.GetTempPath(), "streamgrains-harness", Guid.NewGuid().ToString("N")[..12]);
        var collection = new ServiceCollection().AddSerializer();
        collection.AddSingleton(_ => new RocksDbResources(new RocksDbResourceOptions { BlockCacheBytes = 16 << 20, WriteBufferBytes = 16 << 20, ColumnFamilyWriteBufferBytes = 4 << 20, BackgroundThreads = 1 }));
        _services = collection.BuildServiceProvider();

        var builder = new StreamBuilder(maxParallelism);
        builder.Source(new GeneratorSource<TIn>(static _ => throw new InvalidOperationException("The harness has no source.")) { Count = 0 })
            .Uid("harness-source")
            .KeyBy(keySelector)
            .Process(function)
            .Uid(OperatorUid);
        var spec = new JobSpec { JobType = "harness", Parameters = parameters ?? JobParameters.Empty, MaxParallelism = maxParallelism };
        var plan = JobPlan.Create(builder.Nodes, 1, maxParallelism);
        var node = (KeyedProcessNode<TKey, TIn, TOut>)plan.Nodes.Single(static n => n.Uid == OperatorUid);
        var chain = plan.ChainOf(node);
        _operator = new KeyedProcessOperator<TKey, TIn, TOut>(node, _output);
        var open = _operator.OpenAsync(new OperatorContext
        {
            Subtask = new SubtaskId(new JobId(OperatorUid), chain.Index, 0, 1),
            Chain = chain,
            Plan = plan,
            Spec = spec,
            KeyGroups = new KeyGroupRange(0, maxParallelism - 1),
            Splits = [],
            StateDirectory = _directory,
            LocalCheckpointRoot = Path.Combine(_directory, "local"),
            Services = _services,
            Time = Clock,
            Options = new StreamGrainsOptions { StateDirectory = _directory },
            RecordsIn = new Counter(),
            RecordsOut = new Counter(),
        });

        // There is no state to restore, so opening does no I/O and has completed here.
        if (!open.IsCompleted)
        {
            throw new InvalidOperationException("Opening the operator under test did not complete synchronously.");
        }

        open.GetAwaiter().GetResult();
    }

    /// <summary>The processing-time clock.</summary>
    public ManualTimeProvider Clock { get; }

    /// <summary>Records emitted so far, in order.</summary>
    public IReadOnlyList<TOut> Output => _output.Records;

    /// <summary>Number of registered timers.</summary>
    public int PendingTimers => _operator.Backend.TimerCount;

    /// <summary>Processes one record with its key's state.</summary>
    /// <exception cref="UserCodeException">When the function throws.</exception>
    public void ProcessElement(TIn record) => Run(() => _operator.Process(record));

    /// <summary>Processes records in order.</summary>
    public void ProcessElements(IEnumerable<TIn> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        foreach (var record in records)
        {
            ProcessElement(record);
        }
    }

    /// <summary>Moves the clock forward and fires every timer that is then due, in timestamp order.</summary>
    public void AdvanceProcessingTime(TimeSpan delta)
    {
        Clock.Advance(delta);
        Run(() => _operator.FireTimers(Clock.UnixMilliseconds));
    }

    /// <summary>The value of <paramref name="descriptor"/> for <paramref name="key"/>.</summary>
    public T? GetValueState<T>(TKey key, ValueStateDescriptor<T> descriptor)
    {
        _operator.Backend.SetCurrentKey(key);
        return _operator.Backend.GetValueState(descriptor).Get();
    }

    /// <summary>The elements of <paramref name="descriptor"/> for <paramref name="key"/>.</summary>
    public IReadOnlyList<T> GetListState<T>(TKey key, ListStateDescriptor<T> descriptor)
    {
        _operator.Backend.SetCurrentKey(key);
        return _operator.Backend.GetListState(descriptor).Get();
    }

    /// <summary>The entries of <paramref name="descriptor"/> for <paramref name="key"/>.</summary>
    public IReadOnlyList<KeyValuePair<TUserKey, TValue>> GetMapState<TUserKey, TValue>(TKey key, MapStateDescriptor<TUserKey, TValue> descriptor)
        where TUserKey : notnull
    {
        _operator.Backend.SetCurrentKey(key);
        return _operator.Backend.GetMapState(descriptor).Entries();
    }

    /// <summary>Forgets the collected output.</summary>
    public void ClearOutput() => _output.Records.Clear();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _operator.CloseAsync();
        await _services.DisposeAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static void Run(Action action)
    {
        try
        {
            action();
        }
        catch (OperatorException ex)
        {
            throw new UserCodeException(ex.OperatorUid, ex.InnerException!);
        }
    }

    private sealed class CollectingInput : IRecordInput<TOut>
    {
        public List<TOut> Records { get; } = [];

        public void Process(TOut record) => Records.Add(record);
    }
}
