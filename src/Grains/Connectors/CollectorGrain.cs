using StreamGrains.Runtime;

namespace StreamGrains.Grains.Connectors;

/// <summary>
/// Keeps the records of one collect sink in memory. Orleans may deliver a sender's concurrent calls out of order, so
/// batches are applied per sender in sequence order (later ones wait for earlier ones) and duplicates are dropped:
/// in upsert mode the last record per key is then the last one the sink wrote. Batches of an attempt older than the
/// newest one seen are dropped (a stopped attempt's late writes must not overwrite the new attempt's).
/// </summary>
[GrainType("streamgrains.collector")]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class CollectorGrain : Grain, ICollectorGrain
{
    private static readonly object NullKey = new();
    private readonly List<object?> _records = [];
    private readonly Dictionary<object, int> _positions = [];
    private readonly Dictionary<int, SenderState> _senders = [];
    private int _attempt;

    public Task Append(CollectedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Attempt < _attempt)
        {
            return Task.CompletedTask;
        }

        if (batch.Attempt > _attempt)
        {
            _attempt = batch.Attempt;
            _senders.Clear();
        }

        if (!_senders.TryGetValue(batch.SenderIndex, out var sender))
        {
            _senders[batch.SenderIndex] = sender = new SenderState();
        }

        if (batch.Sequence < sender.Expected || !sender.Held.TryAdd(batch.Sequence, batch))
        {
            return Task.CompletedTask;
        }

        while (sender.Held.Remove(sender.Expected, out var next))
        {
            Apply(next);
            sender.Expected++;
        }

        return Task.CompletedTask;
    }

    private void Apply(CollectedBatch batch)
    {
        if (batch.Keys is not { } keys)
        {
            _records.AddRange(batch.Records);
            return;
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
        _senders.Clear();
        return Task.CompletedTask;
    }

    private sealed class SenderState
    {
        public long Expected { get; set; }

        public Dictionary<long, CollectedBatch> Held { get; } = [];
    }
}
