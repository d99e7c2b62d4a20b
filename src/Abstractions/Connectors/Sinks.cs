namespace StreamGrains.Connectors;

/// <summary>What a sink writer is created with.</summary>
public sealed record SinkContext
{
    /// <summary>The job.</summary>
    public required JobId JobId { get; init; }

    /// <summary>Uid of the sink operator.</summary>
    public required string OperatorUid { get; init; }

    /// <summary>Index of the subtask.</summary>
    public required int SubtaskIndex { get; init; }

    /// <summary>Parallelism of the sink.</summary>
    public required int Parallelism { get; init; }

    /// <summary>Silo services: grain factory, logging, options.</summary>
    public required IServiceProvider Services { get; init; }

    /// <summary>The job attempt the writer belongs to (1 for the first deployment, higher after restarts).</summary>
    public int Attempt { get; init; } = 1;

    /// <summary>
    /// The job's own checkpoint the attempt restored from after a failover, with the attempt that took it; null when the
    /// attempt started from scratch or from a savepoint. What an earlier attempt wrote after it is written again.
    /// </summary>
    public Runtime.RestoredCheckpoint? RestoredFrom { get; init; }
}

/// <summary>A destination of records. The sink is a description; each subtask creates a writer.</summary>
public interface ISink<T>
{
    /// <summary>Creates the writer of one subtask.</summary>
    ISinkWriter<T> CreateWriter(SinkContext context);
}

/// <summary>A sink writer that takes part in checkpoints: what it wrote before a barrier is durable before the checkpoint completes.</summary>
public interface ICheckpointedSinkWriter
{
    /// <summary>
    /// The barrier of checkpoint <paramref name="checkpointId"/> reached the sink: called on the subtask's mailbox after
    /// the records before the barrier and before those after it. Sends what is buffered and returns the asynchronous part,
    /// which completes once every record written before the barrier is durable at the destination (the subtask
    /// acknowledges the checkpoint only then) and throws when that cannot be made so. The asynchronous part runs off the
    /// mailbox and must only touch what this call captured.
    /// </summary>
    Func<CancellationToken, Task> SnapshotBarrier(long checkpointId);
}

/// <summary>Writes records of one subtask. Called on the subtask's mailbox, one call at a time.</summary>
/// <remarks>
/// <see cref="Write"/> is synchronous and should only buffer. The runtime calls <see cref="FlushAsync"/> after every
/// input batch and before the end of input; a writer applies backpressure by not completing it until its buffer has
/// room, which stops the subtask from taking more input.
/// </remarks>
public interface ISinkWriter<T> : IAsyncDisposable
{
    /// <summary>Buffers one record.</summary>
    void Write(T record);

    /// <summary>Sends what is buffered as far as needed to make room; completes synchronously when nothing is due.</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken);

    /// <summary>Called once after the last record: everything buffered must be written when it completes.</summary>
    ValueTask EndOfInputAsync(CancellationToken cancellationToken);
}
