using System.Diagnostics;
using StreamGrains.Connectors;
using StreamGrains.Grains.Channels;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Subtasks;

/// <summary>
/// The mailbox of one subtask: the loop that alone touches its operators and state, and the control queue and wake-up
/// through which grain calls reach it.
/// </summary>
/// <remarks>
/// <para>Threading: everything runs on the grain's scheduler, one turn at a time. Grain calls (batches, credits,
/// checkpoint triggers and notifications) only update queues and <see cref="Wake"/> the loop. The loop yields every
/// <see cref="TimeSlice"/> so that calls interleave with long runs of work.</para>
/// <para>Each iteration: handle control messages (checkpoint trigger, completion, abort, resume); while stopped with a
/// savepoint, only flush the outputs and wait; while an output channel has a backlog, take no input (backpressure) and
/// wait for credit, firing timers that come due; otherwise fire due timers and process one batch (its records, then its
/// events: a barrier may complete an alignment and start a snapshot, end of input may finish the subtask), else poll the
/// source, else sleep until a batch, a credit, a control message or the <see cref="DeadlineClock"/>'s next deadline
/// (a timer, the output flush, the source's retry).</para>
/// </remarks>
internal sealed class SubtaskMailbox
{
    private static readonly TimeSpan TimeSlice = TimeSpan.FromMilliseconds(10);

    private readonly OperatorChain _chain;
    private readonly InputGate _inputs;
    private readonly OutputChannels _outputs;
    private readonly SubtaskLifecycle _lifecycle;
    private readonly SubtaskCheckpointing _checkpointing;
    private readonly DeadlineClock _clock;
    private readonly TimeProvider _time;
    private readonly CancellationToken _stopping;
    private readonly Queue<(ControlKind Kind, long CheckpointId)> _control = new();
    private Task? _loop;
    private TaskCompletionSource? _wake;
    private bool _wakePending;
    private bool _sourceEnded;

    /// <summary>Creates the mailbox of an opened subtask; <see cref="Start"/> starts its loop.</summary>
    /// <param name="chain">The subtask's operators.</param>
    /// <param name="inputs">Its input channels.</param>
    /// <param name="outputs">Its output channels.</param>
    /// <param name="lifecycle">Its state: the loop runs while it is running, finishes or fails it.</param>
    /// <param name="checkpointing">Takes the snapshots and handles the coordinator's notifications.</param>
    /// <param name="time">The clock of timers, flushes and waits.</param>
    /// <param name="stopping">Cancelled when the subtask stops: the loop ends.</param>
    public SubtaskMailbox(OperatorChain chain, InputGate inputs, OutputChannels outputs, SubtaskLifecycle lifecycle, SubtaskCheckpointing checkpointing, TimeProvider time, CancellationToken stopping)
    {
        _chain = chain;
        _inputs = inputs;
        _outputs = outputs;
        _lifecycle = lifecycle;
        _checkpointing = checkpointing;
        _clock = new DeadlineClock(time, chain.Operators, outputs);
        _time = time;
        _stopping = stopping;
    }

    private enum ControlKind
    {
        Trigger,
        Complete,
        Abort,
        Resume,
    }

    /// <summary>The loop, once started; it ends when the subtask finishes, fails or stops.</summary>
    public Task? Completion => _loop;

    /// <summary>When the first record was read or the source first polled.</summary>
    public DateTimeOffset? FirstRecordAt { get; private set; }

    /// <summary>Starts the loop (the subtask is running).</summary>
    public void Start() => _loop = RunAsync();

    /// <summary>Wakes the loop if it waits, or makes its next wait return at once.</summary>
    public void Wake()
    {
        if (_wake is { } wake)
        {
            _wake = null;
            wake.TrySetResult();
        }
        else
        {
            _wakePending = true;
        }
    }

