using System.Diagnostics;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Channels;

/// <summary>One input channel: (edge, sender subtask) → this subtask.</summary>
internal sealed class InputChannel(int edgeId, SubtaskId sender)
{
    public int EdgeId { get; } = edgeId;

    public SubtaskId Sender { get; } = sender;

    /// <summary>Sequence number of the next batch to hand over.</summary>
    public long Expected { get; set; }

    /// <summary>Batches that arrived ahead of <see cref="Expected"/>.</summary>
    public SortedDictionary<long, DataBatch>? Held { get; set; }

    /// <summary>Batches in order, waiting to be processed.</summary>
    public Queue<DataBatch> Ready { get; } = new();

    /// <summary>Batches accepted and not yet processed.</summary>
    public int InFlight { get; set; }

    public int MaxInFlight { get; set; }

    /// <summary>Batches processed whose credit was not yet returned.</summary>
    public int CreditsToReturn { get; set; }

    public bool Ended { get; set; }

    /// <summary>The channel delivered the barrier being aligned and takes no more batches until alignment ends.</summary>
    public bool Blocked { get; set; }
}

/// <summary>Outcome of a barrier or end of input seen by the gate.</summary>
internal enum AlignmentStep
{
    /// <summary>Nothing to do.</summary>
    None,

    /// <summary>Barriers of the checkpoint arrived on every open channel: snapshot now.</summary>
    Aligned,
}

/// <summary>
/// The input side of a subtask: restores each channel's batch order, drops duplicates, aligns checkpoint barriers,
/// counts batches in flight and returns credits as batches are processed.
/// </summary>
/// <remarks>
/// <para>Invariants per channel: batches are handed over exactly once each and in sequence order; a batch whose
/// sequence number is below <see cref="InputChannel.Expected"/> or already held is a duplicate and is dropped without
/// credit.</para>
/// <para>Alignment: after a channel delivered the barrier of checkpoint <c>n</c>, its later batches wait (the channel is
/// blocked, its credits are not returned, so its sender is held back) until every channel that has not ended delivered
/// barrier <c>n</c>; then the subtask snapshots, and all channels continue. A newer barrier abandons an older
/// alignment (that checkpoint was aborted); an older barrier than the one being aligned is ignored.</para>
/// </remarks>
internal sealed class InputGate(SubtaskId self, IBatchTransport transport)
{
    private readonly Dictionary<(int Edge, int Sender), InputChannel> _channels = [];
    private readonly List<InputChannel> _order = [];
    private int _open;
    private int _next;
    private long _aligning = -1;
    private long _lastAligned = -1;
    private int _barriersReceived;
    private long _alignmentStarted;

    public IEnumerable<InputChannel> Channels => _order;

    public bool AllEnded => _open == 0;

    public long Duplicates { get; private set; }

    public long Reordered { get; private set; }

    public int MaxInFlight => _order.Count == 0 ? 0 : _order.Max(static c => c.MaxInFlight);

    /// <summary>Time the last completed alignment took.</summary>
    public TimeSpan LastAlignment { get; private set; }

    public void Add(int edgeId, SubtaskId sender)
    {
        var channel = new InputChannel(edgeId, sender);
        _channels.Add((edgeId, sender.Index), channel);
        _order.Add(channel);
        _open++;
    }

    /// <summary>Accepts a delivered batch; returns whether a batch became ready.</summary>
    public bool Accept(DataBatch batch)
    {
        if (!_channels.TryGetValue((batch.EdgeId, batch.SenderIndex), out var channel))
        {
            throw new InvalidOperationException($"Subtask {self} has no input channel (edge {batch.EdgeId}, sender {batch.SenderIndex}).");
        }

        if (batch.Sequence < channel.Expected || (channel.Held?.ContainsKey(batch.Sequence) ?? false))
        {
            Duplicates++;
            return false;
        }

        channel.InFlight++;
        channel.MaxInFlight = Math.Max(channel.MaxInFlight, channel.InFlight);
        if (batch.Sequence != channel.Expected)
        {
            Reordered++;
            (channel.Held ??= []).Add(batch.Sequence, batch);
            return false;
        }

        channel.Ready.Enqueue(batch);
        channel.Expected++;
        while (channel.Held is { Count: > 0 } held && held.Remove(channel.Expected, out var next))
        {
            channel.Ready.Enqueue(next);
            channel.Expected++;
        }

        return true;
    }

