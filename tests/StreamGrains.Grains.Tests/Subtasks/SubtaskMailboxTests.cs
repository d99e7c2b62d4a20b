using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Connectors;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Grains.Subtasks;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests.Subtasks;

/// <summary>
/// The mailbox loop with fake operators, on a scheduler the test pumps (like the grain's, one turn at a time). Starting
/// the loop runs it until it first waits; later wake-ups reach it through the thread pool, so the tests wait until what
/// they expect has happened, and check what must not happen where the loop cannot have done it yet.
/// </summary>
public sealed class SubtaskMailboxTests : IDisposable
{
    private const int InputEdge = 5;
    private const int OutputEdge = 9;
    private static readonly SubtaskId Self = new(new JobId("mailbox"), Chain: 1, Index: 0, Attempt: 1);
    private static readonly SubtaskId SenderA = Self with { Chain = 0, Index = 0 };
    private static readonly SubtaskId SenderB = Self with { Chain = 0, Index = 1 };
    private readonly ManualTaskScheduler _scheduler = new();
    private readonly RecordingBatchTransport _transport = new();
    private readonly RecordingListener _listener = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly FakeOperator _operator = new("op");
    private readonly RecordingInput _input = new();
    private readonly FakeSource _source = new();
    private OutputChannels _outputs = null!;
    private InputGate _inputs = null!;
    private SubtaskLifecycle _lifecycle = null!;
    private SubtaskCheckpointing _checkpointing = null!;
    private SubtaskMailbox _mailbox = null!;

    public void Dispose()
    {
        _stopping.Cancel();
        _scheduler.RunUntilIdle();
        _stopping.Dispose();
    }

    [Fact]
    public async Task Batches_are_processed_in_sequence_order_and_end_of_input_on_every_channel_finishes_the_subtask()
    {
        Build(senders: [SenderA, SenderB]);
        Start();

        Deliver(Batch(SenderA, 1, [3]));
        Deliver(Batch(SenderA, 0, [1, 2]));
        Deliver(Batch(SenderB, 0, [10], EndOfInput));
        Deliver(Batch(SenderA, 2, null, EndOfInput));
        await _scheduler.RunUntilAsync(() => _lifecycle.State == SubtaskState.Finished, "the subtask finished");

        Assert.Equal([1, 2, 3], _input.Records.Where(static r => r < 10));
        Assert.Contains(10, _input.Records);
        Assert.NotNull(_mailbox.FirstRecordAt);
        Assert.Equal(1, _listener.Finished);
        Assert.Contains(EndOfInput, _transport.Events);
        Assert.True(_mailbox.Completion!.IsCompletedSuccessfully);
        Assert.Equal((3, 1), (Credits(SenderA), Credits(SenderB)));
    }

    [Fact]
    public async Task A_snapshot_is_taken_once_every_channel_delivered_the_barrier_and_sees_only_the_records_before_it()
    {
        var seen = new List<int[]>();
        _operator.Snapshot = (_, _) =>
        {
            seen.Add([.. _input.Records]);
            return _operator.Stored(Self.Index, bytes: 10);
        };
        Build(senders: [SenderA, SenderB]);
        Start();

        Deliver(Batch(SenderA, 0, [1], Barrier(7)));
        Deliver(Batch(SenderA, 1, [100]));
        Deliver(Batch(SenderB, 0, [2]));
        await _scheduler.RunUntilAsync(() => _input.Records.Contains(1) && _input.Records.Contains(2), "the batches before the barriers were processed");

        Assert.Empty(_operator.Snapshots);
        Assert.DoesNotContain(100, _input.Records); // A waits for B's barrier

        Deliver(Batch(SenderB, 1, [3], Barrier(7)));
        await _scheduler.RunUntilAsync(() => _input.Records.Contains(100), "A's batch after the barrier was processed");

        Assert.Equal([1, 2, 3], Assert.Single(seen).Order());
        Assert.Contains(Barrier(7), _transport.Events);
        var ack = Assert.IsType<SubtaskCheckpointAck>(await _listener.NextCheckpointReportAsync());
        Assert.Equal(7, ack.CheckpointId);
    }

