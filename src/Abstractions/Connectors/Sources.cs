namespace StreamGrains.Connectors;

/// <summary>A unit of source input that one subtask reads, with its position.</summary>
/// <param name="Id">Stable id of the split (for example "3" or "topic-7").</param>
/// <param name="Position">Where reading continues (for example the next event index or offset).</param>
[GenerateSerializer, Immutable]
public sealed record SourceSplit([property: Id(0)] string Id, [property: Id(1)] long Position);

/// <summary>Outcome of one <see cref="ISourceReader{T}.PollAsync"/>.</summary>
public enum SourceStatus : byte
{
    /// <summary>More records can be read right away.</summary>
    MoreAvailable = 0,

    /// <summary>Nothing to read now; poll again after <see cref="SourcePollResult.RetryAfter"/>.</summary>
    NothingAvailable = 1,

    /// <summary>The reader's splits are exhausted; it will emit nothing more.</summary>
    EndOfInput = 2,
}

/// <summary>Result of one poll.</summary>
public readonly record struct SourcePollResult(SourceStatus Status, TimeSpan RetryAfter)
{
    /// <summary>More records can be read right away.</summary>
    public static SourcePollResult More => new(SourceStatus.MoreAvailable, TimeSpan.Zero);

    /// <summary>The reader is done.</summary>
    public static SourcePollResult End => new(SourceStatus.EndOfInput, TimeSpan.Zero);

    /// <summary>Nothing available before <paramref name="retryAfter"/>.</summary>
    public static SourcePollResult Wait(TimeSpan retryAfter) => new(SourceStatus.NothingAvailable, retryAfter);
}

/// <summary>Where a source reader emits records.</summary>
public interface ISourceOutput<in T>
{
    /// <summary>Emits a record.</summary>
    void Emit(T record);
}

/// <summary>What a source needs to enumerate its splits.</summary>
/// <param name="Parallelism">Parallelism of the source.</param>
/// <param name="MaxParallelism">Max parallelism of the job.</param>
/// <param name="Parameters">The job's parameters.</param>
public sealed record SplitEnumerationContext(int Parallelism, int MaxParallelism, JobParameters Parameters);

/// <summary>What a source reader is created with.</summary>
public sealed record SourceReaderContext
{
    /// <summary>Uid of the source operator.</summary>
    public required string OperatorUid { get; init; }

    /// <summary>Index of the subtask.</summary>
    public required int SubtaskIndex { get; init; }

    /// <summary>Parallelism of the source.</summary>
    public required int Parallelism { get; init; }

    /// <summary>The splits this subtask reads, with their starting positions.</summary>
    public required IReadOnlyList<SourceSplit> Splits { get; init; }

    /// <summary>The runtime's clock.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Silo services (for connectors that need them).</summary>
    public IServiceProvider? Services { get; init; }
}

/// <summary>
/// A source of records. The source is a description; each subtask creates a reader for the splits assigned to it.
/// </summary>
/// <remarks>
/// Splits are assigned round-robin: split <c>k</c> of the list <see cref="EnumerateSplits"/> returns goes to subtask
/// <c>k mod parallelism</c>. A split's position is stored in checkpoints, so a source that can seek to a position is
/// replayable.
/// </remarks>
public interface ISource<T>
{
    /// <summary>Whether the source ends (every reader eventually returns <see cref="SourceStatus.EndOfInput"/>).</summary>
    bool IsBounded { get; }

    /// <summary>All splits of the source with their initial positions, in a deterministic order.</summary>
    IReadOnlyList<SourceSplit> EnumerateSplits(SplitEnumerationContext context);

    /// <summary>Creates the reader of one subtask.</summary>
    ISourceReader<T> CreateReader(SourceReaderContext context);
}

/// <summary>Reads records of some splits. Called on the subtask's mailbox, one call at a time.</summary>
public interface ISourceReader<T> : IAsyncDisposable
{
    /// <summary>Emits up to <paramref name="maxRecords"/> records to <paramref name="output"/>.</summary>
    ValueTask<SourcePollResult> PollAsync(ISourceOutput<T> output, int maxRecords, CancellationToken cancellationToken);

    /// <summary>The positions after the last emitted record, one per assigned split.</summary>
    IReadOnlyList<SourceSplit> SnapshotSplits();
}
