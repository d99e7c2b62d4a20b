using StreamGrains.Connectors;
using StreamGrains.Graph;
using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Operators;

/// <summary>The head of a source chain: polls the source reader and pushes records into the chain.</summary>
internal interface ISourceDriver
{
    ValueTask<SourcePollResult> PollAsync(int maxRecords, CancellationToken cancellationToken);
}

internal sealed class SourceOperator<T>(SourceNode<T> node, IRecordInput<T> next) : ChainOperator(node.EffectiveUid), ISourceDriver, ISourceOutput<T>
{
    private ISourceReader<T>? _reader;
    private Counter? _recordsIn;
    private int _subtaskIndex;

    public override ValueTask OpenAsync(OperatorContext context)
    {
        _recordsIn = context.RecordsIn;
        _subtaskIndex = context.SubtaskIndex;
        try
        {
            _reader = node.Source.CreateReader(new SourceReaderContext
            {
                OperatorUid = Uid,
                SubtaskIndex = context.SubtaskIndex,
                Parallelism = context.Parallelism,
                Splits = context.Splits,
                Time = context.Time,
                Services = context.Services,
            });
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }

        return ValueTask.CompletedTask;
    }

    public override PendingSnapshot? SnapshotState(long checkpointId, SnapshotOptions options)
    {
        var reader = _reader ?? throw new InvalidOperationException($"Source '{Uid}' is not open.");
        IReadOnlyList<SourceSplit> splits;
        try
        {
            splits = reader.SnapshotSplits();
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }

        var state = new OperatorSubtaskState { SubtaskIndex = _subtaskIndex, SourceSplits = splits, RecordsRead = _recordsIn?.Value };
        return new PendingSnapshot(Uid, _ => Task.FromResult(new OperatorSnapshotResult(state, 0, 0)));
    }

    public async ValueTask<SourcePollResult> PollAsync(int maxRecords, CancellationToken cancellationToken)
    {
        var reader = _reader ?? throw new InvalidOperationException($"Source '{Uid}' is not open.");
        try
        {
            return await reader.PollAsync(this, maxRecords, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperatorException and not OperationCanceledException)
        {
            throw Wrap(ex);
        }
    }

    public void Emit(T record)
    {
        _recordsIn!.Increment();
        next.Process(record);
    }

    public override async ValueTask CloseAsync()
    {
        if (_reader is { } reader)
        {
            _reader = null;
            await reader.DisposeAsync();
        }
    }
}

internal sealed class SinkOperator<T>(SinkNode<T> node) : ChainOperator(node.EffectiveUid), IRecordInput<T>
{
    private ISinkWriter<T>? _writer;
    private Counter? _recordsOut;
    private int _subtaskIndex;

    private ISinkWriter<T> Writer => _writer ?? throw new InvalidOperationException($"Sink '{Uid}' is not open.");

    public override ValueTask OpenAsync(OperatorContext context)
    {
        _recordsOut = context.RecordsOut;
        try
        {
            _writer = node.Sink.CreateWriter(new SinkContext
            {
                JobId = context.Subtask.Job,
                OperatorUid = Uid,
                SubtaskIndex = context.SubtaskIndex,
                Parallelism = context.Parallelism,
                Services = context.Services,
                Attempt = context.Subtask.Attempt,
                RestoredFrom = context.RestoredFrom,
            });
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }

        _subtaskIndex = context.SubtaskIndex;
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// A writer that takes part in checkpoints sends what it buffered at the barrier; the checkpoint is acknowledged once
    /// the destination holds it. The sink itself keeps no state in the checkpoint.
    /// </summary>
    public override PendingSnapshot? SnapshotState(long checkpointId, SnapshotOptions options)
    {
        if (Writer is not ICheckpointedSinkWriter checkpointed)
        {
            return null;
        }

        Func<CancellationToken, Task> durable;
        try
        {
            durable = checkpointed.SnapshotBarrier(checkpointId);
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }

        var state = new OperatorSubtaskState { SubtaskIndex = _subtaskIndex };
        return new PendingSnapshot(Uid, async cancellationToken =>
        {
            await durable(cancellationToken);
            return new OperatorSnapshotResult(state, 0, 0);
        }, HasState: false);
    }

    public void Process(T record)
    {
        try
        {
            Writer.Write(record);
        }
        catch (Exception ex)
        {
            throw Wrap(ex);
        }

        _recordsOut!.Increment();
    }

    public override async ValueTask AfterBatchAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Writer.FlushAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw Wrap(ex);
        }
    }

    public override async ValueTask EndOfInputAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Writer.EndOfInputAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw Wrap(ex);
        }
    }

    public override async ValueTask CloseAsync()
    {
        if (_writer is { } writer)
        {
            _writer = null;
            await writer.DisposeAsync();
        }
    }
}
