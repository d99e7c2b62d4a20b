using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Runtime;

namespace StreamGrains.Connectors;

/// <summary>
/// A sink that keeps what it receives in a collector grain, so a test or the demo can read the results back.
/// </summary>
/// <remarks>
/// In append mode every record is kept; in upsert mode (<see cref="Upsert{TKey}"/>) a record replaces an earlier one
/// with an equal key, which keeps the latest value per key. After a restart from a checkpoint, records written after
/// that checkpoint are written again: upsert mode then still ends with the right value per key, append mode holds
/// duplicates (at-least-once). Writes of an older attempt that arrive after a newer one's are dropped. Results live in
/// memory on one silo: this sink is for tests, demos and small outputs.
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
        return new Writer(grains.GetGrain<ICollectorGrain>(CollectorKey(context.JobId, Name)), context.SubtaskIndex, context.Attempt, BatchSize, _key);
    }

    private sealed class Writer(ICollectorGrain collector, int senderIndex, int attempt, int batchSize, Func<T, object?>? key) : ISinkWriter<T>
    {
        private const int MaxInFlight = 2;
        private readonly Queue<Task> _inFlight = new();
        private List<object?> _records = new(batchSize);
        private List<object?>? _keys = key is null ? null : new(batchSize);
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
                await _inFlight.Dequeue();
            }
        }

        public async ValueTask EndOfInputAsync(CancellationToken cancellationToken)
        {
            if (_records.Count > 0)
            {
                Send();
            }

            while (_inFlight.Count > 0)
            {
                await _inFlight.Dequeue();
            }
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        private void Send()
        {
            var batch = new CollectedBatch { SenderIndex = senderIndex, Attempt = attempt, Sequence = _sequence++, Records = [.. _records], Keys = _keys?.ToArray() };
            _records = new List<object?>(batchSize);
            _keys = key is null ? null : new List<object?>(batchSize);
            _inFlight.Enqueue(collector.Append(batch));
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