    [Fact]
    public async Task A_source_subtask_polls_its_source_snapshots_when_triggered_and_finishes_at_the_end_of_its_input()
    {
        Build(source: true);
        Start();
        Assert.Equal(1, _source.Polls);

        Assert.True(_scheduler.Run(() => _mailbox.TriggerCheckpoint(1)));
        Assert.Empty(_operator.Snapshots); // the poll under way is not interrupted
        _source.Results.Writer.TryWrite(SourcePollResult.More);
        await _scheduler.RunUntilAsync(() => _source.Polls == 2, "the source was polled again");

        Assert.Equal(1, Assert.Single(_operator.Snapshots).CheckpointId);
        Assert.IsType<SubtaskCheckpointAck>(await _listener.NextCheckpointReportAsync());

        _source.Results.Writer.TryWrite(SourcePollResult.End);
        await _scheduler.RunUntilAsync(() => _lifecycle.State == SubtaskState.Finished, "the subtask finished");

        Assert.False(_scheduler.Run(() => _mailbox.TriggerCheckpoint(2)));
        _scheduler.Run(() => _mailbox.NotifyCheckpointComplete(1)); // handled at once: the loop has ended
        Assert.Equal([1L], _operator.Completed);
        Assert.Contains(EndOfInput, _transport.Events);
    }

    [Fact]
    public async Task While_an_output_channel_waits_for_credit_no_input_is_taken()
    {
        Build(senders: [SenderA], settings: ChannelSettings.Default with { BatchSize = 1, CreditsPerChannel = 1 }, forward: true);
        Deliver(Batch(SenderA, 0, [1, 2])); // before the start, as while a subtask restores
        Deliver(Batch(SenderA, 1, [3]));

        Start(); // runs until the loop waits for credit

        Assert.Equal([1, 2], _input.Records);
        Assert.Equal([1], (int[])Assert.Single(_transport.Delivered).Records!);
        Assert.True(_outputs.HasBacklog);

        _scheduler.Run(() =>
        {
            _outputs.AddCredits(OutputEdge, receiverIndex: 0, credits: 1);
            _mailbox.Wake();
        });
        await _scheduler.RunUntilAsync(() => _input.Records.Count == 3, "the second batch was processed");

        Assert.Equal([1, 2, 3], _input.Records);
        Assert.Equal([1, 2], _transport.Delivered.Select(static b => Assert.Single((int[])b.Records!)));
    }

    [Fact]
    public async Task A_timer_fires_on_the_mailbox_once_the_clock_reaches_it()
    {
        var time = new ManualTimeProvider();
        var due = time.UnixMilliseconds + 60_000;
        _operator.NextTimer = due;
        Build(senders: [SenderA], time: time);
        Start(); // runs until the loop waits for the timer

        Assert.Empty(_operator.TimersFired);

        time.Advance(TimeSpan.FromSeconds(60));
        _scheduler.Run(_mailbox.Wake);
        await _scheduler.RunUntilAsync(() => _operator.TimersFired.Count > 0, "the timer fired");

        Assert.Equal([due], _operator.TimersFired);
    }

