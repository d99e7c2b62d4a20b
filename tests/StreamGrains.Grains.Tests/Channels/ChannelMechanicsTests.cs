using StreamGrains.Grains.Channels;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

public sealed class ChannelMechanicsTests
{
    private static readonly JobId Job = new("mechanics");
    private static readonly SubtaskId Receiver = new(Job, Chain: 1, Index: 0, Attempt: 1);
    private static readonly SubtaskId Sender = new(Job, Chain: 0, Index: 3, Attempt: 1);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Input_gate_hands_over_each_batch_once_in_sequence_order_whatever_the_arrival_order(int seed)
    {
        var random = new Random(seed);
        var transport = new RecordingTransport();
        var gate = new InputGate(Receiver, transport);
        gate.Add(edgeId: 5, Sender);
        const int Batches = 200;
        var arrivals = Enumerable.Range(0, Batches).Select(static i => (long)i).ToList();
        arrivals.AddRange(arrivals.Where(_ => random.Next(4) == 0).ToList());
        var shuffled = arrivals.OrderBy(_ => random.Next()).ToList();
        var handedOver = new List<long>();

        foreach (var sequence in shuffled)
        {
            gate.Accept(new DataBatch { EdgeId = 5, SenderIndex = 3, Sequence = sequence });
            while (gate.TryTake(out _, out var batch))
            {
                handedOver.Add(batch.Sequence);
            }
        }

        Assert.Equal(Enumerable.Range(0, Batches).Select(static i => (long)i), handedOver);
        Assert.Equal(arrivals.Count - Batches, gate.Duplicates);
    }

    [Fact]
    public void Input_gate_returns_one_credit_per_processed_batch_and_none_for_duplicates()
    {
        var transport = new RecordingTransport();
        var gate = new InputGate(Receiver, transport);
        gate.Add(edgeId: 5, Sender);
        var ready = new List<(InputChannel Channel, DataBatch Batch)>();
        foreach (var sequence in new long[] { 1, 0, 1, 2, 0 })
        {
            gate.Accept(new DataBatch { EdgeId = 5, SenderIndex = 3, Sequence = sequence });
        }

        while (gate.TryTake(out var channel, out var batch))
        {
            ready.Add((channel, batch));
        }

        Assert.Equal(3, ready.Count);
        Assert.Equal(3, gate.MaxInFlight);
        foreach (var (channel, _) in ready)
        {
            InputGate.Processed(channel);
        }

        gate.ReturnCredits(threshold: 1);

        var credit = Assert.Single(transport.Credits);
        Assert.Equal((Sender, 5, 0, 3), credit);
    }

