using StreamGrains.Runtime;

namespace StreamGrains.Grains.Connectors;

/// <summary>What a collector grain does with a batch that arrives.</summary>
internal enum BatchDisposition
{
    /// <summary>It belongs to an older attempt than one already seen: dropped.</summary>
    Stale,

    /// <summary>The same attempt, sender and sequence was received before: ignored.</summary>
    Duplicate,

    /// <summary>Not seen before: stored, then accepted.</summary>
    New,
}

/// <summary>
/// The rows of one collect sink, in memory, as the batches that make them up: the logic of <see cref="CollectorGrain"/>
/// without its storage.
/// </summary>
/// <remarks>
/// <para>Orleans may deliver a sender's concurrent calls out of order, so batches are applied per sender in sequence
/// order (later ones are held until the earlier ones arrive) and duplicates are ignored: in upsert mode the last record
/// per key is then the last one the sink wrote.</para>
/// <para>The rows are those of the newest attempt's lineage: its own batches, plus, when it restored a checkpoint, the
/// batches the attempt that took that checkpoint wrote before its barrier (<see cref="CollectedBatch.After"/> below the
/// checkpoint), plus that attempt's own lineage, and so on. What earlier attempts wrote outside the lineage is not
/// shown, because the new attempt writes it again; an attempt that started from scratch shows only its own batches.
/// Batches outside the lineage are kept (a later attempt may fall back to an older checkpoint whose lineage has them).
/// Every attempt announces its restored checkpoint with its first batch, and a sink subtask sends one (empty if need
/// be) and waits for it to be stored before acknowledging a checkpoint, so the attempt that took a checkpoint is known
/// before another can restore from it. Batches of an attempt older than the newest seen are stale.</para>
/// <para>Applying the same batches in order of attempt, sender and sequence gives the same rows, which is how an
/// activation rebuilds them from storage.</para>
/// </remarks>
internal sealed class CollectedRows
{
    private static readonly object NullKey = new();
    private readonly Dictionary<int, AttemptBatches> _attempts = [];
    private readonly List<object?> _records = [];
    private readonly Dictionary<object, int> _positions = [];

    /// <summary>The newest attempt seen; 0 before the first batch.</summary>
    public int Attempt { get; private set; }

    /// <summary>Number of rows.</summary>
    public int Count => _records.Count;

    /// <summary>Whether <paramref name="batch"/> is stale, a duplicate or new.</summary>
    public BatchDisposition Classify(CollectedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Attempt < Attempt)
        {
            return BatchDisposition.Stale;
        }

        return batch.Attempt == Attempt && _attempts.TryGetValue(Attempt, out var current) && current.Senders.TryGetValue(batch.SenderIndex, out var sender)
            && (batch.Sequence < sender.Expected || sender.Held.ContainsKey(batch.Sequence))
            ? BatchDisposition.Duplicate
            : BatchDisposition.New;
    }

    /// <summary>
    /// Accepts a batch that <see cref="Classify"/> called new: when it is the first of a newer attempt, the rows become
    /// that attempt's lineage; then it is applied (with any held batches it unblocks) or held until the batches before it
    /// arrive.
    /// </summary>
    /// <returns>How many batches of its sender and attempt are applied, from sequence 0 on without a gap.</returns>
    public long Accept(CollectedBatch batch)
    {
        if (Classify(batch) != BatchDisposition.New)
        {
            throw new InvalidOperationException($"Batch {batch.Sequence} of sender {batch.SenderIndex}, attempt {batch.Attempt} is not new.");
        }

        if (batch.Attempt > Attempt || !_attempts.ContainsKey(Attempt))
        {
            Attempt = batch.Attempt;
            _attempts[Attempt] = new AttemptBatches(batch.RestoredCheckpointId, batch.RestoredCheckpointAttempt);
            Rebuild();
        }

        var current = _attempts[Attempt];
        if (!current.Senders.TryGetValue(batch.SenderIndex, out var sender))
        {
            current.Senders[batch.SenderIndex] = sender = new SenderState();
        }

        sender.Held[batch.Sequence] = batch;
        while (sender.Held.Remove(sender.Expected, out var next))
        {
            current.Applied.Add(next);
            Apply(next);
            sender.Expected++;
        }

        return sender.Expected;
    }

    /// <summary>How many batches of <paramref name="senderIndex"/> in the current attempt are applied without a gap.</summary>
    public long AppliedOf(int senderIndex) =>
        _attempts.TryGetValue(Attempt, out var current) && current.Senders.TryGetValue(senderIndex, out var sender) ? sender.Expected : 0;

    /// <summary>Up to <paramref name="count"/> rows from <paramref name="offset"/> on.</summary>
    public object?[] Read(int offset, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var take = Math.Max(0, Math.Min(count, _records.Count - offset));
        return take == 0 ? [] : _records.GetRange(offset, take).ToArray();
    }

    /// <summary>Rebuilds the rows from the current attempt's lineage, oldest attempt first.</summary>
    private void Rebuild()
    {
        var lineage = new List<IEnumerable<CollectedBatch>>();
        var (attempt, before) = (Attempt, long.MaxValue);
        while (attempt > 0 && _attempts.TryGetValue(attempt, out var batches))
        {
            var limit = before;
            lineage.Add(batches.Applied.Where(b => b.After < limit));
            (attempt, before) = (batches.RestoredCheckpointAttempt, batches.RestoredCheckpointId);
        }

        _records.Clear();
        _positions.Clear();
        lineage.Reverse();
        foreach (var batch in lineage.SelectMany(static b => b))
        {
            Apply(batch);
        }
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

    /// <summary>The batches of one attempt, in the order they were applied, and where it restored from.</summary>
    private sealed class AttemptBatches(long restoredCheckpointId, int restoredCheckpointAttempt)
    {
        public long RestoredCheckpointId { get; } = restoredCheckpointId;

        public int RestoredCheckpointAttempt { get; } = restoredCheckpointAttempt;

        public List<CollectedBatch> Applied { get; } = [];

        public Dictionary<int, SenderState> Senders { get; } = [];
    }

    private sealed class SenderState
    {
        public long Expected { get; set; }

        public Dictionary<long, CollectedBatch> Held { get; } = [];
    }
}