    /// <summary>Asks a running source subtask to inject the barrier of a checkpoint; false when it is not running a source.</summary>
    public bool TriggerCheckpoint(long checkpointId)
    {
        if (_lifecycle.State != SubtaskState.Running || _chain.Source is null || _sourceEnded)
        {
            return false;
        }

        _control.Enqueue((ControlKind.Trigger, checkpointId));
        Wake();
        return true;
    }

    public void NotifyCheckpointComplete(long checkpointId) => Control(ControlKind.Complete, checkpointId);

    public void NotifyCheckpointAborted(long checkpointId) => Control(ControlKind.Abort, checkpointId);

    /// <summary>A stop-with-savepoint failed after the snapshot: processing resumes.</summary>
    public void ResumeAfterSavepoint(long checkpointId) => Control(ControlKind.Resume, checkpointId);

    private async Task RunAsync()
    {
        var chain = _chain;
        var outputs = _outputs;
        var inputs = _inputs;
        var settings = outputs.Settings;
        var creditThreshold = Math.Max(1, settings.CreditsPerChannel / 2);
        var token = _stopping;
        var sliceStart = Stopwatch.GetTimestamp();
        try
        {
            // Stopping (StopAsync, or the silo shutting down) ends the loop; waits return at once once it is requested.
            while (_lifecycle.State == SubtaskState.Running && !token.IsCancellationRequested)
            {
                if (Stopwatch.GetElapsedTime(sliceStart) > TimeSlice)
                {
                    await Task.Yield();
                    sliceStart = Stopwatch.GetTimestamp();
                }

                while (_control.TryDequeue(out var control))
                {
                    HandleControl(control.Kind, control.CheckpointId);
                }

                if (_checkpointing.IsStoppedWithSavepoint)
                {
                    // Stopped with a savepoint: only the output side moves (the barrier and what precedes it must reach the receivers).
                    outputs.FlushIfDue();
                    await WaitAsync(outputs.NextFlushTimestamp);
                    continue;
                }

                if (outputs.HasBacklog)
                {
                    // Backpressure: take no input until a receiver returns credit; timers and flushes may still be due.
                    inputs.ReturnCredits(1);
                    await WaitAsync(_clock.NextDeadline(includeSourceRetry: false));
                    FireDueTimers(chain);
                    continue;
                }

                FireDueTimers(chain);
                if (inputs.TryTake(out var channel, out var batch))
                {
                    if (batch.Records is { Length: > 0 } records)
                    {
                        FirstRecordAt ??= _time.GetUtcNow();
                        chain.Input!.Process(records);
                    }

                    InputGate.Processed(channel);
                    HandleEvents(channel, batch);
                    inputs.ReturnCredits(creditThreshold);
                    await AfterBatchAsync(chain, token);
                    if (inputs.AllEnded)
                    {
                        await FinishAsync(chain, token);
                    }
                }
                else if (chain.Source is { } source && !_sourceEnded && _clock.SourceMayPoll)
                {
                    FirstRecordAt ??= _time.GetUtcNow();
                    var result = await source.PollAsync(settings.BatchSize, token);
                    await AfterBatchAsync(chain, token);
                    if (result.Status == SourceStatus.EndOfInput)
                    {
                        _sourceEnded = true;
                        await FinishAsync(chain, token);
                    }
                    else if (result.Status == SourceStatus.NothingAvailable)
                    {
                        _clock.RetrySourceAfter(result.RetryAfter);
                    }
                }
                else
                {
                    inputs.ReturnCredits(1);
                    outputs.FlushIfDue();
                    await WaitAsync(_clock.NextDeadline(includeSourceRetry: chain.Source is not null && !_sourceEnded));
                    continue;
                }

                outputs.FlushIfDue();
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _lifecycle.Fail(ex);
        }
    }

    private static async ValueTask AfterBatchAsync(OperatorChain chain, CancellationToken token)
    {
        foreach (var op in chain.Operators)
        {
            var pending = op.AfterBatchAsync(token);
            if (!pending.IsCompletedSuccessfully)
            {
                await pending;
            }
        }
    }

    private void HandleEvents(InputChannel channel, DataBatch batch)
    {
        if (batch.Events is not { } events)
        {
            return;
        }

        foreach (var streamEvent in events)
        {
            var step = streamEvent.Kind switch
            {
                StreamEventKind.Barrier => _inputs.OnBarrier(channel, streamEvent.Value),
                StreamEventKind.EndOfInput => _inputs.OnEndOfInput(channel),
                _ => AlignmentStep.None,
            };
            if (step == AlignmentStep.Aligned)
            {
                _checkpointing.PerformCheckpoint(_inputs.AlignedCheckpoint, _inputs.LastAlignment);
            }
        }
    }

    private void HandleControl(ControlKind kind, long checkpointId)
    {
        switch (kind)
        {
            case ControlKind.Trigger:
                if (!_sourceEnded)
                {
                    _checkpointing.PerformCheckpoint(checkpointId, TimeSpan.Zero);
                }

                break;
            case ControlKind.Complete:
                _checkpointing.NotifyComplete(checkpointId);
                break;
            case ControlKind.Resume:
                _checkpointing.Resume(checkpointId);
                break;
            case ControlKind.Abort:
                _checkpointing.Abort(checkpointId);
                break;
        }
    }

    private void FireDueTimers(OperatorChain chain)
    {
        var now = -1L;
        foreach (var op in chain.Operators)
        {
            if (op.NextTimerTimestamp is { } next)
            {
                if (now < 0)
                {
                    now = _time.GetUtcNow().ToUnixTimeMilliseconds();
                }

                if (next <= now)
                {
                    op.FireTimers(now);
                }
            }
        }
    }

    /// <summary>All input is processed: end the operators, send end-of-input downstream, wait until it was delivered.</summary>
    private async Task FinishAsync(OperatorChain chain, CancellationToken token)
    {
        foreach (var op in chain.Operators)
        {
            await op.EndOfInputAsync(token);
        }

        var outputs = _outputs;
        outputs.Broadcast(new StreamEvent(StreamEventKind.EndOfInput, 0));
        while (outputs.HasBacklog && _lifecycle.State == SubtaskState.Running)
        {
            _inputs.ReturnCredits(1);
            await WaitAsync(null);
        }

        await outputs.DeliveriesDrainedAsync().WaitAsync(token);
        _inputs.ReturnCredits(1);
        _lifecycle.Finish();
    }

    /// <summary>A control message from a grain call: queued for a running loop; handled at once by a finished subtask.</summary>
    private void Control(ControlKind kind, long checkpointId)
    {
        if (_lifecycle.State is SubtaskState.Running or SubtaskState.Finished && _loop is not null)
        {
            if (_lifecycle.State == SubtaskState.Running)
            {
                _control.Enqueue((kind, checkpointId));
                Wake();
            }
            else
            {
                // A finished subtask's loop has ended; its operators still settle their last checkpoints.
                HandleControl(kind, checkpointId);
            }
        }
    }

    /// <summary>Waits for a wake-up or for <paramref name="deadline"/> (none: only a wake-up); returns at once when woken meanwhile, stopped or due.</summary>
    private Task WaitAsync(long? deadline)
    {
        if (_wakePending || _lifecycle.State != SubtaskState.Running || _stopping.IsCancellationRequested)
        {
            _wakePending = false;
            return Task.CompletedTask;
        }

        var wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _wake = wake;
        if (deadline is not { } at)
        {
            // Also ends (with OperationCanceledException, which ends the loop) when the silo stops: that cancellation
            // comes from another thread and does not call Wake.
            return wake.Task.WaitAsync(_stopping);
        }

        var wait = _clock.WaitUntil(at);
        if (wait <= TimeSpan.Zero)
        {
            _wake = null;
            return Task.CompletedTask;
        }

        return Task.WhenAny(wake.Task, Task.Delay(wait, _time, _stopping));
    }
}
