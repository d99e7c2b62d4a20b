using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Grains.Placement;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Restore;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Subtasks;

/// <summary>The grain of one subtask: a thin shell that hands calls to its <see cref="SubtaskRunner"/>.</summary>
/// <remarks>
/// <para>Reentrant so that batches, credits, checkpoint calls and status calls are never blocked behind the mailbox loop;
/// all of them run on the grain's scheduler one turn at a time, and only the mailbox loop (<see cref="SubtaskMailbox"/>)
/// touches operators.</para>
/// <para>No call spans a long operation: <see cref="Deploy"/> starts the open (build the chain, restore state, open the
/// operators, which may take minutes) in the background on the grain's scheduler and returns; the outcome goes to the job
/// grain (<see cref="IJobGrain.OnSubtaskReady"/>) and is kept for <see cref="GetDeployState"/>, which the job grain polls
/// in case that one-way report is lost. From its deploy on, the grain sends the job grain a heartbeat with its state,
/// which brings the job grain back if its silo was lost and repeats a failure or finish whose report was lost.</para>
/// </remarks>
[GrainType("streamgrains.subtask")]
[SubtaskPlacement]
[Reentrant]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class SubtaskGrain(
    IServiceProvider services,
    ILocalSiloDetails silo,
    IOptions<StreamGrainsOptions> options,
    Orleans.Serialization.Serializer serializer,
    IBatchTransport transport,
    TimeProvider time,
    IGrainFactory siloGrainFactory,
    ILogger<SubtaskGrain> logger) : Grain, ISubtaskGrain, ISubtaskListener
{
    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(2);
    private SubtaskRunner? _runner;
    private IGrainTimer? _heartbeat;
    private bool _deployed;
    private DeployResult? _deployResult;

    public Task Deploy(SubtaskDeployment deployment)
    {
        ArgumentNullException.ThrowIfNull(deployment);
        var key = this.GetPrimaryKeyString();
        if (deployment.Subtask.GrainKey != key)
        {
            throw new ArgumentException($"Deployment for subtask {deployment.Subtask} was sent to grain {key}.", nameof(deployment));
        }

        if (_deployed)
        {
            throw new InvalidOperationException($"Subtask {key} is already deployed.");
        }

        _deployed = true;
        var runner = new SubtaskRunner(deployment, new SubtaskServices
        {
            Services = services,
            Serializer = serializer,
            Transport = transport,
            Options = options.Value,
            Time = time,
            Logger = logger,
            Storage = services.GetService<ICheckpointStorage>(),
            Listener = this,
            SiloStopping = services.GetService<SiloDeparture>()?.SubtasksMustStop ?? CancellationToken.None,
        });
        _runner = runner;
        var job = GrainFactory.GetGrain<IJobGrain>(deployment.Subtask.Job.Value);
        _heartbeat = this.RegisterGrainTimer(() => job.Heartbeat(deployment.Subtask, HeartbeatOf()), new GrainTimerCreationOptions { DueTime = HeartbeatInterval, Period = HeartbeatInterval, Interleave = true });

        // Started on this turn, so the open runs on the grain's scheduler; the call returns before the first await of a restore.
        _ = OpenAsync(runner, deployment, job);
        return Task.CompletedTask;
    }

    public Task<SubtaskDeployState> GetDeployState()
    {
        var address = silo.SiloAddress.ToString();
        return Task.FromResult(_deployResult is { } result ? new SubtaskDeployState { Phase = SubtaskDeployPhase.Done, Result = result, Silo = address }
            : _runner is { } runner ? new SubtaskDeployState { Phase = SubtaskDeployPhase.Opening, Restore = runner.Restore, Silo = address }
            : new SubtaskDeployState { Phase = SubtaskDeployPhase.None, Silo = address });
    }

    public Task Start()
    {
        Runner.Start();
        return Task.CompletedTask;
    }

    public Task Deliver(DataBatch batch)
    {
        Runner.Deliver(batch);
        return Task.CompletedTask;
    }

    public Task AddCredits(int edgeId, int receiverIndex, int credits)
    {
        _runner?.AddCredits(edgeId, receiverIndex, credits);
        return Task.CompletedTask;
    }

    public Task<SubtaskStatus> GetStatus() => Task.FromResult(_runner?.GetStatus() ?? new SubtaskStatus { Chain = string.Empty, State = SubtaskState.Created, Silo = silo.SiloAddress.ToString() });

    public Task Cancel(StopReason reason) => ReleaseAsync(reason);

    public Task<bool> TriggerCheckpoint(long checkpointId) => Task.FromResult(_runner?.TriggerCheckpoint(checkpointId) ?? false);

    public Task NotifyCheckpointComplete(long checkpointId)
    {
        _runner?.NotifyCheckpointComplete(checkpointId);
        return Task.CompletedTask;
    }

    public Task NotifyCheckpointAborted(long checkpointId)
    {
        _runner?.NotifyCheckpointAborted(checkpointId);
        return Task.CompletedTask;
    }

    public Task PrepareSnapshot(long checkpointId, SnapshotOptions options)
    {
        _runner?.PrepareSnapshot(checkpointId, options);
        return Task.CompletedTask;
    }

    public Task ResumeAfterSavepoint(long checkpointId)
    {
        _runner?.ResumeAfterSavepoint(checkpointId);
        return Task.CompletedTask;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _heartbeat?.Dispose();
        if (_runner is { } runner)
        {
            _runner = null;
            await runner.StopAsync(StopReason.Failover);
        }
    }

    void ISubtaskListener.OnFinished(SubtaskId subtask) =>
        _ = GrainFactory.GetGrain<IJobGrain>(subtask.Job.Value).OnSubtaskFinished(subtask);

    void ISubtaskListener.OnFailed(SubtaskId subtask, JobFailure failure) =>
        _ = GrainFactory.GetGrain<IJobGrain>(subtask.Job.Value).OnSubtaskFailed(subtask, failure);

    // Called from the thread pool (a checkpoint's asynchronous part), not on the grain's turn, where the grain's own
    // GrainFactory does not deliver calls: the silo's grain factory.
    void ISubtaskListener.OnCheckpointAcknowledged(SubtaskCheckpointAck ack) =>
        _ = siloGrainFactory.GetGrain<ICheckpointCoordinatorGrain>(ack.Subtask.Job.Value).Acknowledge(ack.Subtask.Attempt, ack);

    void ISubtaskListener.OnCheckpointDeclined(SubtaskId subtask, long checkpointId, CheckpointDeclineReason reason, string message) =>
        _ = siloGrainFactory.GetGrain<ICheckpointCoordinatorGrain>(subtask.Job.Value).Decline(subtask.Attempt, checkpointId, subtask, reason, message);

    private SubtaskRunner Runner
    {
        get
        {
            if (_runner is { } runner)
            {
                return runner;
            }

            // A late call (for example a duplicate batch) reached a subtask that was stopped: this activation was created
            // by the call itself and must not stay alive.
            DeactivateOnIdle();
            throw new InvalidOperationException($"Subtask {this.GetPrimaryKeyString()} is not deployed (it may have been stopped or its silo restarted).");
        }
    }

    private async Task ReleaseAsync(StopReason reason)
    {
        _heartbeat?.Dispose();
        _heartbeat = null;
        if (_runner is { } runner)
        {
            _runner = null;
            await runner.StopAsync(reason);
        }

        DeactivateOnIdle();
    }

    /// <summary>Opens the runner and reports the outcome; a failed open releases the runner but keeps the outcome for polls and heartbeats until the job grain stops the subtask.</summary>
    private async Task OpenAsync(SubtaskRunner runner, SubtaskDeployment deployment, IJobGrain job)
    {
        DeployResult result;
        try
        {
            result = await runner.OpenAsync(silo.SiloAddress.ToString());
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Subtask {Subtask} could not be deployed", deployment.Subtask);
            var restoreFailed = ex is RestoreException;
            var failure = ex is OperatorException op
                ? JobFailure.FromException(op.InnerException!, JobFailureKind.UserCode, op.OperatorUid, deployment.Subtask.Index)
                : JobFailure.FromException(ex, restoreFailed ? JobFailureKind.RestoreFailed : ex is RestoreInterruptedException ? JobFailureKind.Storage : JobFailureKind.Runtime, operatorUid: null, deployment.Subtask.Index);
            result = new DeployResult { Silo = silo.SiloAddress.ToString(), Failure = failure, RestoreFailed = restoreFailed };
            if (_runner == runner)
            {
                _runner = null;
                await runner.StopAsync(StopReason.Failover);
            }
        }

        _deployResult = result;
        try
        {
            await job.OnSubtaskReady(deployment.Subtask, result);
        }
        catch (Exception ex)
        {
            // The job grain polls the deploy state as well: a lost report costs a poll interval, not the attempt.
            logger.LogDebug(ex, "Subtask {Subtask} could not report its deployment to the job grain", deployment.Subtask);
        }
    }

    /// <summary>The heartbeat: the runner's state, or Failed with the deploy's failure once a failed open released the runner.</summary>
    private SubtaskHeartbeat HeartbeatOf() => _runner is { } runner
        ? new SubtaskHeartbeat { State = runner.State, Failure = runner.Failure }
        : new SubtaskHeartbeat { State = SubtaskState.Failed, Failure = _deployResult?.Failure };
}
