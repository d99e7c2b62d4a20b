using StreamGrains.Runtime;

namespace StreamGrains.Grains.Connectors;

/// <summary>Keeps the records of one collect sink in memory, deduplicating batches by (sender, sequence).</summary>
[GrainType("streamgrains.collector")]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class CollectorGrain : Grain, ICollectorGrain
{
    private static readonly object NullKey = new();
    private readonly List<object?> _records = [];
    private readonly Dictionary<object, int> _positions = [];
    private readonly HashSet<(int Sender, long Sequence)> _seen = [];

    public Task Append(CollectedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (!_seen.Add((batch.SenderIndex, batch.Sequence)))
        {
            return Task.CompletedTask;
        }

        if (batch.Keys is not { } keys)
        {
            _records.AddRange(batch.Records);
            return Task.CompletedTask;
        }

        for (var i = 0; i < batch.Records.Length; i++)
        {
            var key = keys[i] ?? NullKey;
            if (_positions.TryGetValue(key, out var position))
            {
                _records[position] = batch.Records[i];
            }
            else
            {
                _positions[key] = _records.Count;
                _records.Add(batch.Records[i]);
            }
        }

        return Task.CompletedTask;
    }

    public Task<CollectedPage> Read(int offset, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var take = Math.Max(0, Math.Min(count, _records.Count - offset));
        var page = take == 0 ? [] : _records.GetRange(offset, take).ToArray();
        return Task.FromResult(new CollectedPage { Records = page, Total = _records.Count });
    }

    public Task Clear()
    {
        _records.Clear();
        _positions.Clear();
        _seen.Clear();
        return Task.CompletedTask;
    }
}
