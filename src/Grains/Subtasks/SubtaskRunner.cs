using System.Diagnostics;
using Microsoft.Extensions.Logging;
using StreamGrains.Connectors;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Graph;
using StreamGrains.Runtime;

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

    /// <summary>Called once when the subtask finished all its input, or failed.</summary>
    public required ISubtaskListener Listener { get; init; }
}

/// <summary>Receives a subtask's terminal outcome.</summary>
internal interface ISubtaskListener
{
    void OnFinished(SubtaskId subtask);

    void OnFailed(SubtaskId subtask, JobFailure failure);
}

/// <summary>
/// Runs one subtask: its operator chain on a mailbox loop, fed by input channels or a source, writing to output channels.
/// </summary>
/// <remarks>
/// <para>Threading model: everything runs on the grain's scheduler, one turn at a time. Grain calls
/// (<see cref="Deliver"/>, <see cref="AddCredits"/>) only update queues and wake the loop; the loop alone touches
/// operators and state. The loop yields every few milliseconds so that calls interleave with long runs of work.</para>
/// <para>Each loop iteration does the first of: wait for credits while an output channel has a backlog (backpressure:
/// no new input is taken); fire due timers; process one batch from the mailbox; poll the source; finish; or sleep
/// until a batch, a credit, a due timer or the flush interval wakes it.</para>
/// </remarks>
internal sealed class SubtaskRunner : IAsyncDisposable
{
    private static readonly TimeSpan TimeSlice = TimeSpan.FromMilliseconds(10);

    private readonly SubtaskDeployment _deployment;
    private readonly SubtaskServices _services;
    private readonly Queue<(InputChannel Channel, DataBatch Batch)> _mailbox = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Counter _recordsIn = new();
    private readonly Counter _recordsOut = new();
    private readonly Action<InputChannel, DataBatch> _enqueue;
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
    private bool _disposed;
    private string? _silo;

    public SubtaskRunner(SubtaskDeployment deployment, SubtaskServices services)
    {
        _deployment = deployment;
        _services = services;
        _enqueue = (channel, batch) => _mailbox.Enqueue((channel, batch));
    }

    public SubtaskId Id => _deployment.Subtask;

    public SubtaskState State { get; private set; } = SubtaskState.Created;

    private string StateDirectory => Path.Combine(_services.Options.StateDirectory, Id.Job.Value, $"{Id.Chain}-{Id.Index}-a{Id.Attempt}");

    /// <summary>Builds the chain from the spec and opens every operator (state is ready after this).</summary>
    public DeployResult Open(string silo)
    {
        if (State != SubtaskState.Created)
        {
            throw new InvalidOperationException($"Subtask {Id} was already deployed ({State}).");
        }

        _silo = silo;
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
            StateDirectory = StateDirectory,
            Services = _services.Services,
            Time = _services.Time,
            Options = _services.Options,
            RecordsIn = _recordsIn,
            RecordsOut = _recordsOut,
        };
        foreach (var op in _chain.Operators)
        {
            op.Open(context);
        }

        State = SubtaskState.Ready;
        return new DeployResult { Silo = silo, KeyGroups = _keyGroups };
    }

    /// <summary>Starts the mailbox loop.</summary>
    public void Start()
    {
        if (State != SubtaskState.Ready)
        {
            throw new InvalidOperationException($"Subtask {Id} cannot start from state {State}.");
        }

        State = SubtaskState.Running;
        _loop = RunAsync();
    }

    public void Deliver(DataBatch batch)
    {
        if (State is SubtaskState.Failed or SubtaskState.Canceled || _inputs is null)
        {
            return;
        }

        _inputs.Accept(batch, _enqueue);
        Wake();
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

    public SubtaskStatus GetStatus() => new()
    {
        Chain = _chainPlan?.Name ?? string.Empty,
        Index = Id.Index,
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
    };

    /// <summary>Stops the loop (if running) and releases operators and state.</summary>
    public async ValueTask DisposeAsync()
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

        if (_services.Options.DeleteLocalStateOnStop && Directory.Exists(StateDirectory))
        {
            try
            {
                Directory.Delete(StateDirectory, recursive: true);
                var jobDirectory = Path.GetDirectoryName(StateDirectory)!;
                if (!Directory.EnumerateFileSystemEntries(jobDirectory).Any())
                {
                    Directory.Delete(jobDirectory);
                }
            }
            catch (IOException ex)
            {
                _services.Logger.LogWarning(ex, "Subtask {Subtask}: could not delete local state {Directory}", Id, StateDirectory);
            }
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
            while (State == SubtaskState.Running)
            {
                if (Stopwatch.GetElapsedTime(sliceStart) > TimeSlice)
                {
                    await Task.Yield();
                    sliceStart = Stopwatch.GetTimestamp();
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
                if (_mailbox.TryDequeue(out var item))
                {
                    if (item.Batch.Records is { } records)
                    {
                        chain.Input!.Process(records);
                    }

                    inputs.Processed(item.Channel, item.Batch);
                    inputs.ReturnCredits(creditThreshold);
                    await AfterBatchAsync(chain, token);
                    if (inputs.AllEnded && _mailbox.Count == 0)
                    {
                        await FinishAsync(chain, token);
                    }
                }
                else if (chain.Source is { } source && !_sourceEnded && _services.Time.GetTimestamp() >= _sourceRetryAt)
                {
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
            ? JobFailure.FromException(op.InnerException!, op.OperatorUid, Id.Index)
            : JobFailure.FromException(exception, operatorUid: null, Id.Index);
        _services.Logger.LogWarning(exception, "Subtask {Subtask} failed: {Failure}", Id, failure);
        _services.Listener.OnFailed(Id, failure);
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
        if (_wakePending || State != SubtaskState.Running)
        {
            _wakePending = false;
            return Task.CompletedTask;
        }

        var wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _wake = wake;
        if (deadline is not { } at)
        {
            return wake.Task;
        }

        var delay = _services.Time.GetElapsedTime(_services.Time.GetTimestamp(), at);
        if (delay <= TimeSpan.Zero)
        {
            _wake = null;
            return Task.CompletedTask;
        }

        return Task.WhenAny(wake.Task, Task.Delay(delay, _services.Time, _stopping.Token));
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
}