    /// <summary>Takes the next batch of an unblocked channel, round-robin over channels.</summary>
    public bool TryTake(out InputChannel channel, out DataBatch batch)
    {
        for (var i = 0; i < _order.Count; i++)
        {
            var candidate = _order[(_next + i) % _order.Count];
            if (!candidate.Blocked && candidate.Ready.TryDequeue(out var ready))
            {
                _next = (_next + i + 1) % _order.Count;
                channel = candidate;
                batch = ready;
                return true;
            }
        }

        channel = null!;
        batch = null!;
        return false;
    }

    /// <summary>Whether any unblocked channel has a batch ready.</summary>
    public bool HasReady()
    {
        foreach (var channel in _order)
        {
            if (!channel.Blocked && channel.Ready.Count > 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Records that a batch of <paramref name="channel"/> was processed (before its events are handled).</summary>
    public static void Processed(InputChannel channel)
    {
        channel.InFlight--;
        channel.CreditsToReturn++;
    }

    /// <summary>The channel delivered the barrier of <paramref name="checkpointId"/>.</summary>
    public AlignmentStep OnBarrier(InputChannel channel, long checkpointId)
    {
        if (checkpointId <= _lastAligned || checkpointId < _aligning || channel.Ended)
        {
            return AlignmentStep.None;
        }

        if (checkpointId > _aligning)
        {
            Unblock();
            _aligning = checkpointId;
            _barriersReceived = 0;
            _alignmentStarted = Stopwatch.GetTimestamp();
        }

        if (!channel.Blocked)
        {
            channel.Blocked = true;
            _barriersReceived++;
        }

        return CheckAligned();
    }

    /// <summary>The channel delivered end of input.</summary>
    public AlignmentStep OnEndOfInput(InputChannel channel)
    {
        if (channel.Ended)
        {
            return AlignmentStep.None;
        }

        channel.Ended = true;
        _open--;
        if (channel.Blocked)
        {
            channel.Blocked = false;
            _barriersReceived--;
        }

        return _aligning > _lastAligned ? CheckAligned() : AlignmentStep.None;
    }

    /// <summary>The checkpoint being aligned was aborted: every channel continues.</summary>
    public void AbortAlignment(long checkpointId)
    {
        if (_aligning == checkpointId && checkpointId > _lastAligned)
        {
            Unblock();
            _lastAligned = checkpointId;
        }
    }

    /// <summary>The checkpoint being aligned (the one <see cref="AlignmentStep.Aligned"/> was returned for).</summary>
    public long AlignedCheckpoint => _lastAligned;

    /// <summary>Returns credits of channels that reached <paramref name="threshold"/> processed batches.</summary>
    public void ReturnCredits(int threshold)
    {
        foreach (var channel in _order)
        {
            if (channel.CreditsToReturn >= threshold && channel.CreditsToReturn > 0)
            {
                transport.ReturnCredits(channel.Sender, channel.EdgeId, self.Index, channel.CreditsToReturn);
                channel.CreditsToReturn = 0;
            }
        }
    }

    private AlignmentStep CheckAligned()
    {
        if (_barriersReceived < _open)
        {
            return AlignmentStep.None;
        }

        LastAlignment = Stopwatch.GetElapsedTime(_alignmentStarted);
        _lastAligned = _aligning;
        Unblock();
        return AlignmentStep.Aligned;
    }

    private void Unblock()
    {
        foreach (var channel in _order)
        {
            channel.Blocked = false;
        }

        _barriersReceived = 0;
    }
}
