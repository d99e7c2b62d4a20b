using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Grains.Subtasks;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Tests.Subtasks;

public sealed class SubtaskCheckpointingTests : IDisposable
{
    private static readonly SubtaskId Self = new(new JobId("checkpointing"), Chain: 1, Index: 2, Attempt: 1);
    private static readonly SubtaskId SenderA = Self with { Chain = 0, Index = 0 };
    private static readonly SubtaskId SenderB = Self with { Chain = 0, Index = 1 };
    private readonly RecordingBatchTransport _transport = new();
    private readonly RecordingListener _listener = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly FakeOperator _first = new("first");
    private readonly FakeOperator _second = new("second");
    private readonly OutputChannel<int> _output;
    private readonly InputGate _inputs;
    private readonly SubtaskCheckpointing _checkpointing;

    public SubtaskCheckpointingTests()
    {
        var outputs = new OutputChannels(Self, _transport, ChannelSettings.Default, TimeProvider.System, static ex => throw ex);
        _output = outputs.Add<int>(edgeId: 3, Self with { Chain = 2, Index = 0 });
        _inputs = new InputGate(Self, _transport);
        _inputs.Add(edgeId: 5, SenderA);
        _inputs.Add(edgeId: 5, SenderB);
        _checkpointing = new SubtaskCheckpointing(Self, "chain-x", [_first, _second], outputs, _inputs, TimeProvider.System, _listener, NullLogger.Instance, _stopping.Token);
    }

    public void Dispose() => _stopping.Dispose();

    [Fact]
    public async Task A_checkpoint_sends_the_barrier_before_the_operators_snapshot_and_acknowledges_what_they_stored_without_holding_up_the_mailbox()
    {
        var upload = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var barrierSentBeforeSnapshot = false;
        _output.Add(41);
        _first.Snapshot = (id, _) =>
        {
            barrierSentBeforeSnapshot = _transport.Events.Contains(new StreamEvent(StreamEventKind.Barrier, id));
            var stored = _first.Stored(Self.Index, bytes: 100);
            return stored with { CompleteAsync = async token => { await upload.Task; return await stored.CompleteAsync(token); } };
        };

        _checkpointing.PerformCheckpoint(7, TimeSpan.FromMilliseconds(30));

        Assert.False(_listener.HasCheckpointReport); // the upload is still running: the mailbox goes on meanwhile
        upload.SetResult();
        var ack = Assert.IsType<SubtaskCheckpointAck>(await _listener.NextCheckpointReportAsync());
        Assert.True(barrierSentBeforeSnapshot);
        var batch = Assert.Single(_transport.Delivered);
        Assert.Equal([41], (int[])batch.Records!);
        Assert.Equal(new StreamEvent(StreamEventKind.Barrier, 7), Assert.Single(batch.Events!));
        Assert.Equal([(7L, SnapshotOptions.Checkpoint)], _second.Snapshots);
        Assert.Equal((7L, Self), (ack.CheckpointId, ack.Subtask));
        var (uid, state) = Assert.Single(ack.Operators); // the second operator has no state
        Assert.Equal(("first", Self.Index), (uid, state.SubtaskIndex));
        Assert.Equal(("chain-x", Self.Index, 100L, 1_000L, TimeSpan.FromMilliseconds(30)), (ack.Stats.Chain, ack.Stats.SubtaskIndex, ack.Stats.BytesUploaded, ack.Stats.FullSize, ack.Stats.Alignment));
    }

    [Fact]
    public async Task A_snapshot_that_throws_declines_the_checkpoint_with_SnapshotFailed()
    {
        _first.Snapshot = (_, _) => _first.Stored(Self.Index, bytes: 1);
        _second.Snapshot = static (_, _) => throw new InvalidOperationException("the disk is full");

        _checkpointing.PerformCheckpoint(8, TimeSpan.Zero);

        var decline = Assert.IsType<Decline>(await _listener.NextCheckpointReportAsync());
        Assert.Equal(new Decline(Self, 8, CheckpointDeclineReason.SnapshotFailed, $"subtask {Self} could not snapshot: the disk is full"), decline);
        Assert.False(_listener.HasCheckpointReport);
    }

