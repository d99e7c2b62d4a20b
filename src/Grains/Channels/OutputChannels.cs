using System.Diagnostics;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Channels;

/// <summary>
/// All output channels of one subtask: batching, sequence numbers, credit-based flow control and sending.
/// </summary>
/// <remarks>
/// <para>Invariants: (1) on every channel, batches are numbered 0, 1, 2, ... in the order they are sealed and sent in
/// that order; (2) a channel never has more than its credit limit of batches sent but not yet credited back
/// (<see cref="OutputChannel.Unacknowledged"/> ≤ limit), so a slow receiver holds at most limit × batch size records
/// per channel; (3) sealed batches that found no credit wait in the channel's queue, and the subtask takes no new
/// input while any does (<see cref="HasBacklog"/>), so the queue holds at most what one input batch produced.</para>
/// <para>Threading: single-threaded, on the subtask's mailbox; credits arrive through <see cref="AddCredits"/> from
/// the grain's request handler, which runs on the same scheduler.</para>
/// </remarks>
internal sealed class OutputChannels(SubtaskId self, IBatchTransport transport, ChannelSettings settings, TimeProvider time, Action<Exception> onDeliveryFailure)
{
    private readonly List<OutputChannel> _channels = [];
    private readonly Dictionary<(int Edge, int Receiver), OutputChannel> _byKey = [];
    private readonly long _flushIntervalTicks = (long)(settings.FlushInterval.TotalSeconds * Stopwatch.Frequency);
    private int _backlogged;
    private int _outstandingDeliveries;
    private long _nextFlushAt;
    private TaskCompletionSource? _deliveriesDrained;

    public ChannelSettings Settings => settings;

    public int SenderIndex => self.Index;

    /// <summary>Whether any channel holds sealed batches that wait for credit.</summary>
    public bool HasBacklog => _backlogged > 0;

    public IReadOnlyList<OutputChannel> Channels => _channels;

    public int MaxUnacknowledged => _channels.Count == 0 ? 0 : _channels.Max(static c => c.MaxUnacknowledged);

    /// <summary>When buffered records must be sent at the latest (for the mailbox's wait), or null when nothing is buffered.</summary>
    public long? NextFlushTimestamp => AnyBuffered() ? _nextFlushAt : null;

    public OutputChannel<T> Add<T>(int edgeId, SubtaskId receiver)
    {
        var channel = new OutputChannel<T>(this, edgeId, receiver, settings.BatchSize, settings.CreditsPerChannel);
        _channels.Add(channel);
        _byKey.Add((edgeId, receiver.Index), channel);
        return channel;
    }

    public void AddCredits(int edgeId, int receiverIndex, int credits)
    {
        if (!_byKey.TryGetValue((edgeId, receiverIndex), out var channel))
        {
            throw new InvalidOperationException($"Subtask {self} has no output channel (edge {edgeId}, receiver {receiverIndex}).");
        }

        channel.AddCredits(credits);
    }

    /// <summary>Seals partially filled batches once the flush interval has passed.</summary>
    public void FlushIfDue()
    {
        var now = time.GetTimestamp();
        if (now < _nextFlushAt)
        {
            return;
        }

        _nextFlushAt = now + _flushIntervalTicks;
        foreach (var channel in _channels)
        {
            channel.Seal(null);
        }
    }

    /// <summary>Seals every channel's buffer with <paramref name="streamEvent"/> appended.</summary>
    public void Broadcast(StreamEvent streamEvent)
    {
        foreach (var channel in _channels)
        {
            channel.Seal([streamEvent]);
        }
    }

    /// <summary>Completes when every batch handed to the transport was delivered.</summary>
    public Task DeliveriesDrainedAsync()
    {
        if (_outstandingDeliveries == 0)
        {
            return Task.CompletedTask;
        }

        _deliveriesDrained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _deliveriesDrained.Task;
    }

    internal void OnBacklogChanged(bool backlogged) => _backlogged += backlogged ? 1 : -1;

    internal void Send(SubtaskId receiver, DataBatch batch)
    {
        _outstandingDeliveries++;
        _ = ObserveAsync(transport.Deliver(receiver, batch));
    }

    private bool AnyBuffered()
    {
        foreach (var channel in _channels)
        {
            if (channel.BufferedCount > 0)
            {
                return true;
            }
        }

        return false;
    }

    private async Task ObserveAsync(Task delivery)
    {
        try
        {
            await delivery;
        }
        catch (Exception ex)
        {
            onDeliveryFailure(ex);
        }
        finally
        {
            if (--_outstandingDeliveries == 0 && _deliveriesDrained is { } drained)
            {
                _deliveriesDrained = null;
                drained.TrySetResult();
            }
        }
    }
}

/// <summary>One output channel: (edge, this subtask) → one receiver subtask.</summary>
internal abstract class OutputChannel(OutputChannels owner, int edgeId, SubtaskId receiver, int creditLimit)
{
    private readonly Queue<DataBatch> _waiting = new();
    private long _nextSequence;
    private int _credits = creditLimit;

    public int EdgeId { get; } = edgeId;

    public SubtaskId Receiver { get; } = receiver;

    public int CreditLimit { get; } = creditLimit;

    /// <summary>Batches sent but not yet credited back.</summary>
    public int Unacknowledged { get; private set; }

    public int MaxUnacknowledged { get; private set; }

    public abstract int BufferedCount { get; }

    /// <summary>Seals the buffered records (and <paramref name="events"/>) into the next batch and sends it if a credit is available.</summary>
    public void Seal(StreamEvent[]? events)
    {
        var records = TakeBuffered();
        if (records is null && events is null)
        {
            return;
        }

        var batch = new DataBatch { EdgeId = EdgeId, SenderIndex = owner.SenderIndex, Sequence = _nextSequence++, Records = records, Events = events };
        if (_waiting.Count == 0 && _credits > 0)
        {
            SendNow(batch);
            return;
        }

        if (_waiting.Count == 0)
        {
            owner.OnBacklogChanged(true);
        }

        _waiting.Enqueue(batch);
    }

    public void AddCredits(int credits)
    {
        Debug.Assert(credits > 0 && credits <= Unacknowledged, "credits must match batches sent");
        _credits += credits;
        Unacknowledged -= credits;
        while (_credits > 0 && _waiting.Count > 0)
        {
            SendNow(_waiting.Dequeue());
            if (_waiting.Count == 0)
            {
                owner.OnBacklogChanged(false);
            }
        }
    }

    protected abstract Array? TakeBuffered();

    private void SendNow(DataBatch batch)
    {
        _credits--;
        Unacknowledged++;
        MaxUnacknowledged = Math.Max(MaxUnacknowledged, Unacknowledged);
        owner.Send(Receiver, batch);
    }
}

internal sealed class OutputChannel<T>(OutputChannels owner, int edgeId, SubtaskId receiver, int batchSize, int creditLimit)
    : OutputChannel(owner, edgeId, receiver, creditLimit)
{
    private T[] _buffer = new T[batchSize];
    private int _count;

    public override int BufferedCount => _count;

    public void Add(T record)
    {
        _buffer[_count++] = record;
        if (_count == _buffer.Length)
        {
            Seal(null);
        }
    }

    protected override Array? TakeBuffered()
    {
        if (_count == 0)
        {
            return null;
        }

        T[] records;
        if (_count == _buffer.Length)
        {
            records = _buffer;
            _buffer = new T[_buffer.Length];
        }
        else
        {
            records = _buffer.AsSpan(0, _count).ToArray();
            Array.Clear(_buffer, 0, _count);
        }

        _count = 0;
        return records;
    }
}
