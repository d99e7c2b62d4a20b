using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using StreamGrains.Connectors;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Grains.Subtasks;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains.Tests.Subtasks;

/// <summary>A transport that records what it is given and delivers every batch at once.</summary>
internal sealed class RecordingBatchTransport : IBatchTransport
{
    public List<DataBatch> Delivered { get; } = [];

    public List<(SubtaskId Sender, int Edge, int Receiver, int Credits)> Credits { get; } = [];

    public IEnumerable<StreamEvent> Events => Delivered.SelectMany(static b => b.Events ?? []);

    public Task Deliver(SubtaskId receiver, DataBatch batch)
    {
        Delivered.Add(batch);
        return Task.CompletedTask;
    }

    public void ReturnCredits(SubtaskId sender, int edgeId, int receiverIndex, int credits) => Credits.Add((sender, edgeId, receiverIndex, credits));
}

/// <summary>A checkpoint declined by a subtask, as the listener saw it.</summary>
internal sealed record Decline(SubtaskId Subtask, long CheckpointId, CheckpointDeclineReason Reason, string Message);

/// <summary>Records what a subtask reports; acknowledgements and declines may arrive from the thread pool.</summary>
internal sealed class RecordingListener : ISubtaskListener
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Channel<object> _checkpoints = Channel.CreateUnbounded<object>();

    public int Finished { get; private set; }

    public List<JobFailure> Failures { get; } = [];

    /// <summary>Whether an acknowledgement or a decline arrived that was not read yet.</summary>
    public bool HasCheckpointReport => _checkpoints.Reader.TryPeek(out _);

    /// <summary>The next acknowledgement (<see cref="SubtaskCheckpointAck"/>) or <see cref="Decline"/>.</summary>
    public Task<object> NextCheckpointReportAsync() => _checkpoints.Reader.ReadAsync().AsTask().WaitAsync(Timeout);

    public void OnFinished(SubtaskId subtask) => Finished++;

    public void OnFailed(SubtaskId subtask, JobFailure failure) => Failures.Add(failure);

    public void OnCheckpointAcknowledged(SubtaskCheckpointAck ack) => _checkpoints.Writer.TryWrite(ack);

    public void OnCheckpointDeclined(SubtaskId subtask, long checkpointId, CheckpointDeclineReason reason, string message) =>
        _checkpoints.Writer.TryWrite(new Decline(subtask, checkpointId, reason, message));
}

/// <summary>An operator whose snapshot, timers and notifications the test controls and observes.</summary>
internal sealed class FakeOperator(string uid) : ChainOperator(uid)
{
    /// <summary>The synchronous part of a snapshot: null for no state (the default).</summary>
    public Func<long, SnapshotOptions, PendingSnapshot?> Snapshot { get; set; } = static (_, _) => null;

    public List<(long CheckpointId, SnapshotOptions Options)> Snapshots { get; } = [];

    public List<long> Completed { get; } = [];

    public List<long> Aborted { get; } = [];

    public List<long> TimersFired { get; } = [];

    public long? NextTimer { get; set; }

    public override long? NextTimerTimestamp => NextTimer;

    public override PendingSnapshot? SnapshotState(long checkpointId, SnapshotOptions options)
    {
        Snapshots.Add((checkpointId, options));
        return Snapshot(checkpointId, options);
    }

    public override void NotifyCheckpointComplete(long checkpointId) => Completed.Add(checkpointId);

    public override Task NotifyCheckpointAbortedAsync(long checkpointId, CancellationToken cancellationToken)
    {
        Aborted.Add(checkpointId);
        return Task.CompletedTask;
    }

    public override void FireTimers(long now)
    {
        TimersFired.Add(now);
        NextTimer = null;
    }

    /// <summary>A pending snapshot that stores nothing and reports <paramref name="bytes"/> uploaded.</summary>
    public PendingSnapshot Stored(int subtaskIndex, long bytes) =>
        new(Uid, _ => Task.FromResult(new OperatorSnapshotResult(new OperatorSubtaskState { SubtaskIndex = subtaskIndex }, bytes, bytes * 10)));
}

/// <summary>The head of a chain: records the records of each batch and may forward them to an output channel.</summary>
internal sealed class RecordingInput : IBatchInput
{
    public List<int> Records { get; } = [];

    /// <summary>Where records go on (none by default).</summary>
    public OutputChannel<int>? Output { get; set; }

    /// <summary>A record that makes the operator throw, as user code would.</summary>
    public int? Poison { get; set; }

    public void Process(Array records)
    {
        foreach (var record in (int[])records)
        {
            if (record == Poison)
            {
                throw new OperatorException("explode", new InvalidOperationException($"record {record} is poisoned"));
            }

            Records.Add(record);
            Output?.Add(record);
        }
    }
}

/// <summary>A source whose polls return what the test writes, one result per poll.</summary>
internal sealed class FakeSource() : ChainOperator("source"), ISourceDriver
{
    public Channel<SourcePollResult> Results { get; } = Channel.CreateUnbounded<SourcePollResult>();

    public int Polls { get; private set; }

    public ValueTask<SourcePollResult> PollAsync(int maxRecords, CancellationToken cancellationToken)
    {
        Polls++;
        return Results.Reader.ReadAsync(cancellationToken);
    }
}

/// <summary>
/// Runs tasks one at a time on the thread that pumps it, like a grain's scheduler, with the test deciding when.
/// </summary>
/// <remarks>
/// The mailbox's awaits come back here. A turn runs the loop synchronously until it waits; what wakes it later (a
/// completion source that runs its continuations asynchronously, a delay) passes through the thread pool before its
/// turn is queued here, as on a grain, so the tests wait for what they expect with <see cref="RunUntilAsync"/>.
/// </remarks>
internal sealed class ManualTaskScheduler : TaskScheduler
{
    private readonly ConcurrentQueue<Task> _queue = new();
    private readonly SemaphoreSlim _queued = new(0);

    /// <summary>Runs <paramref name="action"/> as a turn of this scheduler, then every turn that follows until none is left.</summary>
    public void Run(Action action)
    {
        var turn = Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.None, this);
        RunUntilIdle();
        turn.GetAwaiter().GetResult();
    }

    /// <summary>Runs <paramref name="function"/> as a turn of this scheduler, then every turn that follows, and returns its result.</summary>
    public T Run<T>(Func<T> function)
    {
        var turn = Task.Factory.StartNew(function, CancellationToken.None, TaskCreationOptions.None, this);
        RunUntilIdle();
        return turn.GetAwaiter().GetResult();
    }

    /// <summary>Runs queued turns until none is left.</summary>
    public void RunUntilIdle()
    {
        // Without the test framework's synchronization context, which awaits would capture before this scheduler.
        var context = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            while (_queue.TryDequeue(out var task))
            {
                TryExecuteTask(task);
            }
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

    /// <summary>Runs turns until <paramref name="condition"/> holds, waiting for turns queued by other threads (timers, the thread pool).</summary>
    public async Task RunUntilAsync(Func<bool> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        var timeout = TimeSpan.FromSeconds(30);
        while (true)
        {
            RunUntilIdle();
            if (condition())
            {
                return;
            }

            var left = timeout - watch.Elapsed;
            if (left <= TimeSpan.Zero || !await _queued.WaitAsync(left))
            {
                throw new TimeoutException($"Not reached within {timeout}: {what}.");
            }
        }
    }

    protected override void QueueTask(Task task)
    {
        _queue.Enqueue(task);
        _queued.Release();
    }

    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;

    protected override IEnumerable<Task> GetScheduledTasks() => [.. _queue];
}
