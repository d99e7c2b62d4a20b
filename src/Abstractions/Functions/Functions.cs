using StreamGrains.State;

namespace StreamGrains.Functions;

/// <summary>Receives the records an operator emits.</summary>
public interface ICollector<in T>
{
    /// <summary>Emits <paramref name="record"/> downstream.</summary>
    /// <remarks>Records are handed on by reference: do not change a record after emitting it.</remarks>
    void Collect(T record);
}

/// <summary>Where an operator runs and what it can reach.</summary>
public interface IRuntimeContext
{
    /// <summary>Uid of the operator.</summary>
    string OperatorUid { get; }

    /// <summary>Index of this subtask.</summary>
    int SubtaskIndex { get; }

    /// <summary>Parallelism of the operator.</summary>
    int Parallelism { get; }

    /// <summary>Max parallelism (number of key groups) of the job.</summary>
    int MaxParallelism { get; }

    /// <summary>The job's parameters.</summary>
    JobParameters Parameters { get; }
}

/// <summary>Runtime context of a keyed operator: adds keyed state.</summary>
public interface IKeyedRuntimeContext : IRuntimeContext, IKeyedStateStore
{
    /// <summary>The key groups this subtask owns.</summary>
    KeyGroupRange KeyGroups { get; }
}

/// <summary>Processing-time clock and timers of the current key.</summary>
public interface ITimerService
{
    /// <summary>The current processing time, in milliseconds since the Unix epoch.</summary>
    long CurrentProcessingTime { get; }

    /// <summary>
    /// Registers a timer for the current key that fires once processing time reaches <paramref name="timestamp"/>
    /// (milliseconds since the Unix epoch). Registering the same (key, timestamp) twice keeps one timer.
    /// </summary>
    void RegisterProcessingTimeTimer(long timestamp);

    /// <summary>Deletes the current key's timer at <paramref name="timestamp"/>, if any.</summary>
    void DeleteProcessingTimeTimer(long timestamp);
}

/// <summary>What a keyed process function sees while it processes a record or a timer.</summary>
public interface IKeyedProcessContext<out TKey>
{
    /// <summary>The key of the record or timer being processed.</summary>
    TKey CurrentKey { get; }

    /// <summary>Timers of the current key.</summary>
    ITimerService TimerService { get; }
}

/// <summary>
/// Processes the records of a keyed stream one at a time, with keyed state and timers scoped to each record's key.
/// </summary>
/// <remarks>
/// Lifecycle, in order: <see cref="Open"/> once per subtask (obtain state handles here; state is already restored),
/// then any interleaving of <see cref="ProcessElement"/> and <see cref="OnTimer"/>, one call at a time, then
/// <see cref="Close"/>. State handles obtained in <see cref="Open"/> always act on the key of the current call.
/// </remarks>
public abstract class KeyedProcessFunction<TKey, TIn, TOut>
    where TKey : notnull
{
    /// <summary>Called once before any record; obtain state handles from <paramref name="context"/>.</summary>
    public virtual void Open(IKeyedRuntimeContext context)
    {
    }

    /// <summary>Processes one record of the current key.</summary>
    public abstract void ProcessElement(TIn value, IKeyedProcessContext<TKey> context, ICollector<TOut> output);

    /// <summary>Called when a timer of <paramref name="context"/>'s current key fires.</summary>
    public virtual void OnTimer(long timestamp, IKeyedProcessContext<TKey> context, ICollector<TOut> output)
    {
    }

    /// <summary>Called once after the last record or when the subtask stops.</summary>
    public virtual void Close()
    {
    }
}
