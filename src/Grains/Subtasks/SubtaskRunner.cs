using System.Diagnostics;
using Microsoft.Extensions.Logging;
using StreamGrains.Connectors;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Subtasks;

/// <summary>What a subtask runner needs from its host.</summary>
internal sealed record SubtaskServices
{
    public required IServiceProvider Services { get; init; }

    public required Orleans.Serialization.Serializer Serializer { get; init; }

    public required IBatchTransport Transport { get; init; }

    public required StreamGrainsOptions Options { get; init; }

    public required TimeProvider Time { get; init; }

    public required ILogger Logger { get; init; }

    /// <summary>Checkpoint storage (null when none is configured).</summary>
    public ICheckpointStorage? Storage { get; init; }

    /// <summary>Receives the subtask's outcome and its checkpoint acknowledgements.</summary>
    public required ISubtaskListener Listener { get; init; }

    /// <summary>Cancelled when the silo stops (or is killed): the subtask stops too, with its background uploads.</summary>
    public CancellationToken SiloStopping { get; init; }
}

/// <summary>Receives what a subtask reports.</summary>
internal interface ISubtaskListener
{
    void OnFinished(SubtaskId subtask);

    void OnFailed(SubtaskId subtask, JobFailure failure);

    void OnCheckpointAcknowledged(SubtaskCheckpointAck ack);

    void OnCheckpointDeclined(SubtaskId subtask, long checkpointId, CheckpointDeclineReason reason, string message);
}

/// <summary>
/// Runs one subtask: its operator chain on a mailbox loop, fed by input channels or a source, writing to output channels.
/// </summary>
/// <remarks>
/// <para>Threading model: everything runs on the grain's scheduler, one turn at a time. Grain calls
/// (<see cref="Deliver"/>, <see cref="AddCredits"/>, checkpoint triggers and notifications) only update queues and wake
/// the loop; the loop alone touches operators and state. It yields every few milliseconds so that calls interleave with
/// long runs of work. The asynchronous part of a snapshot (uploads) runs on the thread pool and hands its result back
/// to the grain's scheduler before it is acknowledged.</para>
/// <para>Each loop iteration: handle control messages (checkpoint trigger, completion, abort); wait for credit while an
/// output channel has a backlog (backpressure: no new input is taken); fire due timers; process one batch (its records,
/// then its events: a barrier may complete an alignment and start a snapshot, end of input may finish the subtask);
/// else poll the source; else sleep until a batch, a credit, a control message, a due timer or the flush interval.</para>
/// </remarks>
internal sealed class SubtaskRunner : IAsyncDisposable
{
    private static readonly TimeSpan TimeSlice = TimeSpan.FromMilliseconds(10);

    private readonly SubtaskDeployment _deployment;
    private readonly SubtaskServices _services;
    private readonly Queue<(ControlKind Kind, long CheckpointId)> _control = new();
    private readonly CancellationTokenSource _stopping;
    private readonly Counter _recordsIn = new();
    private readonly Counter _recordsOut = new();
    private OutputChannels? _outputs;
    private InputGate? _inputs;
    private OperatorChain? _chain;
    private ChainPlan? _chainPlan;
    private KeyGroupRange _keyGroups = KeyGroupRange.Empty;
    private Task? _loop;
    private TaskCompletionSource? _wake;
    private bool _wakePending;
    private long _sourceRetryAt;
    private bool _sourceEnded;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, SnapshotOptions> _snapshotOptions = new();

    /// <summary>The stop-with-savepoint checkpoint this subtask snapshotted and stopped at: it takes no input, polls no source and fires no timer until the job ends or the savepoint fails.</summary>
    private long? _stoppedAt;
    private bool _disposed;
    private string? _silo;
    private volatile RestoreProgress? _restore;
    private DateTimeOffset? _openedAt;
    private DateTimeOffset? _readyAt;
    private DateTimeOffset? _firstRecordAt;

    public SubtaskRunner(SubtaskDeployment deployment, SubtaskServices services)
    {
        _deployment = deployment;
        _services = services;
        _stopping = CancellationTokenSource.CreateLinkedTokenSource(services.SiloStopping);
    }

    private enum ControlKind
    {
        Trigger,
        Complete,
        Abort,
        Resume,
    }

    public SubtaskId Id => _deployment.Subtask;