    [Fact]
    public void Input_gate_rejects_a_batch_from_an_unknown_channel()
    {
        var gate = new InputGate(Receiver, new RecordingTransport());
        gate.Add(edgeId: 5, Sender);

        var error = Assert.Throws<InvalidOperationException>(() => gate.Accept(new DataBatch { EdgeId = 6, SenderIndex = 3, Sequence = 0 }));

        Assert.Contains("no input channel (edge 6, sender 3)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_channel_that_delivered_a_barrier_waits_until_every_open_channel_delivered_it()
    {
        var gate = new InputGate(Receiver, new RecordingTransport());
        var fast = Sender;
        var slow = Sender with { Index = 4 };
        gate.Add(edgeId: 5, fast);
        gate.Add(edgeId: 5, slow);
        gate.Accept(Batch(fast, 0, Barrier(7)));
        gate.Accept(Batch(fast, 1));
        gate.Accept(Batch(slow, 0));

        Assert.True(gate.TryTake(out var first, out var barrierBatch));
        Assert.Equal(fast, first.Sender);
        Assert.Equal(AlignmentStep.None, gate.OnBarrier(first, 7));

        // The fast channel is blocked: only the slow channel's batch comes out, then nothing.
        Assert.True(gate.TryTake(out var next, out _));
        Assert.Equal(slow, next.Sender);
        Assert.False(gate.TryTake(out _, out _));

        gate.Accept(Batch(slow, 1, Barrier(7)));
        Assert.True(gate.TryTake(out var slowBarrier, out _));
        Assert.Equal(AlignmentStep.Aligned, gate.OnBarrier(slowBarrier, 7));
        Assert.Equal(7, gate.AlignedCheckpoint);

        // Aligned: the fast channel's held batch is released.
        Assert.True(gate.TryTake(out var released, out var batch));
        Assert.Equal((fast, 1L), (released.Sender, batch.Sequence));
        Assert.Equal(StreamEventKind.Barrier, Assert.Single(barrierBatch.Events!).Kind);
    }

    [Fact]
    public void A_newer_barrier_abandons_the_older_alignment_and_an_older_barrier_is_ignored()
    {
        var gate = new InputGate(Receiver, new RecordingTransport());
        var a = Sender;
        var b = Sender with { Index = 4 };
        gate.Add(edgeId: 5, a);
        gate.Add(edgeId: 5, b);
        gate.Accept(Batch(a, 0, Barrier(1)));
        gate.Accept(Batch(b, 0, Barrier(2)));
        gate.TryTake(out var channelA, out _);
        gate.OnBarrier(channelA, 1);
        gate.TryTake(out var channelB, out _);

        Assert.Equal(AlignmentStep.None, gate.OnBarrier(channelB, 2));
        Assert.False(channelA.Blocked);
        Assert.True(channelB.Blocked);

        gate.Accept(Batch(a, 1, Barrier(2)));
        gate.TryTake(out var again, out _);
        Assert.Equal(AlignmentStep.Aligned, gate.OnBarrier(again, 2));
        Assert.Equal(AlignmentStep.None, gate.OnBarrier(again, 1));
    }

    [Fact]
    public void An_ended_channel_does_not_hold_up_alignment()
    {
        var gate = new InputGate(Receiver, new RecordingTransport());
        var a = Sender;
        var b = Sender with { Index = 4 };
        gate.Add(edgeId: 5, a);
        gate.Add(edgeId: 5, b);
        gate.Accept(Batch(a, 0, Barrier(3)));
        gate.TryTake(out var channelA, out _);
        Assert.Equal(AlignmentStep.None, gate.OnBarrier(channelA, 3));

        gate.Accept(Batch(b, 0, new StreamEvent(StreamEventKind.EndOfInput, 0)));
        gate.TryTake(out var channelB, out _);

        Assert.Equal(AlignmentStep.Aligned, gate.OnEndOfInput(channelB));
        Assert.False(gate.AllEnded);
    }

    private static DataBatch Batch(SubtaskId sender, long sequence, params StreamEvent[] events) =>
        new() { EdgeId = 5, SenderIndex = sender.Index, Sequence = sequence, Records = new[] { 1 }, Events = events.Length == 0 ? null : events };

    private static StreamEvent Barrier(long checkpointId) => new(StreamEventKind.Barrier, checkpointId);

    [Fact]
    public void Output_channel_never_has_more_unacknowledged_batches_than_credits_and_sends_in_order()
    {
        const int Credits = 3;
        var transport = new RecordingTransport();
        var outputs = new OutputChannels(Sender, transport, ChannelSettings.Default with { BatchSize = 10, CreditsPerChannel = Credits }, TimeProvider.System, static ex => throw ex);
        var channel = outputs.Add<int>(edgeId: 5, Receiver);

        for (var i = 0; i < 100; i++)
        {
            channel.Add(i);
        }

        Assert.Equal(Credits, transport.Delivered.Count);
        Assert.True(outputs.HasBacklog);
        Assert.Equal(Credits, channel.Unacknowledged);

        while (outputs.HasBacklog)
        {
            channel.AddCredits(1);
            Assert.True(channel.Unacknowledged <= Credits);
        }

        Assert.Equal(10, transport.Delivered.Count);
        Assert.Equal(Enumerable.Range(0, 10).Select(static i => (long)i), transport.Delivered.Select(static b => b.Sequence));
        Assert.Equal(Enumerable.Range(0, 100), transport.Delivered.SelectMany(static b => (int[])b.Records!));
        Assert.Equal(Credits, channel.MaxUnacknowledged);
    }

    [Fact]
    public void End_of_input_is_sent_after_the_buffered_records_in_the_same_batch()
    {
        var transport = new RecordingTransport();
        var outputs = new OutputChannels(Sender, transport, ChannelSettings.Default with { BatchSize = 10 }, TimeProvider.System, static ex => throw ex);
        var channel = outputs.Add<int>(edgeId: 5, Receiver);
        channel.Add(1);
        channel.Add(2);

        outputs.Broadcast(new StreamEvent(StreamEventKind.EndOfInput, 0));

        var batch = Assert.Single(transport.Delivered);
        Assert.Equal([1, 2], (int[])batch.Records!);
        Assert.Equal(StreamEventKind.EndOfInput, Assert.Single(batch.Events!).Kind);
    }

    private sealed class RecordingTransport : IBatchTransport
    {
        public List<DataBatch> Delivered { get; } = [];

        public List<(SubtaskId Sender, int Edge, int Receiver, int Credits)> Credits { get; } = [];

        public Task Deliver(SubtaskId receiver, DataBatch batch)
        {
            Delivered.Add(batch);
            return Task.CompletedTask;
        }

        public void ReturnCredits(SubtaskId sender, int edgeId, int receiverIndex, int credits) => Credits.Add((sender, edgeId, receiverIndex, credits));
    }
}
