using StreamGrains.Runtime;

namespace StreamGrains.Grains.Channels;

/// <summary>One input channel: (edge, sender subtask) → this subtask.</summary>
internal sealed class InputChannel(int edgeId, SubtaskId sender)
{
    public int EdgeId { get; } = edgeId;

    public SubtaskId Sender { get; } = sender;

    /// <summary>Sequence number of the next batch to hand to the mailbox.</summary>
    public long Expected { get; set; }

    /// <summary>Batches that arrived ahead of <see cref="Expected"/>.</summary>
    public SortedDictionary<long, DataBatch>? Held { get; set; }

    /// <summary>Batches accepted and not yet processed.</summary>
    public int InFlight { get; set; }

    public int MaxInFlight { get; set; }

    /// <summary>Batches processed whose credit was not yet returned.</summary>
    public int CreditsToReturn { get; set; }

    public bool Ended { get; set; }
}

/// <summary>
/// The input side of a subtask: restores each channel's batch order, drops duplicates, counts batches in flight and
/// returns credits as batches are processed.
/// </summary>
/// <remarks>
/// Invariants per channel: batches reach the mailbox exactly once each and in sequence order; a batch whose sequence
/// number is below <see cref="InputChannel.Expected"/> or already held is a duplicate and is dropped without credit.
/// </remarks>
internal sealed class InputGate(SubtaskId self, IBatchTransport transport)
{
    private readonly Dictionary<(int Edge, int Sender), InputChannel> _channels = [];
    private int _open;

    public IEnumerable<InputChannel> Channels => _channels.Values;

    public bool AllEnded => _open == 0;

    public long Duplicates { get; private set; }

    public long Reordered { get; private set; }

    public int MaxInFlight => _channels.Count == 0 ? 0 : _channels.Values.Max(static c => c.MaxInFlight);

    public void Add(int edgeId, SubtaskId sender)
    {
        _channels.Add((edgeId, sender.Index), new InputChannel(edgeId, sender));
        _open++;
    }

    /// <summary>Accepts a delivered batch; hands every batch that is now in order to <paramref name="ready"/>.</summary>
    public void Accept(DataBatch batch, Action<InputChannel, DataBatch> ready)
    {
        if (!_channels.TryGetValue((batch.EdgeId, batch.SenderIndex), out var channel))
        {
            throw new InvalidOperationException($"Subtask {self} has no input channel (edge {batch.EdgeId}, sender {batch.SenderIndex}).");
        }

        if (batch.Sequence < channel.Expected || (channel.Held?.ContainsKey(batch.Sequence) ?? false))
        {
            Duplicates++;
            return;
        }

        channel.InFlight++;
        channel.MaxInFlight = Math.Max(channel.MaxInFlight, channel.InFlight);
        if (batch.Sequence != channel.Expected)
        {
            Reordered++;
            (channel.Held ??= []).Add(batch.Sequence, batch);
            return;
        }

        ready(channel, batch);
        channel.Expected++;
        while (channel.Held is { Count: > 0 } held && held.Remove(channel.Expected, out var next))
        {
            ready(channel, next);
            channel.Expected++;
        }
    }

    /// <summary>Records that a batch of <paramref name="channel"/> was processed.</summary>
    public void Processed(InputChannel channel, DataBatch batch)
    {
        channel.InFlight--;
        channel.CreditsToReturn++;
        if (batch.Events is { } events && Array.Exists(events, static e => e.Kind == StreamEventKind.EndOfInput) && !channel.Ended)
        {
            channel.Ended = true;
            _open--;
        }
    }

    /// <summary>Returns credits of channels that reached <paramref name="threshold"/> processed batches.</summary>
    public void ReturnCredits(int threshold)
    {
        foreach (var channel in _channels.Values)
        {
            if (channel.CreditsToReturn >= threshold && channel.CreditsToReturn > 0)
            {
                transport.ReturnCredits(channel.Sender, channel.EdgeId, self.Index, channel.CreditsToReturn);
                channel.CreditsToReturn = 0;
            }
        }
    }
}