    public SubtaskState State { get; private set; } = SubtaskState.Created;

    private string JobDirectory => Path.Combine(_services.Options.StateDirectory, Id.Job.Value);

    private string WorkingDirectory => Path.Combine(JobDirectory, "work", $"{Id.Chain}-{Id.Index}-a{Id.Attempt}");

    private string LocalCheckpointRoot => Path.Combine(JobDirectory, "local");

    /// <summary>Builds the chain from the spec, restores state and opens every operator; the subtask is then ready.</summary>
    /// <exception cref="RestoreException">When the state to restore cannot be read.</exception>
    public async Task<DeployResult> OpenAsync(string silo)
    {
        if (State != SubtaskState.Created)
        {
            throw new InvalidOperationException($"Subtask {Id} was already deployed ({State}).");
        }

        _silo = silo;
        _openedAt = _services.Time.GetUtcNow();
        var spec = _deployment.Spec;
        var plan = JobDefinitions.Plan(spec);
        if (Id.Chain < 0 || Id.Chain >= plan.Chains.Count || Id.Index < 0 || Id.Index >= plan.Chains[Id.Chain].Parallelism)
        {
            throw new InvalidOperationException($"Subtask {Id} does not exist in the plan of job {Id.Job} ({plan.Chains.Count} chains).");
        }

        var chain = plan.Chains[Id.Chain];
        _chainPlan = chain;
        _keyGroups = chain.IsKeyed
            ? KeyGroups.ComputeKeyGroupRangeForOperatorIndex(plan.MaxParallelism, chain.Parallelism, Id.Index)
            : KeyGroupRange.Empty;
        _outputs = new OutputChannels(Id, _services.Transport, spec.Channels, _services.Time, OnDeliveryFailed);
        _inputs = new InputGate(Id, _services.Transport);
        foreach (var edge in chain.Inputs)
        {
            foreach (var sender in edge.SendersOf(Id.Index))
            {
                _inputs.Add(edge.Id, Id with { Chain = edge.Source.Index, Index = sender });
            }
        }

        _chain = new ChainBuilder(plan, chain, Id, _outputs, _services.Serializer, _recordsIn, _recordsOut).Build();
        var context = new OperatorContext
        {
            Subtask = Id,
            Chain = chain,
            Plan = plan,
            Spec = spec,
            KeyGroups = _keyGroups,
            Splits = _deployment.Splits,
            StateDirectory = WorkingDirectory,
            LocalCheckpointRoot = LocalCheckpointRoot,
            Storage = _services.Storage,
            Restore = _deployment.Restore,
            RestoreProgress = new Progress(this),
            Stopping = _stopping.Token,
            Services = _services.Services,
            Time = _services.Time,
            Options = _services.Options,
            RecordsIn = _recordsIn,
            RecordsOut = _recordsOut,
        };
        foreach (var op in _chain.Operators)
        {
            await op.OpenAsync(context);
        }

        State = SubtaskState.Ready;
        _readyAt = _services.Time.GetUtcNow();
        return new DeployResult { Silo = silo, KeyGroups = _keyGroups, Restore = _restore };
    }

    /// <summary>Starts the mailbox loop.</summary>
    public void Start()
    {
        if (State != SubtaskState.Ready)
        {
            throw new InvalidOperationException($"Subtask {Id} cannot start from state {State}.");
        }

        State = SubtaskState.Running;
        foreach (var op in _chain!.Operators)
        {
            op.Started();
        }

        _loop = RunAsync();
    }

    public void Deliver(DataBatch batch)
    {
        if (State is SubtaskState.Failed or SubtaskState.Canceled || _inputs is null)
        {
            return;
        }

        if (_inputs.Accept(batch))
        {
            Wake();
        }
    }

    public void AddCredits(int edgeId, int receiverIndex, int credits)
    {
        if (_outputs is null || State is SubtaskState.Failed or SubtaskState.Canceled)
        {
            return;
        }

        _outputs.AddCredits(edgeId, receiverIndex, credits);
        Wake();
    }

    /// <summary>Asks a source subtask to inject the barrier of a checkpoint; false when it is not running a source.</summary>
    public bool TriggerCheckpoint(long checkpointId)
    {
        if (State != SubtaskState.Running || _chain?.Source is null || _sourceEnded)
        {
            return false;
        }

        _control.Enqueue((ControlKind.Trigger, checkpointId));
        Wake();
        return true;
    }

