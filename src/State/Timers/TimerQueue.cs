namespace StreamGrains.State.Timers;

/// <summary>
/// In-memory index of registered timers: a min-heap by (timestamp, registration order) with lazy deletion, and a set
/// for deduplication. RocksDB holds the durable copy; this index is rebuilt from it on open.
/// </summary>
internal sealed class TimerQueue
{
    private readonly PriorityQueue<Timer, (long Timestamp, long Order)> _heap = new();
    private readonly HashSet<Timer> _registered = new(TimerComparer.Instance);
    private long _order;

    public int Count => _registered.Count;

    public bool Add(long timestamp, ReadOnlySpan<byte> keyPart)
    {
        var timer = new Timer(timestamp, keyPart.ToArray());
        if (!_registered.Add(timer))
        {
            return false;
        }

        _heap.Enqueue(timer, (timestamp, _order++));
        return true;
    }

    public bool Remove(long timestamp, ReadOnlySpan<byte> keyPart) =>
        _registered.Remove(new Timer(timestamp, keyPart.ToArray()));

    /// <summary>The earliest registered timer, dropping deleted ones from the top of the heap.</summary>
    public bool Peek(out Timer timer)
    {
        while (_heap.TryPeek(out timer, out _))
        {
            if (_registered.Contains(timer))
            {
                return true;
            }

            _heap.Dequeue();
        }

        timer = default;
        return false;
    }

    internal readonly record struct Timer(long Timestamp, byte[] KeyPart);

    private sealed class TimerComparer : IEqualityComparer<Timer>
    {
        public static readonly TimerComparer Instance = new();

        public bool Equals(Timer x, Timer y) => x.Timestamp == y.Timestamp && x.KeyPart.AsSpan().SequenceEqual(y.KeyPart);

        public int GetHashCode(Timer obj) => HashCode.Combine(obj.Timestamp, RocksDb.ByteArrayComparer.Instance.GetHashCode(obj.KeyPart));
    }
}