    [Fact]
    public async Task A_failure_to_store_the_state_declines_the_checkpoint_with_StoreFailed()
    {
        _first.Snapshot = static (_, _) => new PendingSnapshot("first", static _ => Task.FromException<OperatorSnapshotResult>(new IOException("the upload was refused")));

        _checkpointing.PerformCheckpoint(9, TimeSpan.Zero);

        var decline = Assert.IsType<Decline>(await _listener.NextCheckpointReportAsync());
        Assert.Equal(new Decline(Self, 9, CheckpointDeclineReason.StoreFailed, $"subtask {Self} could not store its state: the upload was refused"), decline);
    }

    [Fact]
    public void A_stop_with_savepoint_stops_at_its_checkpoint_and_resumes_when_the_savepoint_fails_or_is_aborted()
    {
        var stop = new SnapshotOptions { Stop = true };
        _checkpointing.PrepareSnapshot(10, stop);
        Assert.False(_checkpointing.IsStoppedWithSavepoint);

        _checkpointing.PerformCheckpoint(10, TimeSpan.Zero);
        Assert.True(_checkpointing.IsStoppedWithSavepoint);
        _checkpointing.Resume(9);
        Assert.True(_checkpointing.IsStoppedWithSavepoint);
        _checkpointing.Resume(10);
        Assert.False(_checkpointing.IsStoppedWithSavepoint);

        _checkpointing.PrepareSnapshot(11, stop);
        _checkpointing.PerformCheckpoint(11, TimeSpan.Zero);
        Assert.True(_checkpointing.IsStoppedWithSavepoint);
        _checkpointing.Abort(11);
        Assert.False(_checkpointing.IsStoppedWithSavepoint);
        Assert.Equal([stop, stop], _first.Snapshots.Select(static s => s.Options));
    }

    [Fact]
    public void Prepared_options_reach_the_operators_for_their_checkpoint_only_and_an_abort_drops_them()
    {
        var canonical = new SnapshotOptions { Format = SavepointFormat.Canonical, SavepointDirectory = "savepoints/sp-1" };
        _checkpointing.PrepareSnapshot(12, canonical);
        _checkpointing.PrepareSnapshot(13, canonical);

        _checkpointing.Abort(13);
        _checkpointing.PerformCheckpoint(12, TimeSpan.Zero);
        _checkpointing.PerformCheckpoint(13, TimeSpan.Zero);
        _checkpointing.PerformCheckpoint(14, TimeSpan.Zero);

        Assert.Equal([(12L, canonical), (13L, SnapshotOptions.Checkpoint), (14L, SnapshotOptions.Checkpoint)], _first.Snapshots);
        Assert.Equal(_first.Snapshots, _second.Snapshots);
    }

    [Fact]
    public void Completion_reaches_every_operator_and_an_abort_also_ends_the_alignment_of_its_barriers()
    {
        _checkpointing.NotifyComplete(5);
        Assert.Equal([5L], _first.Completed);
        Assert.Equal([5L], _second.Completed);

        _inputs.Accept(new DataBatch { EdgeId = 5, SenderIndex = SenderA.Index, Sequence = 0, Events = [new StreamEvent(StreamEventKind.Barrier, 6)] });
        _inputs.Accept(new DataBatch { EdgeId = 5, SenderIndex = SenderA.Index, Sequence = 1, Records = new[] { 1 } });
        Assert.True(_inputs.TryTake(out var channel, out _));
        Assert.Equal(AlignmentStep.None, _inputs.OnBarrier(channel, 6));
        Assert.False(_inputs.TryTake(out _, out _)); // A waits for B's barrier

        _checkpointing.Abort(6);

        Assert.True(_inputs.TryTake(out var released, out var batch));
        Assert.Equal((SenderA, 1L), (released.Sender, batch.Sequence));
        Assert.Equal([6L], _first.Aborted);
        Assert.Equal([6L], _second.Aborted);
        Assert.Empty(_first.Snapshots);
    }
}