    public void NotifyCheckpointComplete(long checkpointId) => Control(ControlKind.Complete, checkpointId);

    /// <summary>Records what kind of snapshot checkpoint <paramref name="checkpointId"/> is, before its barrier can arrive.</summary>
    public void PrepareSnapshot(long checkpointId, SnapshotOptions options) => _snapshotOptions[checkpointId] = options;

    /// <summary>A stop-with-savepoint failed after the snapshot: processing resumes.</summary>
    public void ResumeAfterSavepoint(long checkpointId) => Control(ControlKind.Resume, checkpointId);

    public void NotifyCheckpointAborted(long checkpointId) => Control(ControlKind.Abort, checkpointId);

    public SubtaskStatus GetStatus() => new()
    {
        Chain = _chainPlan?.Name ?? string.Empty,
        Index = Id.Index,
        Attempt = Id.Attempt,
        Parallelism = _chainPlan?.Parallelism ?? 0,
        State = State,
        Silo = _silo,
        KeyGroups = _keyGroups,
        IsSource = _chainPlan?.IsSource ?? false,
        RecordsIn = _recordsIn.Value,
        RecordsOut = _recordsOut.Value,
        MaxInFlightBatchesPerInputChannel = _inputs?.MaxInFlight ?? 0,
        MaxUnacknowledgedBatchesPerOutputChannel = _outputs?.MaxUnacknowledged ?? 0,
        DuplicateBatchesDropped = _inputs?.Duplicates ?? 0,
        BatchesReordered = _inputs?.Reordered ?? 0,
        Restore = _restore,
        OpenedAt = _openedAt,
        Warning = _chain?.Operators.Select(static o => o.Warning).FirstOrDefault(static w => w is not null),
        ReadyAt = _readyAt,
        FirstRecordAt = _firstRecordAt,
    };

    /// <summary>Stops as in a failover (local checkpoint copies are kept).</summary>
    public ValueTask DisposeAsync() => StopAsync(StopReason.Failover);

    /// <summary>Stops the loop (if running) and releases operators and state.</summary>
    public async ValueTask StopAsync(StopReason reason)
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (State is SubtaskState.Created or SubtaskState.Ready or SubtaskState.Running)
        {
            State = SubtaskState.Canceled;
        }

        await _stopping.CancelAsync();
        Wake();
        if (_loop is { } loop)
        {
            await loop;
        }

        if (reason == StopReason.Failover)
        {
            // The loop has stopped, so nothing of this attempt is processed or sent any more. Its state instance and
            // working directory are its own: the next attempt need not wait while RocksDB closes and gigabytes are unlinked.
            _ = Task.Run(() => ReleaseAsync(reason));
            return;
        }

