using StreamGrains.Functions;
using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Operators;

/// <summary>Receives records inside a chain.</summary>
internal interface IRecordInput<in T>
{
    void Process(T record);
}

/// <summary>Drops records (an operator whose output nobody reads).</summary>
internal sealed class DiscardInput<T> : IRecordInput<T>
{
    public static readonly DiscardInput<T> Instance = new();

    public void Process(T record)
    {
    }
}

/// <summary>Hands each record to several inputs (an operator with several consumers).</summary>
internal sealed class BroadcastInput<T>(IRecordInput<T>[] targets) : IRecordInput<T>
{
    public void Process(T record)
    {
        foreach (var target in targets)
        {
            target.Process(record);
        }
    }
}

/// <summary>
/// One operator of a chain at run time.
/// </summary>
/// <remarks>
/// Lifecycle, in order, all on the subtask's mailbox: <see cref="OpenAsync"/> (restores state, then opens user code) →
/// records, timers, <see cref="AfterBatchAsync"/>, <see cref="SnapshotState"/> and checkpoint notifications
/// interleaved → <see cref="EndOfInputAsync"/> once all input ended (not on cancel) → <see cref="CloseAsync"/>. User
/// exceptions leave as <see cref="OperatorException"/>. The asynchronous part a snapshot returns runs off the mailbox
/// and must only touch what the synchronous part captured.
/// </remarks>
internal abstract class ChainOperator(string uid)
{
    public string Uid { get; } = uid;

    /// <summary>Earliest pending timer, if the operator has timers.</summary>
    public virtual long? NextTimerTimestamp => null;

    /// <summary>A condition worth a warning in the subtask's status while it lasts; null when all is well.</summary>
    public virtual string? Warning => null;

    public virtual ValueTask OpenAsync(OperatorContext context) => ValueTask.CompletedTask;

    /// <summary>The subtask starts running (every operator of the chain is open and its state restored).</summary>
    public virtual void Started()
    {
    }

    /// <summary>The synchronous part of a snapshot; null when the operator has no state.</summary>
    /// <param name="checkpointId">The checkpoint.</param>
    /// <param name="options">A checkpoint or a savepoint (native or canonical).</param>
    public virtual PendingSnapshot? SnapshotState(long checkpointId, SnapshotOptions options) => null;

    /// <summary>Checkpoint <paramref name="checkpointId"/> completed.</summary>
    public virtual void NotifyCheckpointComplete(long checkpointId)
    {
    }

    /// <summary>Checkpoint <paramref name="checkpointId"/> was aborted.</summary>
    public virtual Task NotifyCheckpointAbortedAsync(long checkpointId, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Called after each input batch or source poll; an operator that buffers may apply backpressure here.</summary>
    public virtual ValueTask AfterBatchAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Called once when all input has been processed.</summary>
    public virtual ValueTask EndOfInputAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Fires every timer due at <paramref name="now"/>.</summary>
    public virtual void FireTimers(long now)
    {
    }

    /// <summary>Releases the operator's resources (user functions are closed, state is closed).</summary>
    public virtual ValueTask CloseAsync() => ValueTask.CompletedTask;

    protected OperatorException Wrap(Exception exception) => exception as OperatorException ?? new OperatorException(Uid, exception);
}

internal sealed class MapOperator<TIn, TOut>(string uid, Func<TIn, TOut> function, IRecordInput<TOut> next) : ChainOperator(uid), IRecordInput<TIn>
{
    public void Process(TIn record)
    {
        TOut result;
        try
        {
            result = function(record);
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }

        next.Process(result);
    }
}

internal sealed class FilterOperator<T>(string uid, Func<T, bool> predicate, IRecordInput<T> next) : ChainOperator(uid), IRecordInput<T>
{
    public void Process(T record)
    {
        bool keep;
        try
        {
            keep = predicate(record);
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }

        if (keep)
        {
            next.Process(record);
        }
    }
}

internal sealed class FlatMapOperator<TIn, TOut>(string uid, Action<TIn, ICollector<TOut>> function, IRecordInput<TOut> next)
    : ChainOperator(uid), IRecordInput<TIn>, ICollector<TOut>
{
    public void Process(TIn record)
    {
        try
        {
            function(record, this);
        }
        catch (Exception ex) when (ex is not OperatorException)
        {
            throw Wrap(ex);
        }
    }

    public void Collect(TOut record) => next.Process(record);
}

/// <summary>The asynchronous part of an operator's snapshot.</summary>
/// <param name="Uid">The operator.</param>
/// <param name="CompleteAsync">Stores the snapshot.</param>
/// <param name="HasState">False when the operator only has to finish work before the acknowledgement (a sink's flush) and puts nothing into the checkpoint.</param>
internal sealed record PendingSnapshot(string Uid, Func<CancellationToken, Task<OperatorSnapshotResult>> CompleteAsync, bool HasState = true);
