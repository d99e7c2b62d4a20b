using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Subtasks;

/// <summary>
/// Runs one subtask: its operator chain on a mailbox loop, fed by input channels or a source, writing to output channels.
/// </summary>
/// <remarks>
/// <para>The runner owns the subtask's life: it opens it (builds the chain from the spec, restores state, opens every
/// operator), starts it, reports its status, and stops and releases it. It wires the parts that do the work: the
/// <see cref="SubtaskMailbox"/> (the loop that alone touches operators and state, with its
/// <see cref="DeadlineClock"/>), the <see cref="SubtaskCheckpointing"/> (snapshots, acknowledgements and declines,
/// notifications, stop-with-savepoint), the <see cref="SubtaskLifecycle"/> (the state and the report of finish or
/// failure) and the <see cref="SubtaskDirectories"/> (local files and their cleanup).</para>
/// <para>Threading: the grain calls it on the grain's scheduler, one turn at a time; the calls only update queues and
/// wake the mailbox. The asynchronous part of a snapshot runs on the thread pool and acknowledges without returning to
/// the grain's scheduler (see <see cref="SubtaskCheckpointing"/>).</para>
/// </remarks>
internal sealed class SubtaskRunner : IAsyncDisposable
{
    private readonly SubtaskDeployment _deployment;
    private readonly SubtaskServices _services;
    private readonly CancellationTokenSource _stopping;
    private readonly SubtaskLifecycle _lifecycle;
    private readonly SubtaskDirectories _directories;
    private readonly Counter _recordsIn = new();
    private readonly Counter _recordsOut = new();
    private OutputChannels? _outputs;
    private InputGate? _inputs;
    private OperatorChain? _chain;
    private ChainPlan? _chainPlan;
    private SubtaskCheckpointing? _checkpointing;
    private SubtaskMailbox? _mailbox;
    private KeyGroupRange _keyGroups = KeyGroupRange.Empty;
    private bool _disposed;
    private string? _silo;
    private volatile RestoreProgress? _restore;
    private DateTimeOffset? _openedAt;
    private DateTimeOffset? _readyAt;

    public SubtaskRunner(SubtaskDeployment deployment, SubtaskServices services)
    {
        _deployment = deployment;
        _services = services;
        _stopping = CancellationTokenSource.CreateLinkedTokenSource(services.SiloStopping);
        _lifecycle = new SubtaskLifecycle(deployment.Subtask, services.Listener, services.Logger);
        _directories = new SubtaskDirectories(services.Options.StateDirectory, deployment.Subtask, services.Logger);
    }

    public SubtaskId Id => _deployment.Subtask;

    public SubtaskState State => _lifecycle.State;

    /// <summary>Why the subtask failed, once it has.</summary>
    public JobFailure? Failure => _lifecycle.Failure;

    /// <summary>The restore's progress so far, when the subtask restores state.</summary>
    public RestoreProgress? Restore => _restore;

    /// <summary>Builds the chain from the spec, restores state and opens every operator; the subtask is then ready.</summary>
    /// <exception cref="StreamGrains.State.Restore.RestoreException">When the state to restore cannot be read.</exception>
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

        // Created before the first await, so batches, credits and checkpoint calls that arrive while the operators open
        // (a restore may take minutes) find the mailbox and the checkpointing there.
        var token = _stopping.Token;
        _checkpointing = new SubtaskCheckpointing(Id, chain.Name, _chain.Operators, _outputs, _inputs, _services.Time, _services.Listener, _services.Logger, token);
        _mailbox = new SubtaskMailbox(_chain, _inputs, _outputs, _lifecycle, _checkpointing, _services.Time, token);
        var context = new OperatorContext
        {
            Subtask = Id,
            Chain = chain,
            Plan = plan,
            Spec = spec,
            KeyGroups = _keyGroups,
            Splits = _deployment.Splits,
            StateDirectory = _directories.Working,
            LocalCheckpointRoot = _directories.LocalCheckpointRoot,
            Storage = _services.Storage,
            Restore = _deployment.Restore,
            RestoredFrom = _deployment.RestoredFrom,
            RestoreProgress = new Progress(this),
            Stopping = token,
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

        _lifecycle.Opened();
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

        _lifecycle.Started();
        foreach (var op in _chain!.Operators)
        {
            op.Started();
        }

        _mailbox!.Start();
    }

    public void Deliver(DataBatch batch)
    {
        if (State is SubtaskState.Failed or SubtaskState.Canceled || _mailbox is null)
        {
            return;
        }

        if (_inputs!.Accept(batch))
        {
            _mailbox.Wake();
        }
    }

    public void AddCredits(int edgeId, int receiverIndex, int credits)
    {
        if (_outputs is null || State is SubtaskState.Failed or SubtaskState.Canceled)
        {
            return;
        }

        _outputs.AddCredits(edgeId, receiverIndex, credits);
        _mailbox?.Wake();
    }

    /// <summary>Asks a source subtask to inject the barrier of a checkpoint; false when it is not running a source.</summary>
    public bool TriggerCheckpoint(long checkpointId) => _mailbox?.TriggerCheckpoint(checkpointId) ?? false;

    public void NotifyCheckpointComplete(long checkpointId) => _mailbox?.NotifyCheckpointComplete(checkpointId);

    /// <summary>Records what kind of snapshot checkpoint <paramref name="checkpointId"/> is, before its barrier can arrive.</summary>
    public void PrepareSnapshot(long checkpointId, SnapshotOptions options) => _checkpointing?.PrepareSnapshot(checkpointId, options);

    /// <summary>A stop-with-savepoint failed after the snapshot: processing resumes.</summary>
    public void ResumeAfterSavepoint(long checkpointId) => _mailbox?.ResumeAfterSavepoint(checkpointId);

    public void NotifyCheckpointAborted(long checkpointId) => _mailbox?.NotifyCheckpointAborted(checkpointId);

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
        FirstRecordAt = _mailbox?.FirstRecordAt,
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
        _checkpointing?.Stop();
        _lifecycle.Cancel();
        await _stopping.CancelAsync();
        _mailbox?.Wake();
        if (_mailbox?.Completion is { } loop)
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

        var statefulOperators = _chainPlan?.Nodes.Where(static n => n.IsStateful).Select(static n => n.EffectiveUid) ?? [];
        _directories.CleanUp(reason, _services.Options.DeleteLocalStateOnStop, statefulOperators, _keyGroups);
        _stopping.Dispose();
    }

    private void OnDeliveryFailed(Exception exception)
    {
        if (State is SubtaskState.Running or SubtaskState.Ready)
        {
            _lifecycle.Fail(new InvalidOperationException($"Subtask {Id} could not deliver a batch: {exception.Message}", exception));
            _mailbox?.Wake();
        }
    }

    private sealed class Progress(SubtaskRunner runner) : IProgress<RestoreProgress>
    {
        public void Report(RestoreProgress value) => runner._restore = value;
    }
}