    [Fact]
    public async Task An_exception_of_user_code_fails_the_subtask_and_ends_the_loop()
    {
        _input.Poison = 13;
        Build(senders: [SenderA]);
        Start();

        Deliver(Batch(SenderA, 0, [12, 13, 14]));
        await _scheduler.RunUntilAsync(() => _mailbox.Completion!.IsCompleted, "the loop ended");

        Assert.Equal(SubtaskState.Failed, _lifecycle.State);
        var failure = Assert.Single(_listener.Failures);
        Assert.Equal((JobFailureKind.UserCode, "explode", "record 13 is poisoned"), (failure.Kind, failure.OperatorUid, failure.Message));
        Assert.Equal([12], _input.Records);
        Assert.True(_mailbox.Completion!.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task A_stop_with_savepoint_takes_no_input_after_its_barrier_until_the_savepoint_fails()
    {
        Build(senders: [SenderA]);
        Start();
        _scheduler.Run(() => _checkpointing.PrepareSnapshot(4, new SnapshotOptions { Stop = true }));

        Deliver(Batch(SenderA, 0, [1], Barrier(4)));
        Deliver(Batch(SenderA, 1, [2]));
        await _scheduler.RunUntilAsync(() => _checkpointing.IsStoppedWithSavepoint, "the subtask stopped at the savepoint");

        Assert.Equal([1], _input.Records);

        _scheduler.Run(() => _mailbox.ResumeAfterSavepoint(4));
        await _scheduler.RunUntilAsync(() => _input.Records.Count == 2, "the batch after the barrier was processed");

        Assert.False(_checkpointing.IsStoppedWithSavepoint);
        Assert.Equal([1, 2], _input.Records);
    }

    [Fact]
    public async Task Stopping_ends_a_waiting_loop_without_failing_the_subtask()
    {
        Build(senders: [SenderA]);
        Start();

        _scheduler.Run(() =>
        {
            _lifecycle.Cancel();
            _stopping.Cancel();
            _mailbox.Wake();
        });
        await _scheduler.RunUntilAsync(() => _mailbox.Completion!.IsCompleted, "the loop ended");

        Assert.True(_mailbox.Completion!.IsCompletedSuccessfully);
        Assert.Equal(SubtaskState.Canceled, _lifecycle.State);
        Assert.Empty(_listener.Failures);
    }

    private static StreamEvent EndOfInput => new(StreamEventKind.EndOfInput, 0);

    private static StreamEvent Barrier(long checkpointId) => new(StreamEventKind.Barrier, checkpointId);

    private static DataBatch Batch(SubtaskId sender, long sequence, int[]? records, params StreamEvent[] events) =>
        new() { EdgeId = InputEdge, SenderIndex = sender.Index, Sequence = sequence, Records = records, Events = events.Length == 0 ? null : events };

    /// <summary>Wires the parts as <see cref="SubtaskRunner"/> does.</summary>
    private void Build(SubtaskId[]? senders = null, bool source = false, ChannelSettings? settings = null, TimeProvider? time = null, bool forward = false)
    {
        time ??= TimeProvider.System;
        _lifecycle = new SubtaskLifecycle(Self, _listener, NullLogger.Instance);
        _outputs = new OutputChannels(Self, _transport, settings ?? ChannelSettings.Default, time, _lifecycle.Fail);
        var output = _outputs.Add<int>(OutputEdge, Self with { Chain = 2, Index = 0 });
        _input.Output = forward ? output : null;
        _inputs = new InputGate(Self, _transport);
        foreach (var sender in senders ?? [])
        {
            _inputs.Add(InputEdge, sender);
        }

        ChainOperator[] operators = source ? [_source, _operator] : [_operator];
        var chain = new OperatorChain(operators, source ? null : _input, source ? _source : null);
        _checkpointing = new SubtaskCheckpointing(Self, "chain", operators, _outputs, _inputs, time, _listener, NullLogger.Instance, _stopping.Token);
        _mailbox = new SubtaskMailbox(chain, _inputs, _outputs, _lifecycle, _checkpointing, time, _stopping.Token);
    }

    /// <summary>Starts the loop, as <see cref="SubtaskRunner.Start"/> does; it runs until it first waits.</summary>
    private void Start() => _scheduler.Run(() =>
    {
        _lifecycle.Opened();
        _lifecycle.Started();
        _mailbox.Start();
    });

    /// <summary>A batch arrives, as <see cref="SubtaskRunner.Deliver"/> hands it over.</summary>
    private void Deliver(DataBatch batch) => _scheduler.Run(() =>
    {
        if (_inputs.Accept(batch))
        {
            _mailbox.Wake();
        }
    });

    private int Credits(SubtaskId sender) => _transport.Credits.Where(c => c.Sender == sender).Sum(static c => c.Credits);
}
