using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// Owns one job: validates the spec, deploys each attempt, reports status, and ends the job (finish, cancel, stop with
/// a savepoint, failure). The work is done by small parts: <see cref="RestorePlanner"/> and
/// <see cref="RestorePointReader"/> (what each subtask starts from), <see cref="AttemptDeployer"/> (deploy, restore gate,
/// start), <see cref="FailoverHandler"/> (restart strategy and fallback to older checkpoints), <see cref="SiloWatchdog"/>,
/// <see cref="CoordinatorWatch"/> (starts a lost coordinator again, aborts its savepoint in flight),
/// <see cref="SubtaskRoster"/> (the subtasks' status), <see cref="JobRecordStore"/>, and the
/// <see cref="CheckpointCleaner"/> for every deletion of checkpoint files.
/// </summary>
/// <remarks>
/// <para>Reentrant: subtasks report to it while it awaits deploys, and clients long-poll <see cref="WaitForChange"/>.
/// After every await the code checks that the job is still in the attempt and state it expected.</para>
/// <para>Its record (spec, attempt, state) is kept in checkpoint storage. A job grain activated again after its silo
/// was lost (subtask heartbeats bring it back) reads the record and, if the job was running, fails over. While the record
/// cannot be read, it reads again with back-off, leaves the subtasks alone and refuses a submit under the same id. Record
/// writes are conditional (<see cref="JobRecordStore"/>), so an older activation cannot overwrite a newer one's.</para>
/// </remarks>
[GrainType("streamgrains.job")]
[Reentrant]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class JobGrain : Grain, IJobGrain, IRestartableJob
{
    private readonly CrashedSiloDetector _silos;
    private readonly ICheckpointStorage _storage;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly JobRecordStore _records;
    private readonly JobSubmission _submission;
    private readonly SubtaskRoster _subtasks;
    private readonly GrainSubtaskGateway _gateway;
    private readonly FailoverHandler _failover;
    private readonly PlannedMove _moves;
    private readonly CoordinatorWatch _watch;
    private bool _recordUnknown;
    private int _readFailures;
    private JobRecord? _record;
    private JobPlan? _plan;
    private long _version;
    private IGrainTimer? _watchdog;
    private AttemptDeployer? _deployer;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public JobGrain(CrashedSiloDetector silos, ICheckpointStorage storage, IGrainFactory grains, Orleans.Serialization.Serializer serializer, TimeProvider time, ILogger<JobGrain> logger)
    {
        _silos = silos;
        _storage = storage;
        _time = time;
        _logger = logger;
        _records = new JobRecordStore(storage, serializer, logger);
        var restorePoints = new RestorePointReader(storage);
        _submission = new JobSubmission(storage, restorePoints);
        _gateway = new GrainSubtaskGateway(grains, logger);
        _subtasks = new SubtaskRoster(_gateway);
        _failover = new FailoverHandler(this, new CheckpointCleaner(storage, logger), restorePoints, storage, time, logger);
        _moves = new PlannedMove(this, _failover, _subtasks, () => Coordinator, logger);
        _watch = new CoordinatorWatch(grains.GetGrain<ICheckpointCoordinatorGrain>(Id.Value), grains, new CheckpointCleaner(storage, logger), time, logger, Id);
    }

    public JobId Id => new(this.GetPrimaryKeyString());

    public JobRecord? Record => _record;

    public JobPlan Plan => _plan ?? throw new InvalidOperationException($"Job {Id} has no plan.");

    private ICheckpointCoordinatorGrain Coordinator => GrainFactory.GetGrain<ICheckpointCoordinatorGrain>(Id.Value);

    private JobState State => _record?.State ?? JobState.Deploying;

    /// <summary>The record, null when there is none; throws while whether there is one is unknown (storage could not read it).</summary>
    private JobRecord? KnownRecord() => _record is null && _recordUnknown ? throw new InvalidOperationException(UnknownRecord) : _record;

    private string UnknownRecord => $"Whether a job with id '{Id}' exists is unknown: its record could not be read from checkpoint storage {_storage.Location} (reading again). Try again when the storage is reachable.";

    public override Task OnActivateAsync(CancellationToken cancellationToken) => LoadRecordAsync(cancellationToken);

    /// <summary>Reads the record; when storage fails, reads again later (back-off) and meanwhile treats the job as unknown, not ended.</summary>
    private async Task LoadRecordAsync(CancellationToken cancellationToken)
    {
        try
        {
            _record = await _records.ReadAsync(Id, cancellationToken);
            _recordUnknown = false;
        }
        catch (CheckpointStorageException ex)
        {
            _recordUnknown = true;
            var delay = JobRecordStore.RetryDelay(++_readFailures);
            _logger.LogWarning(ex, "Job {Job}: its record could not be read from checkpoint storage; reading again in {Delay}, its subtasks are left alone meanwhile", Id, delay);
            this.RegisterGrainTimer(() => LoadRecordAsync(CancellationToken.None), new GrainTimerCreationOptions { DueTime = delay, Period = Timeout.InfiniteTimeSpan, Interleave = true });
            return;
        }

        if (_record is null || _record.State.IsTerminal())
        {
            return;
        }

        try
        {
            _plan = JobDefinitions.Plan(_record.Spec);
        }
        catch (JobValidationException ex)
        {
            _record.State = JobState.Failed;
            _record.Failure = JobFailure.FromException(ex, JobFailureKind.InvalidJob, operatorUid: null, subtaskIndex: -1);
            return;
        }

        _logger.LogWarning("Job {Job} was {State} in attempt {Attempt} when its grain was lost; failing over", Id, _record.State, _record.Attempt);
        var attempt = _record.Attempt;
        var failure = JobFailure.Of(JobFailureKind.JobGrainLost, $"the job grain of attempt {attempt} was lost with its silo");
        this.RegisterGrainTimer(() => _moves.ResumePendingOrAsync(() => _failover.FailoverAsync(failure, attempt)), new GrainTimerCreationOptions { DueTime = TimeSpan.Zero, Period = Timeout.InfiniteTimeSpan, Interleave = true });
    }

    public async Task<SubmitResult> Submit(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var id = Id;
        if (spec.JobId is { } requested && requested != id)
        {
            return Rejected($"The spec names job '{requested}' but was sent to job '{id}'.");
        }

        spec = spec with { JobId = id };
        var check = await _submission.CheckAsync(spec);
        if (!check.Accepted)
        {
            return new SubmitResult { JobId = id, Errors = check.Errors };
        }

        if (_recordUnknown)
        {
            // Storage passed the check just now: read the record again before deciding whether the id is free.
            await LoadRecordAsync(CancellationToken.None);
            if (_recordUnknown)
            {
                return Rejected(UnknownRecord);
            }
        }

        var (plan, restore) = (check.Plan!, check.Restore);
        if (_record is not null)
        {
            return Rejected($"A job with id '{id}' already exists ({_record.State}); choose another id.");
        }

        _record = new JobRecord { Spec = spec, State = JobState.Deploying, Attempt = 1, SubmittedAt = _time.GetUtcNow() };
        _plan = plan;
        if (!await PersistAsync())
        {
            _record = null;
            return Rejected($"The job's record could not be written to checkpoint storage {_storage.Location}.");
        }

        _logger.LogInformation("Job {Job} ({Type}) accepted: {Chains} chains, {Subtasks} subtasks{Restore}", id, spec.JobType, plan.Chains.Count, plan.SubtaskCount, restore is null ? string.Empty : $", restoring {restore.ManifestPath}");
        SetState(JobState.Deploying);
        _ = StartFirstAttemptAsync(restore);
        return new SubmitResult { JobId = id };

        SubmitResult Rejected(string error) => new() { JobId = id, Errors = [error] };
    }

    public async Task<JobStatus?> GetStatus(bool refreshSubtasks)
    {
        if (KnownRecord() is null || _record is null)
        {
            return null;
        }

        if (refreshSubtasks && !State.IsTerminal())
        {
            await _subtasks.RefreshAsync(_record.Attempt);
        }

        var (latest, recent, savepoint) = _record.Spec.Checkpointing.Enabled ? await _watch.GetStatsAsync() : (null, [], null);
        return Snapshot() with { LatestCheckpoint = latest, RecentCheckpoints = recent, LatestSavepoint = savepoint };
    }

    public async Task<JobStatus?> WaitForChange(long knownVersion, TimeSpan maxWait)
    {
        if (KnownRecord() is null || _record is null)
        {
            return null;
        }

        if (_version <= knownVersion)
        {
            await Task.WhenAny(_changed.Task, Task.Delay(maxWait, _time));
        }

        return Snapshot();
    }

    public Task<JobStatus?> Cancel() => CancelAsync(keepCheckpoints: false);

    public Task<JobStatus?> CancelKeepingCheckpoints() => CancelAsync(keepCheckpoints: true);

    public Task OnSubtaskFinished(SubtaskId subtask)
    {
        if (_record is null || subtask.Attempt != _record.Attempt || State != JobState.Running || !_subtasks.MarkFinished(subtask))
        {
            return Task.CompletedTask;
        }

        return _subtasks.FinishedCount == Plan.SubtaskCount ? EndAsync(subtask.Attempt, "finished") : Task.CompletedTask;
    }

    public Task OnSubtaskFailed(SubtaskId subtask, JobFailure failure) =>
        _record is null || subtask.Attempt != _record.Attempt ? Task.CompletedTask : _failover.FailoverAsync(failure, subtask.Attempt);

    public Task Heartbeat(SubtaskId subtask, SubtaskHeartbeat heartbeat) => HeartbeatTriage.Of(_record, _recordUnknown, subtask, heartbeat, () => _subtasks.Heard(subtask, _time.GetUtcNow())) switch
    {
        HeartbeatAction.StopJobEnded => GrainFactory.GetGrain<ISubtaskGrain>(subtask.GrainKey).Cancel(StopReason.JobEnded),
        HeartbeatAction.StopOldAttempt => GrainFactory.GetGrain<ISubtaskGrain>(subtask.GrainKey).Cancel(StopReason.Failover),
        HeartbeatAction.Failed => OnSubtaskFailed(subtask, heartbeat.Failure ?? JobFailure.Of(JobFailureKind.Runtime, $"subtask {subtask} failed", subtask.Index)),
        HeartbeatAction.Finished => OnSubtaskFinished(subtask),
        _ => Task.CompletedTask,
    };

    public Task OnSubtaskReady(SubtaskId subtask, DeployResult result) => _deployer?.OnSubtaskReady(subtask, result) ?? Task.CompletedTask;

    public Task OnCheckpointFailuresExceeded(int attempt, string reason) =>
        _record is null || attempt != _record.Attempt ? Task.CompletedTask : _failover.FailoverAsync(JobFailure.Of(JobFailureKind.CheckpointFailures, reason), attempt);

    public Task<CheckpointStats> TriggerCheckpoint(TimeSpan maxWait) => Coordinator.TriggerNow(CheckpointableAttempt("a checkpoint", string.Empty), maxWait);

    public Task<CheckpointStats> WaitForCheckpoint(long checkpointId, TimeSpan maxWait) => Coordinator.WaitFor(checkpointId, maxWait);

    public Task<bool> OnSiloLeaving(string silo, TimeSpan maxWait) => _moves.OnSiloLeavingAsync(silo, maxWait, jobGrainLeaves: silo == GrainContext.Address.SiloAddress?.ToString());

    public async Task<SavepointStatus> TriggerSavepoint(SavepointRequest request, TimeSpan maxWait)
    {
        ArgumentNullException.ThrowIfNull(request);
        return await _watch.TriggerSavepointAsync(CheckpointableAttempt("a savepoint", " (savepoints need checkpoint storage and the coordinator)"), request, maxWait);
    }

    /// <summary>The running attempt of a job with checkpointing on; throws an error naming <paramref name="what"/> otherwise.</summary>
    private int CheckpointableAttempt(string what, string why) => _record is { Spec.Checkpointing.Enabled: true } record && State == JobState.Running
        ? record.Attempt
        : throw new InvalidOperationException($"Job {Id} cannot take {what}: it is {(_record is null ? "unknown" : State)}{(_record?.Spec.Checkpointing.Enabled == false ? " and has checkpointing disabled" + why : string.Empty)}.");

    public Task<SavepointStatus> WaitForSavepoint(long checkpointId, TimeSpan maxWait) => _watch.WaitForSavepointAsync(_record?.Attempt ?? 0, checkpointId, maxWait);

    public Task OnSavepointStarted(int attempt, SavepointStatus savepoint) =>
        _record is { } record && attempt == record.Attempt && State == JobState.Running ? _watch.SavepointStarted(attempt, savepoint) : Task.CompletedTask;

    public async Task OnSavepointCompleted(int attempt, SavepointStatus savepoint)
    {
        ArgumentNullException.ThrowIfNull(savepoint);
        _watch.SavepointEnded(savepoint);
        if (_record is not { } record || attempt != record.Attempt || State != JobState.Running)
        {
            return;
        }

        record.FinalSavepoint = savepoint.Directory;
        if (savepoint.Then == SavepointThen.Cancel)
        {
            _logger.LogInformation("Job {Job}: cancelling after savepoint {Savepoint}", Id, savepoint.Directory);
            await Cancel();
            return;
        }

        await EndAsync(attempt, $"stopped with savepoint {savepoint.Directory}");
    }

    Task<IReadOnlyList<CompletedCheckpoint>> IRestartableJob.GetCompletedCheckpointsAsync() => Coordinator.GetCompletedCheckpoints();

    Task IRestartableJob.DiscardCheckpointAsync(long checkpointId, string reason) => Coordinator.Discard(checkpointId, reason);

    public async Task StopCheckpointingAsync(int attempt)
    {
        StopWatchdog();
        await _watch.AbortSavepointAsync(attempt, $"attempt {attempt} ended before it completed");
        if (_record!.Spec.Checkpointing.Enabled)
        {
            await Coordinator.StopQuietlyAsync(attempt, _logger, Id);
        }
    }

    public Task ReleaseSubtasksAsync(int attempt, StopReason reason) => _subtasks.ReleaseAsync(attempt, reason);

    public async Task FailForGoodAsync(JobFailure failure)
    {
        await StopCheckpointingAsync(_record!.Attempt);
        _record.Failure = failure;
        SetState(JobState.Failed);
        await PersistAsync();
        await _subtasks.ReleaseAsync(_record.Attempt, StopReason.JobEnded);
    }

    public async Task<bool> PersistAsync()
    {
        var written = await _records.WriteAsync(Id, _record!);
        if (!written && _records.Superseded)
        {
            // Another activation owns the job now (Orleans created it when this one's directory entry was lost with its
            // silo): this one leaves, so that calls and heartbeats reach the activation that owns the record.
            JobRecordStore.LeaveSuperseded(GrainContext);
        }

        return written;
    }

    public bool Superseded => _records.Superseded;

    public void SetState(JobState state)
    {
        _record!.State = state;
        _version++;
        if (state.IsTerminal())
        {
            _record.EndedAt = _time.GetUtcNow();
        }

        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private async Task<JobStatus?> CancelAsync(bool keepCheckpoints)
    {
        if (_record is null)
        {
            return null;
        }

        if (!State.IsTerminal() && State != JobState.Cancelling)
        {
            SetState(JobState.Cancelling);
            await StopCheckpointingAsync(_record.Attempt);
            await _subtasks.ReleaseAsync(_record.Attempt, StopReason.JobEnded);
            if (!keepCheckpoints)
            {
                await _watch.DeleteCheckpointsUnlessRetainedAsync(_record!.Spec);
            }

            SetState(JobState.Canceled);
            await PersistAsync();
        }

        return Snapshot();
    }

    /// <summary>Ends a running job as Finished: every subtask finished, or the job stopped with a savepoint.</summary>
    private async Task EndAsync(int attempt, string how)
    {
        await StopCheckpointingAsync(attempt);
        await _subtasks.ReleaseAsync(attempt, StopReason.JobEnded);
        if (State == JobState.Running && _record!.Attempt == attempt)
        {
            _logger.LogInformation("Job {Job} {How}", Id, how);
            await _watch.DeleteCheckpointsUnlessRetainedAsync(_record!.Spec);
            SetState(JobState.Finished);
            await PersistAsync();
        }
    }

    private async Task StartFirstAttemptAsync(CompletedCheckpoint? restore)
    {
        var claim = restore is not null && _record!.Spec.RestoreMode == RestoreMode.Claim;
        var (outcome, failure) = await DeployAttemptAsync(_record!.Attempt, restore, ownsFiles: claim);
        switch (outcome)
        {
            case DeployOutcome.RestoreFailed:
                await FailForGoodAsync(failure!);
                break;
            case DeployOutcome.Failed:
                await _failover.FailoverAsync(failure!, _record.Attempt);
                break;
        }
    }

    /// <summary>Deploys every subtask of <paramref name="attempt"/>, restoring <paramref name="restore"/>, starts them once all are ready, and then reports the job Running.</summary>
    public async Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAttemptAsync(int attempt, CompletedCheckpoint? restore, bool ownsFiles)
    {
        var record = _record!;
        await _silos.SettleAsync();
        record.Epoch++;
        var request = new AttemptRequest
        {
            JobId = Id,
            Attempt = attempt,
            Plan = Plan,
            Spec = record.Spec,
            Restore = restore,
            OwnsFiles = ownsFiles,
            ActiveSilos = _silos.Membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active && !_moves.IsLeaving(m.SiloAddress) && !_silos.IsDeclaredDead(m.SiloAddress)).Select(static m => m.SiloAddress).ToArray(),
            Placement = record.Placement,
            Epoch = record.Epoch,
        };
        _deployer ??= new AttemptDeployer(_gateway, _subtasks, Coordinator, _logger, _time);
        var (outcome, failure) = await _deployer.DeployAsync(request, () => attempt == record.Attempt && State is JobState.Deploying or JobState.Restarting);
        if (outcome == DeployOutcome.Started)
        {
            record.RestoredFrom = restore?.ManifestPath;
            record.SourceRecordsBefore[attempt] = SourceRecordCounter.ReadUpTo(restore, record.SourceRecordsBefore, Id);
            _watch.Started(record.Spec.Checkpointing.Enabled ? _deployer.LastCoordinatorStart : null);
            SetState(JobState.Running);
            await PersistAsync();
            StopWatchdog();
            _watchdog = this.RegisterGrainTimer(CheckSilosAsync, new GrainTimerCreationOptions { DueTime = SiloWatchdog.Interval, Period = SiloWatchdog.Interval, Interleave = true });
        }

        return (outcome, failure);
    }

    /// <summary>Fails over when a subtask's silo left or a subtask is lost; otherwise has the <see cref="CoordinatorWatch"/> check the coordinator.</summary>
    private async Task CheckSilosAsync()
    {
        if (_record is not { State: JobState.Running } record)
        {
            return;
        }

        var attempt = record.Attempt;
        var failure = SiloWatchdog.FindLostSilo(_subtasks.Ordered, attempt, SiloWatchdog.ActiveSilos(_silos.Membership.CurrentSnapshot))
            ?? await _subtasks.FindLostAsync(attempt, _time.GetUtcNow(), SubtaskRoster.HeartbeatTimeout);
        await (failure is not null
            ? _failover.FailoverAsync(failure, attempt)
            : _watch.CheckAsync(attempt, NextEpochAsync, () => State == JobState.Running && record.Attempt == attempt));
    }

    /// <summary>Raises the record's epoch and stores it; null when it could not be stored.</summary>
    private async Task<long?> NextEpochAsync()
    {
        _record!.Epoch++;
        return await PersistAsync() ? _record.Epoch : null;
    }

    private void StopWatchdog()
    {
        _watchdog?.Dispose();
        _watchdog = null;
    }

    private JobStatus Snapshot() => JobStatusSnapshot.Of(Id, _record!, _version, _subtasks.Ordered);
}