        await ReleaseAsync(reason);
    }

    private async Task ReleaseAsync(StopReason reason)
    {
        if (_chain is { } chain)
        {
            foreach (var op in chain.Operators)
            {
                try
                {
                    await op.CloseAsync();
                }
                catch (Exception ex)
                {
                    _services.Logger.LogWarning(ex, "Subtask {Subtask}: closing operator {Operator} failed", Id, op.Uid);
                }
            }
        }

        if (_services.Options.DeleteLocalStateOnStop)
        {
            DeleteDirectory(WorkingDirectory);
        }

        if (reason == StopReason.JobEnded && _chainPlan is { } plan)
        {
            foreach (var node in plan.Nodes.Where(static n => n.IsStateful))
            {
                DeleteDirectory(Path.Combine(LocalCheckpointRoot, node.EffectiveUid, $"kg-{_keyGroups.Start}-{_keyGroups.End}"));
            }
        }

        if (reason != StopReason.Failover)
        {
            // Not after a failover: the next attempt is creating its directories under the same parents right now.
            DeleteEmptyDirectories(JobDirectory);
        }

        _stopping.Dispose();
    }

    private async Task RunAsync()
    {
        var chain = _chain!;
        var outputs = _outputs!;
        var inputs = _inputs!;
        var settings = outputs.Settings;
        var creditThreshold = Math.Max(1, settings.CreditsPerChannel / 2);
        var token = _stopping.Token;
        var sliceStart = Stopwatch.GetTimestamp();
        try
        {
            // Stopping (StopAsync, or the silo shutting down) ends the loop; waits return at once once it is requested.
            while (State == SubtaskState.Running && !token.IsCancellationRequested)
            {
                if (Stopwatch.GetElapsedTime(sliceStart) > TimeSlice)
                {
                    await Task.Yield();
                    sliceStart = Stopwatch.GetTimestamp();
                }

                while (_control.TryDequeue(out var control))
                {
                    HandleControl(chain, control.Kind, control.CheckpointId);
                }

                if (_stoppedAt is not null)
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
                    await WaitAsync(NextDeadline(includeSource: false));
                    FireDueTimers(chain);
                    continue;
                }

                FireDueTimers(chain);
                if (inputs.TryTake(out var channel, out var batch))
                {
                    if (batch.Records is { Length: > 0 } records)
                    {
                        _firstRecordAt ??= _services.Time.GetUtcNow();
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
                else if (chain.Source is { } source && !_sourceEnded && _services.Time.GetTimestamp() >= _sourceRetryAt)
                {
                    _firstRecordAt ??= _services.Time.GetUtcNow();
                    var result = await source.PollAsync(settings.BatchSize, token);
                    await AfterBatchAsync(chain, token);
                    if (result.Status == SourceStatus.EndOfInput)
                    {
                        _sourceEnded = true;
                        await FinishAsync(chain, token);
                    }
                    else if (result.Status == SourceStatus.NothingAvailable)
                    {
                        _sourceRetryAt = _services.Time.GetTimestamp() + (long)(result.RetryAfter.TotalSeconds * Stopwatch.Frequency);
                    }
                }
                else
                {
                    inputs.ReturnCredits(1);
                    outputs.FlushIfDue();
                    await WaitAsync(NextDeadline(includeSource: true));
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
            Fail(ex);
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
                StreamEventKind.Barrier => _inputs!.OnBarrier(channel, streamEvent.Value),
                StreamEventKind.EndOfInput => _inputs!.OnEndOfInput(channel),
                _ => AlignmentStep.None,
            };
            if (step == AlignmentStep.Aligned)
            {
                PerformCheckpoint(_inputs!.AlignedCheckpoint, _inputs.LastAlignment);
            }
        }
    }

    private void HandleControl(OperatorChain chain, ControlKind kind, long checkpointId)
    {
        switch (kind)
        {
            case ControlKind.Trigger:
                if (!_sourceEnded)
                {
                    PerformCheckpoint(checkpointId, TimeSpan.Zero);
                }

                break;
            case ControlKind.Complete:
                foreach (var op in chain.Operators)
                {
                    op.NotifyCheckpointComplete(checkpointId);
                }

                break;
            case ControlKind.Resume:
                ResumeIfStoppedAt(checkpointId);
                break;
            case ControlKind.Abort:
                ResumeIfStoppedAt(checkpointId);
                _snapshotOptions.TryRemove(checkpointId, out _);
                _inputs!.AbortAlignment(checkpointId);
                foreach (var op in chain.Operators)
                {
                    _ = ObserveAsync(op.NotifyCheckpointAbortedAsync(checkpointId, _stopping.Token), $"cleaning up aborted checkpoint {checkpointId} of {op.Uid}");
                }

                break;
        }
    }

    /// <summary>
    /// The synchronous part of a checkpoint, on the mailbox: the barrier goes downstream, then every operator takes its
    /// snapshot (no record is processed in between, so state and barrier position agree). The uploads continue off the
    /// mailbox.
    /// </summary>
    private void PerformCheckpoint(long checkpointId, TimeSpan alignment)
    {
        var watch = Stopwatch.StartNew();
        var barrierAt = _services.Time.GetUtcNow() - alignment;
        var options = _snapshotOptions.TryRemove(checkpointId, out var prepared) ? prepared : SnapshotOptions.Checkpoint;
        _outputs!.Broadcast(new StreamEvent(StreamEventKind.Barrier, checkpointId));
        if (options.Stop)
        {
            _stoppedAt = checkpointId;
        }

        var pending = new List<PendingSnapshot>();
        try
        {
            foreach (var op in _chain!.Operators)
            {
                if (op.SnapshotState(checkpointId, options) is { } snapshot)
                {
                    pending.Add(snapshot);
                }
            }
        }
        catch (Exception ex)
        {
            _services.Logger.LogWarning(ex, "Subtask {Subtask}: synchronous part of checkpoint {Checkpoint} failed", Id, checkpointId);
            _services.Listener.OnCheckpointDeclined(Id, checkpointId, CheckpointDeclineReason.SnapshotFailed, $"subtask {Id} could not snapshot: {ex.Message}");
            return;
        }

        _ = CompleteCheckpointAsync(checkpointId, pending, barrierAt, alignment, watch.Elapsed);
    }

    private void ResumeIfStoppedAt(long checkpointId)
    {
        if (_stoppedAt == checkpointId)
        {
            _services.Logger.LogInformation("Subtask {Subtask}: stop with savepoint {Checkpoint} failed; resuming", Id, checkpointId);
            _stoppedAt = null;
        }
    }

    private async Task CompleteCheckpointAsync(long checkpointId, List<PendingSnapshot> pending, DateTimeOffset barrierAt, TimeSpan alignment, TimeSpan synchronous)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            // The acknowledgement is sent from the thread pool, not from the grain's turn: the mailbox may be busy for a
            // while after the barrier (a materialization's RocksDB checkpoint, a write stall), and the checkpoint must not
            // wait for it.
            var token = _stopping.Token;
            var results = await Task.Run(() => Task.WhenAll(pending.Select(p => p.CompleteAsync(token))), token).ConfigureAwait(false);
            if (_disposed)
            {
                return;
            }

            var ack = new SubtaskCheckpointAck
            {
                CheckpointId = checkpointId,
                Subtask = Id,
                Operators = pending.Zip(results).ToDictionary(static p => p.First.Uid, static p => p.Second.State),
                Stats = new SubtaskCheckpointStats
                {
                    SubtaskIndex = Id.Index,
                    Chain = _chainPlan!.Name,
                    BarrierAt = barrierAt,
                    Alignment = alignment,
                    Synchronous = synchronous,
                    Asynchronous = watch.Elapsed,
                    BytesUploaded = results.Sum(static r => r.BytesUploaded),
                    FullSize = results.Sum(static r => r.FullSize),
                    ChangelogBytes = results.Sum(static r => r.ChangelogBytes),
                    MaterializationId = results.Max(static r => r.Materialization?.Id),
                    MaterializedSize = results.Sum(static r => r.Materialization?.Size ?? 0),
                    MaterializationDuration = results.Max(static r => r.Materialization?.Duration),
                },
            };
            _services.Listener.OnCheckpointAcknowledged(ack);
        }
        catch (Exception ex) when (!_disposed)
        {
            _services.Logger.LogWarning(ex, "Subtask {Subtask}: storing checkpoint {Checkpoint} failed", Id, checkpointId);
            _services.Listener.OnCheckpointDeclined(Id, checkpointId, CheckpointDeclineReason.StoreFailed, $"subtask {Id} could not store its state: {ex.Message}");
        }
        catch (Exception)
        {
            // Stopped while uploading: the coordinator aborts the checkpoint on its own.
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

    private void FireDueTimers(OperatorChain chain)
    {
        var now = -1L;
        foreach (var op in chain.Operators)
        {
            if (op.NextTimerTimestamp is { } next)
            {
                if (now < 0)
                {
                    now = _services.Time.GetUtcNow().ToUnixTimeMilliseconds();
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

        var outputs = _outputs!;
        outputs.Broadcast(new StreamEvent(StreamEventKind.EndOfInput, 0));
        while (outputs.HasBacklog && State == SubtaskState.Running)
        {
            _inputs!.ReturnCredits(1);
            await WaitAsync(null);
        }

        await outputs.DeliveriesDrainedAsync().WaitAsync(token);
        _inputs!.ReturnCredits(1);
        if (State == SubtaskState.Running)
        {
            State = SubtaskState.Finished;
            _services.Listener.OnFinished(Id);
        }
    }

    private void OnDeliveryFailed(Exception exception)
    {
        if (State is SubtaskState.Running or SubtaskState.Ready)
        {
            Fail(new InvalidOperationException($"Subtask {Id} could not deliver a batch: {exception.Message}", exception));
            Wake();
        }
    }

    private void Fail(Exception exception)
    {
        if (State is SubtaskState.Failed or SubtaskState.Canceled)
        {
            return;
        }

        State = SubtaskState.Failed;
        var failure = exception is OperatorException op
            ? JobFailure.FromException(op.InnerException!, JobFailureKind.UserCode, op.OperatorUid, Id.Index)
            : JobFailure.FromException(exception, JobFailureKind.Runtime, operatorUid: null, Id.Index);
        _services.Logger.LogWarning(exception, "Subtask {Subtask} failed: {Failure}", Id, failure);
        _services.Listener.OnFailed(Id, failure);
    }

    private void Control(ControlKind kind, long checkpointId)
    {
        if (State is SubtaskState.Running or SubtaskState.Finished && _loop is not null)
        {
            if (State == SubtaskState.Running)
            {
                _control.Enqueue((kind, checkpointId));
                Wake();
            }
            else
            {
                // A finished subtask's loop has ended; its operators still settle their last checkpoints.
                HandleControl(_chain!, kind, checkpointId);
            }
        }
    }

    private async Task ObserveAsync(Task task, string what)
    {
        try
        {
            await task;
        }
        catch (Exception ex) when (!_stopping.IsCancellationRequested)
        {
            _services.Logger.LogWarning(ex, "Subtask {Subtask}: {What} failed", Id, what);
        }
        catch (Exception)
        {
            // Stopping: nothing to report.
        }
    }

    /// <summary>Earliest of: the next timer, the output flush and (when it may poll) the source's retry; in stopwatch ticks.</summary>
    private long? NextDeadline(bool includeSource)
    {
        long? deadline = _outputs!.NextFlushTimestamp;
        foreach (var op in _chain!.Operators)
        {
            if (op.NextTimerTimestamp is { } timer)
            {
                var untilTimer = timer - _services.Time.GetUtcNow().ToUnixTimeMilliseconds();
                var at = _services.Time.GetTimestamp() + (Math.Max(0, untilTimer) * Stopwatch.Frequency / 1000);
                deadline = deadline is null ? at : Math.Min(deadline.Value, at);
            }
        }

        if (includeSource && _chain.Source is not null && !_sourceEnded)
        {
            deadline = deadline is null ? _sourceRetryAt : Math.Min(deadline.Value, _sourceRetryAt);
        }

        return deadline;
    }

    private Task WaitAsync(long? deadline)
    {
        if (_wakePending || State != SubtaskState.Running || _stopping.IsCancellationRequested)
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
            return wake.Task.WaitAsync(_stopping.Token);
        }

        var delay = _services.Time.GetElapsedTime(_services.Time.GetTimestamp(), at);
        if (delay <= TimeSpan.Zero)
        {
            _wake = null;
            return Task.CompletedTask;
        }

        // Timers count whole milliseconds and truncate the rest: a wait under one (a rate-limited source asks for 0.4 ms
        // at 2,500 records per second) fired at once, and the loop went round without waiting until the deadline,
        // allocating a delay, a completion source and a WhenAny each turn: in the checkpoint benchmark, 80 gen 0
        // collections a second and 12% of the time in GC pauses. So a wait lasts at least one whole millisecond.
        var wait = TimeSpan.FromMilliseconds(Math.Ceiling(delay.TotalMilliseconds));
        return Task.WhenAny(wake.Task, Task.Delay(wait, _services.Time, _stopping.Token));
    }

    private void Wake()
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

    private void DeleteDirectory(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException ex)
        {
            _services.Logger.LogWarning(ex, "Subtask {Subtask}: could not delete {Directory}", Id, directory);
        }
    }

    /// <summary>Removes empty directories below and including <paramref name="directory"/> (other subtasks may be using the rest).</summary>
    private static void DeleteEmptyDirectories(string directory)
    {
        try
        {
            if (!Directory.Exists(directory))
            {
                return;
            }

            foreach (var child in Directory.EnumerateDirectories(directory))
            {
                DeleteEmptyDirectories(child);
            }

            if (!Directory.EnumerateFileSystemEntries(directory).Any())
            {
                Directory.Delete(directory);
            }
        }
        catch (IOException)
        {
            // Another subtask of the job on this silo created or removed something meanwhile.
        }
    }

    private sealed class Progress(SubtaskRunner runner) : IProgress<RestoreProgress>
    {
        public void Report(RestoreProgress value) => runner._restore = value;
    }
}
