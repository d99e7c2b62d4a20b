using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Runtime;

namespace StreamGrains.Connectors;

/// <summary>
/// A sink that keeps what it receives in a collector grain, so a test or the demo can read the results back.
/// </summary>
/// <remarks>
/// <para>In append mode every record is kept; in upsert mode (<see cref="Upsert{TKey}"/>) a record replaces an earlier
/// one with an equal key, which keeps the latest value per key. Records of one subtask keep their order.</para>
/// <para>Guarantee: the collector grain stores every batch in checkpoint storage before it acknowledges it and loads
/// them again when it is activated, so the rows survive the loss of any silo. A sink subtask waits at each checkpoint's
/// barrier until the collector stored what it sent before it, and at the end of input until it stored everything and
/// applied it without a gap; when a batch cannot be stored or is missing, the attempt fails (and restarts under the
/// job's restart strategy, or the job fails): a job never ends Finished with rows missing. When an attempt restarts from
/// a checkpoint, the collector drops what earlier attempts wrote after it (the new attempt writes it again), and when it
/// starts from scratch, everything earlier attempts wrote: both modes end exactly once. While a job runs, a reader may
/// see rows a failed attempt wrote that are dropped later. The rows are also kept in the collector's memory: this sink
/// is for tests, demos and outputs of up to a few million rows.</para>
/// </remarks>
public sealed class CollectSink<T> : ISink<T>
{
    private readonly Func<T, object?>? _key;

    /// <summary>Creates an append-mode collect sink named <paramref name="name"/>.</summary>
    public CollectSink(string name)
        : this(name, key: null)
    {
    }

    private CollectSink(string name, Func<T, object?>? key)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        _key = key;
    }

    /// <summary>Name under which the results are read back.</summary>
    public string Name { get; }

    /// <summary>Records per call to the collector grain.</summary>
    public int BatchSize { get; init; } = 1024;

    /// <summary>Creates an upsert-mode collect sink: the latest record per key is kept.</summary>
    public static CollectSink<T> Upsert<TKey>(string name, Func<T, TKey> key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new CollectSink<T>(name, r => key(r));
    }

    /// <summary>The grain key of the collector of sink <paramref name="name"/> of job <paramref name="jobId"/>.</summary>
    public static string CollectorKey(JobId jobId, string name) => $"{jobId.Value}/{name}";

    /// <inheritdoc />
    public ISinkWriter<T> CreateWriter(SinkContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var grains = context.Services.GetRequiredService<IGrainFactory>();
        return new Writer(Name, grains.GetGrain<ICollectorGrain>(CollectorKey(context.JobId, Name)), context, BatchSize, _key);
    }

    private sealed class Writer(string name, ICollectorGrain collector, SinkContext context, int batchSize, Func<T, object?>? key) : ISinkWriter<T>, ICheckpointedSinkWriter
    {
        private const int MaxInFlight = 2;
        private readonly Queue<(long Sequence, Task<long> Append)> _inFlight = new();
        private List<object?> _records = new(batchSize);
        private List<object?>? _keys = key is null ? null : new(batchSize);
        private long _after = context.RestoredFrom?.CheckpointId ?? 0;
        private long _sequence;

        public void Write(T record)
        {
            _records.Add(record);
            _keys?.Add(key!(record));
            if (_records.Count >= batchSize)
            {
                Send();
            }
        }

        public async ValueTask FlushAsync(CancellationToken cancellationToken)
        {
            while (_inFlight.Count > MaxInFlight)
            {
                var (sequence, append) = _inFlight.Dequeue();
                await AwaitAppendAsync(sequence, append);
            }
        }

        /// <summary>
        /// Sends what is buffered (an empty batch when the attempt sent nothing yet, so the collector learns of the
        /// attempt before it can complete a checkpoint), and returns a wait for every batch sent so far to be stored.
        /// </summary>
        public Func<CancellationToken, Task> SnapshotBarrier(long checkpointId)
        {
            if (_records.Count > 0 || _sequence == 0)
            {
                Send();
            }

            _after = checkpointId;
            var pending = _inFlight.ToArray();
            var sent = _sequence;
            return _ => AwaitStoredAsync(pending, sent);
        }

        /// <summary>Sends the last batch (even when empty: its answer says whether every batch before it was applied) and waits for all.</summary>
        public async ValueTask EndOfInputAsync(CancellationToken cancellationToken)
        {
            Send();

            var pending = _inFlight.ToArray();
            _inFlight.Clear();
            await AwaitStoredAsync(pending, _sequence);
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        private void Send()
        {
            var batch = new CollectedBatch
            {
                SenderIndex = context.SubtaskIndex,
                Attempt = context.Attempt,
                Sequence = _sequence++,
                Records = [.. _records],
                Keys = _keys?.ToArray(),
                After = _after,
                RestoredCheckpointId = context.RestoredFrom?.CheckpointId ?? 0,
                RestoredCheckpointAttempt = context.RestoredFrom?.Attempt ?? 0,
            };
            _records = new List<object?>(batchSize);
            _keys = key is null ? null : new List<object?>(batchSize);
            _inFlight.Enqueue((batch.Sequence, collector.Append(batch)));
        }

        /// <summary>Waits for <paramref name="pending"/> and checks that the collector applied all <paramref name="sent"/> batches, without a gap.</summary>
        private async Task AwaitStoredAsync((long Sequence, Task<long> Append)[] pending, long sent)
        {
            var applied = -1L;
            foreach (var (sequence, append) in pending)
            {
                applied = Math.Max(applied, await AwaitAppendAsync(sequence, append));
            }

            if (pending.Length > 0 && applied < sent)
            {
                throw new InvalidOperationException(
                    $"Collect sink '{name}' of job {context.JobId}, subtask {context.SubtaskIndex}, attempt {context.Attempt}: the collector holds {applied} of the {sent} batches sent " +
                    "(it lost some, or a newer attempt replaced this one); the rows are not complete, so the attempt fails.");
            }
        }

        private async Task<long> AwaitAppendAsync(long sequence, Task<long> append)
        {
            try
            {
                return await append;
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException(
                    $"Collect sink '{name}' of job {context.JobId}, subtask {context.SubtaskIndex}, attempt {context.Attempt}: the collector did not store batch {sequence} " +
                    $"({ex.GetType().Name}: {ex.Message}); its rows are not kept, so the attempt fails.",
                    ex);
            }
        }
    }
}

/// <summary>Reads what collect sinks received.</summary>
public static class CollectedResults
{
    /// <summary>Reads every record collected by sink <paramref name="name"/> of job <paramref name="jobId"/>.</summary>
    public static async Task<IReadOnlyList<T>> ReadAsync<T>(IGrainFactory grains, JobId jobId, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(grains);
        const int PageSize = 16_384;
        var collector = grains.GetGrain<ICollectorGrain>(CollectSink<T>.CollectorKey(jobId, name));
        var results = new List<T>();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var page = await collector.Read(results.Count, PageSize);
            results.AddRange(page.Records.Cast<T>());
            if (page.Records.Length == 0 || results.Count >= page.Total)
            {
                return results;
            }
        }
    }
}
