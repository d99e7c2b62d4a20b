using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Runtime.Placement;
using StreamGrains.Connectors;
using StreamGrains.Grains.Placement;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// Owns one job: validates the spec, deploys the subtasks of each attempt (restoring their state first), starts them
/// once all are ready (the restore gate), starts the checkpoint coordinator, and fails over when a subtask fails or a
/// silo leaves: the attempt is stopped and the job restarts from its latest restorable checkpoint under the restart
/// strategy.
/// </summary>
/// <remarks>
/// <para>Reentrant: subtasks report to it while it awaits deploys, and clients long-poll <see cref="WaitForChange"/>.
/// After every await the code checks that the job is still in the attempt and state it expected.</para>
/// <para>Its record (spec, attempt, state) is kept in checkpoint storage. A job grain activated again after its silo
/// was lost (subtask heartbeats bring it back) reads the record and, if the job was running, fails over.</para>
/// </remarks>
[GrainType("streamgrains.job")]
[Reentrant]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class JobGrain(
    IClusterMembershipService membership,
    ICheckpointStorage storage,
    Orleans.Serialization.Serializer serializer,
    TimeProvider time,
    ILogger<JobGrain> logger) : Grain, IJobGrain
{
    private static readonly TimeSpan WatchdogInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan StorageCheckTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan SubtaskCallTimeout = TimeSpan.FromSeconds(10);
    private readonly Dictionary<SubtaskId, SubtaskStatus> _subtasks = [];
    private readonly HashSet<SubtaskId> _finished = [];
    private JobRecord? _record;
    private JobPlan? _plan;
    private long _version;
    private IGrainTimer? _watchdog;
    private bool _restarting;
    private (JobFailure Failure, int Attempt)? _failureWhileRestarting;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private enum DeployOutcome
    {
        Started,
        Superseded,
        RestoreFailed,
        Failed,
    }

    private JobId Id => new(this.GetPrimaryKeyString());

    private ICheckpointCoordinatorGrain Coordinator => GrainFactory.GetGrain<ICheckpointCoordinatorGrain>(Id.Value);

    private JobState State => _record?.State ?? JobState.Deploying;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        byte[]? bytes;
        try
        {
            bytes = await storage.ReadAsync(JobRecord.PathOf(Id.Value), cancellationToken);
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Job {Job}: its record could not be read from checkpoint storage", Id);
            return;
        }

        if (bytes is null)
        {
            return;
        }

        _record = serializer.Deserialize<JobRecord>(bytes) ?? throw new InvalidOperationException($"The record of job {Id} is empty.");
        _record.Failure = _record.Failure?.Upgraded();
        if (_record.State.IsTerminal())
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

        logger.LogWarning("Job {Job} was {State} in attempt {Attempt} when its grain was lost; failing over", Id, _record.State, _record.Attempt);
        var attempt = _record.Attempt;
        var failure = JobFailure.Of(JobFailureKind.JobGrainLost, $"the job grain of attempt {attempt} was lost with its silo");
        this.RegisterGrainTimer(() => FailoverAsync(failure, attempt), new GrainTimerCreationOptions { DueTime = TimeSpan.Zero, Period = Timeout.InfiniteTimeSpan, Interleave = true });
    }

    public async Task<SubmitResult> Submit(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var id = Id;
        if (spec.JobId is { } requested && requested != id)
        {
            return Rejected($"The spec names job '{requested}' but was sent to job '{id}'.");
        }

        if (_record is not null)
        {
            return Rejected($"A job with id '{id}' already exists ({_record.State}); choose another id.");
        }

        spec = spec with { JobId = id };
        JobPlan plan;
        try
        {
            plan = JobDefinitions.Plan(spec);
            _ = AssignSplits(plan, spec, restore: null);
        }
        catch (JobValidationException ex)
        {
            return new SubmitResult { JobId = id, Errors = ex.Errors };
        }

        try
        {
            using var timeout = new CancellationTokenSource(StorageCheckTimeout);
            await storage.CheckAccessAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is CheckpointStorageException or OperationCanceledException)
        {
            return Rejected($"Checkpoint storage {storage.Location} is not usable: {ex.Message}");
        }

        CompletedCheckpoint? restore = null;
        if (spec.RestoreFrom is { } restoreFrom)
        {
            var (checkpoint, errors) = await ReadRestorePointAsync(restoreFrom, plan, spec);
            if (checkpoint is null)
            {
                return new SubmitResult { JobId = id, Errors = errors };
            }

            restore = checkpoint;
        }

        if (_record is not null)
        {
            return Rejected($"A job with id '{id}' already exists ({_record.State}); choose another id.");
        }

        _record = new JobRecord { Spec = spec, State = JobState.Deploying, Attempt = 1, SubmittedAt = time.GetUtcNow() };
        _plan = plan;
        if (!await PersistAsync())
        {
            _record = null;
            return Rejected($"The job's record could not be written to checkpoint storage {storage.Location}.");
        }

        logger.LogInformation("Job {Job} ({Type}) accepted: {Chains} chains, {Subtasks} subtasks{Restore}", id, spec.JobType, plan.Chains.Count, plan.SubtaskCount, restore is null ? string.Empty : $", restoring {restore.ManifestPath}");
        SetState(JobState.Deploying);
        _ = StartFirstAttemptAsync(restore);
        return new SubmitResult { JobId = id };

        SubmitResult Rejected(string error) => new() { JobId = id, Errors = [error] };
    }

    public async Task<JobStatus?> GetStatus(bool refreshSubtasks)
    {
        if (_record is null)
        {
            return null;
        }

        if (refreshSubtasks && !State.IsTerminal())
        {
            await RefreshSubtasksAsync(_record.Attempt);
        }

        (CheckpointStats? Latest, IReadOnlyList<CheckpointStats> Recent) checkpoints = (null, []);
        SavepointStatus? savepoint = null;
        if (_record.Spec.Checkpointing.Enabled)
        {
            try
            {
                checkpoints = await Coordinator.GetStats().WaitAsync(SubtaskCallTimeout);
                savepoint = await Coordinator.GetLatestSavepoint().WaitAsync(SubtaskCallTimeout);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogDebug(ex, "Checkpoint statistics of job {Job} unavailable", Id);
            }
        }

        return Snapshot() with { LatestCheckpoint = checkpoints.Latest, RecentCheckpoints = checkpoints.Recent, LatestSavepoint = savepoint };
    }

    public async Task<JobStatus?> WaitForChange(long knownVersion, TimeSpan maxWait)
    {
        if (_record is null)
        {
            return null;
        }

        if (_version <= knownVersion)
        {
            await Task.WhenAny(_changed.Task, Task.Delay(maxWait, time));
        }

        return Snapshot();
    }

    public Task<JobStatus?> Cancel() => CancelAsync(keepCheckpoints: false);

    private async Task<JobStatus?> CancelAsync(bool keepCheckpoints)
    {
        if (_record is null)
        {
            return null;
        }

        if (!State.IsTerminal() && State != JobState.Cancelling)
        {
            SetState(JobState.Cancelling);
            StopWatchdog();
            await StopCoordinatorAsync(_record.Attempt);
            await ReleaseSubtasksAsync(_record.Attempt, StopReason.JobEnded);
            if (!keepCheckpoints)
            {
                await DeleteCheckpointsUnlessRetainedAsync();
            }

            SetState(JobState.Canceled);
            await PersistAsync();
        }

        return Snapshot();
    }

    public async Task OnSubtaskFinished(SubtaskId subtask)
    {
        if (_record is null || subtask.Attempt != _record.Attempt || State != JobState.Running || !_finished.Add(subtask))
        {
            return;
        }

        if (_finished.Count == _plan!.SubtaskCount)
        {
            StopWatchdog();
            await StopCoordinatorAsync(subtask.Attempt);
            await ReleaseSubtasksAsync(subtask.Attempt, StopReason.JobEnded);
            if (State == JobState.Running && _record.Attempt == subtask.Attempt)
            {
                logger.LogInformation("Job {Job} finished", Id);
                await DeleteCheckpointsUnlessRetainedAsync();
                SetState(JobState.Finished);
                await PersistAsync();
            }
        }
    }

    public Task OnSubtaskFailed(SubtaskId subtask, JobFailure failure)
    {
        if (_record is null || subtask.Attempt != _record.Attempt)
        {
            return Task.CompletedTask;
        }

        return FailoverAsync(failure, subtask.Attempt);
    }

    public Task Heartbeat(SubtaskId subtask)
    {
        if (_record is null || subtask.Attempt < _record.Attempt || State.IsTerminal())
        {
            // A subtask of an older attempt (or of a job that ended) whose stop did not reach it: stop it now.
            var reason = _record is null || State.IsTerminal() ? StopReason.JobEnded : StopReason.Failover;
            _ = GrainFactory.GetGrain<ISubtaskGrain>(subtask.GrainKey).Cancel(reason);
        }

        return Task.CompletedTask;
    }

    public Task OnCheckpointFailuresExceeded(int attempt, string reason)
    {
        if (_record is null || attempt != _record.Attempt)
        {
            return Task.CompletedTask;
        }

        return FailoverAsync(JobFailure.Of(JobFailureKind.CheckpointFailures, reason), attempt);
    }

    public async Task<CheckpointStats> TriggerCheckpoint(TimeSpan maxWait)
    {
        if (_record is null || State != JobState.Running || !_record.Spec.Checkpointing.Enabled)
        {
            throw new InvalidOperationException($"Job {Id} cannot take a checkpoint: it is {(_record is null ? "unknown" : State)}{(_record?.Spec.Checkpointing.Enabled == false ? " and has checkpointing disabled" : string.Empty)}.");
        }

        return await Coordinator.TriggerNow(_record.Attempt, maxWait);
    }

    public Task<CheckpointStats> WaitForCheckpoint(long checkpointId, TimeSpan maxWait) => Coordinator.WaitFor(checkpointId, maxWait);

    public async Task<SavepointStatus> TriggerSavepoint(SavepointRequest request, TimeSpan maxWait)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_record is null || State != JobState.Running || !_record.Spec.Checkpointing.Enabled)
        {
            throw new InvalidOperationException($"Job {Id} cannot take a savepoint: it is {(_record is null ? "unknown" : State)}{(_record?.Spec.Checkpointing.Enabled == false ? " and has checkpointing disabled (savepoints need checkpoint storage and the coordinator)" : string.Empty)}.");
        }

        return await Coordinator.TriggerSavepoint(_record.Attempt, request, maxWait);
    }

    public Task<SavepointStatus> WaitForSavepoint(long checkpointId, TimeSpan maxWait) => Coordinator.WaitForSavepoint(checkpointId, maxWait);

    public async Task OnSavepointCompleted(int attempt, SavepointStatus savepoint)
    {
        ArgumentNullException.ThrowIfNull(savepoint);
        if (_record is not { } record || attempt != record.Attempt || State != JobState.Running)
        {
            return;
        }

        record.FinalSavepoint = savepoint.Directory;
        if (savepoint.Then == SavepointThen.Cancel)
        {
            logger.LogInformation("Job {Job}: cancelling after savepoint {Savepoint}", Id, savepoint.Directory);
            await Cancel();
            return;
        }

        logger.LogInformation("Job {Job}: stopped with savepoint {Savepoint}", Id, savepoint.Directory);
        StopWatchdog();
        await StopCoordinatorAsync(attempt);
        await ReleaseSubtasksAsync(attempt, StopReason.JobEnded);
        if (State == JobState.Running && record.Attempt == attempt)
        {
            await DeleteCheckpointsUnlessRetainedAsync();
            SetState(JobState.Finished);
            await PersistAsync();
        }
    }

    public Task<JobStatus?> CancelKeepingCheckpoints() => CancelAsync(keepCheckpoints: true);

    private static Dictionary<int, IReadOnlyList<SourceSplit>[]> AssignSplits(JobPlan plan, JobSpec spec, CheckpointManifest? restore)
    {
        var result = new Dictionary<int, IReadOnlyList<SourceSplit>[]>();
        foreach (var chain in plan.Chains.Where(static c => c.IsSource))
        {
            var perSubtask = new IReadOnlyList<SourceSplit>[chain.Parallelism];
            var restored = restore?.Operators.FirstOrDefault(o => o.Uid == chain.Head.Uid);
            if (restored is not null && restored.Parallelism == chain.Parallelism)
            {
                for (var i = 0; i < chain.Parallelism; i++)
                {
                    perSubtask[i] = restored.Subtasks.FirstOrDefault(s => s.SubtaskIndex == i)?.SourceSplits ?? [];
                }
            }
            else if (restored is not null)
            {
                // Another parallelism: every restored split (with its position) goes to one of the new subtasks.
                var all = restored.Subtasks.OrderBy(static s => s.SubtaskIndex).SelectMany(static s => s.SourceSplits ?? []).ToArray();
                for (var i = 0; i < chain.Parallelism; i++)
                {
                    perSubtask[i] = all.Where((_, k) => k % chain.Parallelism == i).ToArray();
                }
            }
            else
            {
                IReadOnlyList<SourceSplit> all;
                try
                {
                    all = chain.Head.Accept(new SplitEnumerator(new SplitEnumerationContext(chain.Parallelism, plan.MaxParallelism, spec.Parameters)));
                }
                catch (Exception ex)
                {
                    throw new JobValidationException($"Source '{chain.Head.EffectiveUid}' could not enumerate its splits: {ex.Message}", ex);
                }

                for (var i = 0; i < chain.Parallelism; i++)
                {
                    perSubtask[i] = all.Where((_, k) => k % chain.Parallelism == i).ToArray();
                }
            }

            result[chain.Index] = perSubtask;
        }

        return result;
    }

    /// <summary>The problems that keep <paramref name="manifest"/> from being restored into <paramref name="plan"/>.</summary>
    private static List<string> ValidateRestore(CheckpointManifest manifest, JobPlan plan, JobSpec spec)
    {
        var errors = new List<string>();
        if (manifest.MaxParallelism != plan.MaxParallelism)
        {
            errors.Add($"Checkpoint {manifest.CheckpointId} was taken with max parallelism {manifest.MaxParallelism} but the job has {plan.MaxParallelism}; the max parallelism is fixed for a job's life.");
        }

        var nodes = plan.Nodes.Where(static n => n.Uid is not null).ToDictionary(static n => n.Uid!, StringComparer.Ordinal);
        foreach (var state in manifest.Operators)
        {
            if (!nodes.TryGetValue(state.Uid, out var node))
            {
                if (!spec.AllowNonRestoredState)
                {
                    errors.Add($"Checkpoint {manifest.CheckpointId} has state of operator '{state.Uid}', which the job no longer has; set AllowNonRestoredState to drop that state.");
                }

                continue;
            }

            var keyedState = state.Subtasks.Any(static s => s.KeyGroups is not null);
            var splits = state.Subtasks.Any(static s => s.SourceSplits is not null);
            var isSource = plan.ChainOf(node).IsSource && plan.ChainOf(node).Head == node;
            if ((keyedState && !node.IsStateful) || (keyedState && isSource) || (splits && !isSource))
            {
                errors.Add($"Operator '{state.Uid}' has {(keyedState ? "keyed state" : "source positions")} in snapshot {manifest.CheckpointId}, but in the job it is a {node.Name} operator that cannot take them; give the new operator another Uid (and set AllowNonRestoredState to drop the old state).");
            }
        }

        return errors;
    }

    private async Task<(CompletedCheckpoint? Checkpoint, IReadOnlyList<string> Errors)> ReadRestorePointAsync(string restoreFrom, JobPlan plan, JobSpec spec)
    {
        var path = SnapshotLayout.ManifestPathOf(restoreFrom);
        try
        {
            var bytes = await storage.ReadAsync(path, CancellationToken.None);
            if (bytes is null)
            {
                return (null, [$"RestoreFrom: there is no checkpoint or savepoint at '{restoreFrom}' in {storage.Location} ('{path}' does not exist; a directory without a manifest is not a checkpoint)."]);
            }

            var manifest = ManifestJson.Deserialize(bytes, path).Resolve(SnapshotLayout.DirectoryOfManifest(path));
            var errors = ValidateRestore(manifest, plan, spec);
            return errors.Count > 0 ? (null, errors) : (new CompletedCheckpoint { CheckpointId = manifest.CheckpointId, ManifestPath = path, Manifest = manifest }, []);
        }
        catch (Exception ex) when (ex is CheckpointStorageException or StateFormatException)
        {
            return (null, [$"RestoreFrom: '{path}' cannot be read: {ex.Message}"]);
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
                await FailoverAsync(failure!, _record.Attempt);
                break;
        }
    }

    /// <summary>Deploys every subtask of <paramref name="attempt"/>, restoring <paramref name="restore"/>, and starts them once all are ready.</summary>
    private async Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAttemptAsync(int attempt, CompletedCheckpoint? restore, bool ownsFiles)
    {
        var record = _record!;
        var plan = _plan!;
        var spec = record.Spec;
        var ids = plan.Chains.SelectMany(c => Enumerable.Range(0, c.Parallelism).Select(i => new SubtaskId(Id, c.Index, i, attempt))).ToArray();
        try
        {
            var splits = AssignSplits(plan, spec, restore?.Manifest);
            var silos = membership.CurrentSnapshot.Members.Values.Where(static m => m.Status == SiloStatus.Active).Select(static m => m.SiloAddress).ToArray();
            var previous = ids.Select(id => record.Placement.TryGetValue(JobRecord.PlacementKey(id), out var silo) ? silos.FirstOrDefault(s => s.ToString() == silo) : null).ToArray();
            var placement = PlacementPlanner.Assign(silos, plan.Chains.Select(static c => c.Parallelism).ToArray(), previous);
            _subtasks.Clear();
            _finished.Clear();
            var deploys = new Task<DeployResult>[ids.Length];
            try
            {
                for (var i = 0; i < ids.Length; i++)
                {
                    var id = ids[i];
                    var chain = plan.Chains[id.Chain];
                    _subtasks[id] = new SubtaskStatus { Chain = chain.Name, Index = id.Index, Attempt = attempt, Parallelism = chain.Parallelism, IsSource = chain.IsSource, Silo = placement[i].ToString() };
                    RequestContext.Set(IPlacementDirector.PlacementHintKey, placement[i]);
                    deploys[i] = GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).Deploy(new SubtaskDeployment
                    {
                        Spec = spec,
                        Subtask = id,
                        Splits = splits.TryGetValue(id.Chain, out var chainSplits) ? chainSplits[id.Index] : [],
                        Restore = RestoreOf(restore, chain, id.Index, ownsFiles),
                    });
                }
            }
            finally
            {
                RequestContext.Remove(IPlacementDirector.PlacementHintKey);
            }

            var results = await Task.WhenAll(deploys);
            if (attempt != record.Attempt || State is not (JobState.Deploying or JobState.Restarting))
            {
                return (DeployOutcome.Superseded, null);
            }

            for (var i = 0; i < ids.Length; i++)
            {
                _subtasks[ids[i]] = _subtasks[ids[i]] with { Silo = results[i].Silo, KeyGroups = results[i].KeyGroups, State = SubtaskState.Ready, Restore = results[i].Restore };
                record.Placement[JobRecord.PlacementKey(ids[i])] = results[i].Silo;
            }

            if (results.FirstOrDefault(static r => r.Failure is not null) is { } failed)
            {
                await ReleaseSubtasksAsync(attempt, StopReason.Failover);
                return (failed.RestoreFailed ? DeployOutcome.RestoreFailed : DeployOutcome.Failed, failed.Failure);
            }

            // Restore gate: nothing starts before every subtask reported its state ready.
            await Task.WhenAll(ids.Select(id => GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).Start()));
            if (attempt != record.Attempt || State is not (JobState.Deploying or JobState.Restarting))
            {
                return (DeployOutcome.Superseded, null);
            }

            // The coordinator runs before the job reports Running, so a client that saw Running can trigger a checkpoint.
            if (spec.Checkpointing.Enabled)
            {
                await Coordinator.Start(new CoordinatorStart
                {
                    Spec = spec,
                    Attempt = attempt,
                    Subtasks = ids,
                    Sources = ids.Where(id => plan.Chains[id.Chain].IsSource).ToArray(),
                    RestoredCheckpointId = restore is not null && ownsFiles ? restore.CheckpointId : null,
                });
                if (attempt != record.Attempt || State is not (JobState.Deploying or JobState.Restarting))
                {
                    await StopCoordinatorAsync(attempt);
                    return (DeployOutcome.Superseded, null);
                }
            }

            record.RestoredFrom = restore?.ManifestPath;
            SetState(JobState.Running);
            await PersistAsync();
            StartWatchdog();
            return (DeployOutcome.Started, null);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Deploying attempt {Attempt} of job {Job} failed", attempt, Id);
            return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.Runtime, operatorUid: null, subtaskIndex: -1));
        }
    }

    private static SubtaskRestore? RestoreOf(CompletedCheckpoint? restore, ChainPlan chain, int index, bool ownsFiles)
    {
        if (restore is null)
        {
            return null;
        }

        var operators = new Dictionary<string, IReadOnlyList<OperatorSubtaskState>>(StringComparer.Ordinal);
        var keyGroups = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(restore.Manifest.MaxParallelism, chain.Parallelism, index);
        foreach (var node in chain.Nodes.Where(static n => n.Uid is not null))
        {
            if (restore.Manifest.Operators.FirstOrDefault(o => o.Uid == node.Uid) is not { } state)
            {
                continue;
            }

            // State follows the Uid and the key groups, not the position: with the same parallelism the subtask of the
            // same index, otherwise every old subtask whose key groups overlap this subtask's.
            var parts = state.Parallelism == chain.Parallelism
                ? state.Subtasks.Where(s => s.SubtaskIndex == index && s.KeyGroups is not null).ToArray()
                : state.Subtasks.Where(s => s.KeyGroups is { } range && !range.Intersect(keyGroups).IsEmpty).ToArray();
            if (parts.Length > 0)
            {
                operators[node.Uid!] = parts;
            }
        }

        return operators.Count == 0 ? null : new SubtaskRestore { CheckpointId = restore.CheckpointId, ManifestPath = restore.ManifestPath, Operators = operators, OwnsFiles = ownsFiles };
    }

    /// <summary>
    /// Stops the failed attempt and restarts the job under its restart strategy, from the newest checkpoint that can be
    /// restored (a checkpoint with a missing or corrupt file is discarded with a warning and the previous one is tried),
    /// or from the beginning when there is none.
    /// </summary>
    private async Task FailoverAsync(JobFailure failure, int failedAttempt)
    {
        if (_record is not { } record || record.State.IsTerminal() || record.State == JobState.Cancelling || failedAttempt != record.Attempt)
        {
            return;
        }

        if (_restarting)
        {
            // Reported while a restart is under way; replayed afterwards only if it concerns the attempt then running.
            _failureWhileRestarting = (failure, failedAttempt);
            return;
        }

        _restarting = true;
        try
        {
            while (true)
            {
                logger.LogWarning("Job {Job} attempt {Attempt} failed: {Failure}", Id, record.Attempt, failure);
                StopWatchdog();
                var old = record.Attempt;
                await StopCoordinatorAsync(old);
                var restarts = record.Restarts + 1;
                if (record.Spec.EffectiveRestart.DelayBefore(restarts) is not { } delay)
                {
                    await FailForGoodAsync(failure);
                    return;
                }

                record.Restarts = restarts;
                record.Warnings.Add($"Attempt {old} failed and the job restarts ({restarts} of {record.Spec.EffectiveRestart.MaxAttempts} restarts): {failure}");
                SetState(JobState.Restarting);
                await PersistAsync();
                await ReleaseSubtasksAsync(old, StopReason.Failover);
                await Task.Delay(delay, time);
                if (record.State != JobState.Restarting)
                {
                    return;
                }

                var (outcome, next) = await RestartFromLatestAsync();
                if (outcome != DeployOutcome.Failed)
                {
                    return;
                }

                failure = next!;
            }
        }
        finally
        {
            _restarting = false;
            if (_failureWhileRestarting is { } pending)
            {
                _failureWhileRestarting = null;
                _ = FailoverAsync(pending.Failure, pending.Attempt);
            }
        }
    }

    private async Task<(DeployOutcome Outcome, JobFailure? Failure)> RestartFromLatestAsync()
    {
        var record = _record!;
        var candidates = new List<(CompletedCheckpoint Checkpoint, bool Owned)>();
        IReadOnlySet<string>? stored = null;
        if (record.Spec.Checkpointing.Enabled)
        {
            candidates.AddRange((await Coordinator.GetCompletedCheckpoints()).Select(static c => (c, true)));
            if (candidates.Count > 0)
            {
                stored = await CollectOrphansAsync(candidates.Select(static c => c.Checkpoint));
            }
        }

        if (candidates.Count == 0 && record.Spec.RestoreFrom is { } restoreFrom)
        {
            var (original, errors) = await ReadRestorePointAsync(restoreFrom, _plan!, record.Spec);
            if (original is null)
            {
                var failure = JobFailure.Of(JobFailureKind.RestoreFailed, string.Join(" ", errors));
                await FailForGoodAsync(failure);
                return (DeployOutcome.RestoreFailed, failure);
            }

            candidates.Add((original, record.Spec.RestoreMode == RestoreMode.Claim));
        }

        foreach (var (checkpoint, owned) in candidates)
        {
            string? missing;
            try
            {
                missing = await FindMissingFileAsync(checkpoint.Manifest, stored);
            }
            catch (CheckpointStorageException ex)
            {
                // Storage cannot tell now whether the files are there (unreachable, throttled): that says nothing about
                // the checkpoint, which stays; this restart fails and the restart strategy decides about the next one.
                logger.LogWarning(ex, "Job {Job}: checking the files of checkpoint {Checkpoint} failed", Id, checkpoint.CheckpointId);
                return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.Storage, operatorUid: null, subtaskIndex: -1) with { Message = $"Checking the files of checkpoint {checkpoint.CheckpointId} failed: {ex.Message}" });
            }

            if (missing is not null)
            {
                await DiscardAsync(checkpoint, owned, $"its file '{missing}' is missing from checkpoint storage");
                continue;
            }

            record.Attempt++;
            await PersistAsync();
            var (outcome, failure) = await DeployAttemptAsync(record.Attempt, checkpoint, owned);
            if (outcome != DeployOutcome.RestoreFailed)
            {
                return (outcome, failure);
            }

            await DiscardAsync(checkpoint, owned, failure?.Message ?? "its state could not be read");
        }

        if (candidates.Count > 0)
        {
            var failure = JobFailure.Of(JobFailureKind.RestoreFailed, "No retained checkpoint of the job could be restored; see the warnings.");
            await FailForGoodAsync(failure);
            return (DeployOutcome.RestoreFailed, failure);
        }

        record.Attempt++;
        await PersistAsync();
        return await DeployAttemptAsync(record.Attempt, restore: null, ownsFiles: false);
    }

    /// <summary>
    /// Before a restart deploys its attempt: lists the job's shared files and changelog objects that no retained
    /// checkpoint refers to (what failed attempts uploaded for checkpoints and materializations that never completed)
    /// and deletes them in the background. The listing ends before the new attempt is deployed, so nothing it writes is
    /// listed; an upload of a failed attempt that lands after the listing stays (it is stopped with its subtask). When
    /// storage holds a manifest that is not among the retained checkpoints (one the coordinator could not read, or of a
    /// newer format), nothing is deleted.
    /// </summary>
    /// <returns>Every path the listing showed, or null when it did not complete.</returns>
    private async Task<IReadOnlySet<string>?> CollectOrphansAsync(IEnumerable<CompletedCheckpoint> retained)
    {
        var checkpoints = retained.ToList();
        var referenced = checkpoints.SelectMany(static c => c.Manifest.Files()).Select(static f => f.Path).ToHashSet(StringComparer.Ordinal);
        var manifests = checkpoints.Select(static c => c.ManifestPath).ToHashSet(StringComparer.Ordinal);
        var shared = SnapshotLayout.SharedDirectory(Id.Value) + "/";
        var changelog = SnapshotLayout.ChangelogDirectory(Id.Value) + "/";
        var orphans = new List<string>();
        var listed = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            await foreach (var stored in storage.ListAsync(Id.Value, CancellationToken.None))
            {
                listed.Add(stored.Path);

                if (SnapshotLayout.CheckpointIdOfManifest(Id.Value, stored.Path) is not null && !manifests.Contains(stored.Path))
                {
                    // A manifest the coordinator did not load (unreadable, or of a newer format): its files must stay.
                    logger.LogWarning("Job {Job}: {Manifest} is not among the retained checkpoints; files of failed attempts are left in storage", Id, stored.Path);
                    return null;
                }

                if ((stored.Path.StartsWith(shared, StringComparison.Ordinal) || stored.Path.StartsWith(changelog, StringComparison.Ordinal)) && !referenced.Contains(stored.Path))
                {
                    orphans.Add(stored.Path);
                }
            }
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Job {Job}: could not list the files of failed attempts; they stay in checkpoint storage", Id);
            return null;
        }

        if (orphans.Count == 0)
        {
            return listed;
        }

        var job = Id;
        logger.LogInformation("Job {Job}: deleting {Count} files of failed attempts that no retained checkpoint refers to", job, orphans.Count);
        _ = Task.Run(async () =>
        {
            foreach (var path in orphans)
            {
                try
                {
                    await storage.DeleteAsync(path, CancellationToken.None);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogWarning(ex, "Job {Job}: could not delete {Path}", job, path);
                }
            }
        });
        return listed;
    }

    private async Task DiscardAsync(CompletedCheckpoint checkpoint, bool owned, string reason)
    {
        var warning = $"Checkpoint {checkpoint.CheckpointId} ({checkpoint.ManifestPath}) cannot be restored: {reason}; falling back to an older checkpoint.";
        logger.LogWarning("Job {Job}: {Warning}", Id, warning);
        _record!.Warnings.Add(warning);
        SetState(_record.State);
        if (owned)
        {
            await Coordinator.Discard(checkpoint.CheckpointId, reason);
        }
    }

    /// <summary>
    /// A file of <paramref name="manifest"/> that storage does not have, or null. Files in <paramref name="stored"/> (the
    /// listing made just before, when it completed) are there; the others are asked for one by one, 16 at a time: those
    /// elsewhere (a restored savepoint's), and those the listing did not show, because an empty listing may also mean a
    /// storage that cannot be reached or a container that is gone, which a question tells apart (it throws) and a
    /// checkpoint must not be given up for. A changelog checkpoint refers to a hundred files or more, and on Blob
    /// storage each question is a request the restart waits for.
    /// </summary>
    private async Task<string?> FindMissingFileAsync(CheckpointManifest manifest, IReadOnlySet<string>? stored)
    {
        var paths = manifest.Files().Select(static f => f.Path).Distinct(StringComparer.Ordinal).ToList();
        if (stored is not null)
        {
            paths.RemoveAll(stored.Contains);
        }

        foreach (var chunk in paths.Chunk(16))
        {
            var exists = await Task.WhenAll(chunk.Select(path => storage.ExistsAsync(path, CancellationToken.None)));
            var index = Array.IndexOf(exists, false);
            if (index >= 0)
            {
                return chunk[index];
            }
        }

        return null;
    }

    private async Task FailForGoodAsync(JobFailure failure)
    {
        StopWatchdog();
        await StopCoordinatorAsync(_record!.Attempt);
        _record.Failure = failure;
        SetState(JobState.Failed);
        await PersistAsync();
        await ReleaseSubtasksAsync(_record.Attempt, StopReason.JobEnded);
    }

    private async Task DeleteCheckpointsUnlessRetainedAsync()
    {
        if (_record!.Spec.Checkpointing.Enabled && !_record.Spec.Checkpointing.RetainOnCancel)
        {
            try
            {
                await Coordinator.DeleteAll();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Job {Job}: deleting its checkpoints failed", Id);
            }
        }
    }

    private async Task StopCoordinatorAsync(int attempt)
    {
        if (!_record!.Spec.Checkpointing.Enabled)
        {
            return;
        }

        try
        {
            await Coordinator.Stop(attempt).WaitAsync(SubtaskCallTimeout);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Job {Job}: stopping the checkpoint coordinator failed", Id);
        }
    }

    /// <summary>Collects the subtasks' final counters, then stops them.</summary>
    private async Task ReleaseSubtasksAsync(int attempt, StopReason reason)
    {
        await RefreshSubtasksAsync(attempt);
        var ids = _subtasks.Keys.Where(id => id.Attempt == attempt).ToArray();
        await Task.WhenAll(ids.Select(async id =>
        {
            try
            {
                await GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).Cancel(reason).WaitAsync(SubtaskCallTimeout);
            }
            catch (Exception ex)
            {
                logger.LogDebug(ex, "Stopping subtask {Subtask} failed (its silo may be gone)", id);
            }
        }));
    }

    private async Task RefreshSubtasksAsync(int attempt)
    {
        var ids = _subtasks.Keys.Where(id => id.Attempt == attempt).ToArray();
        var statuses = await Task.WhenAll(ids.Select(async id =>
        {
            try
            {
                return await GrainFactory.GetGrain<ISubtaskGrain>(id.GrainKey).GetStatus().WaitAsync(SubtaskCallTimeout);
            }
            catch (Exception ex)
            {
                logger.LogDebug(ex, "Status of subtask {Subtask} unavailable", id);
                return null;
            }
        }));
        for (var i = 0; i < ids.Length; i++)
        {
            if (statuses[i] is { State: not SubtaskState.Created } status && _subtasks.ContainsKey(ids[i]))
            {
                _subtasks[ids[i]] = status;
            }
        }
    }

    /// <summary>Fails over when a silo that hosts a subtask of the running attempt is no longer active.</summary>
    private Task CheckSilosAsync()
    {
        if (_record is not { State: JobState.Running } record)
        {
            return Task.CompletedTask;
        }

        var active = membership.CurrentSnapshot.Members.Values.Where(static m => m.Status == SiloStatus.Active).Select(static m => m.SiloAddress.ToString()).ToHashSet(StringComparer.Ordinal);
        foreach (var (id, status) in _subtasks)
        {
            if (id.Attempt == record.Attempt && status.Silo is { } silo && !active.Contains(silo))
            {
                var failure = JobFailure.Of(JobFailureKind.SiloLost, $"silo {silo}, which ran subtask {id}, left the cluster", id.Index);
                return FailoverAsync(failure, record.Attempt);
            }
        }

        return Task.CompletedTask;
    }

    private void StartWatchdog()
    {
        StopWatchdog();
        _watchdog = this.RegisterGrainTimer(CheckSilosAsync, new GrainTimerCreationOptions { DueTime = WatchdogInterval, Period = WatchdogInterval, Interleave = true });
    }

    private void StopWatchdog()
    {
        _watchdog?.Dispose();
        _watchdog = null;
    }

    private async Task<bool> PersistAsync()
    {
        try
        {
            await storage.WriteAsync(JobRecord.PathOf(Id.Value), serializer.SerializeToArray(_record!), overwrite: true, CancellationToken.None);
            return true;
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Job {Job}: its record could not be written to checkpoint storage", Id);
            return false;
        }
    }

    private void SetState(JobState state)
    {
        _record!.State = state;
        _version++;
        if (state.IsTerminal())
        {
            _record.EndedAt = time.GetUtcNow();
        }

        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private JobStatus Snapshot()
    {
        var record = _record!;
        var current = _subtasks.Where(p => p.Key.Attempt == record.Attempt).OrderBy(static p => p.Key.Chain).ThenBy(static p => p.Key.Index);
        return new()
        {
            JobId = Id,
            JobType = record.Spec.JobType,
            State = record.State,
            Version = _version,
            Attempt = record.Attempt,
            Restarts = record.Restarts,
            SubmittedAt = record.SubmittedAt,
            EndedAt = record.EndedAt,
            Failure = record.Failure,
            Warnings = [.. record.Warnings, .. current.Where(static p => p.Value.Warning is not null).Select(static p => $"{p.Value.Chain} #{p.Key.Index}: {p.Value.Warning}")],
            RestoredFrom = record.RestoredFrom,
            FinalSavepoint = record.FinalSavepoint,
            Subtasks = _subtasks.OrderBy(static p => p.Key.Chain).ThenBy(static p => p.Key.Index).Select(static p => p.Value).ToArray(),
        };
    }

    private sealed class SplitEnumerator(SplitEnumerationContext context) : IStreamNodeVisitor<IReadOnlyList<SourceSplit>>
    {
        public IReadOnlyList<SourceSplit> VisitSource<T>(SourceNode<T> node) => node.Source.EnumerateSplits(context);

        public IReadOnlyList<SourceSplit> VisitMap<TIn, TOut>(MapNode<TIn, TOut> node) => [];

        public IReadOnlyList<SourceSplit> VisitFilter<T>(FilterNode<T> node) => [];

        public IReadOnlyList<SourceSplit> VisitFlatMap<TIn, TOut>(FlatMapNode<TIn, TOut> node) => [];

        public IReadOnlyList<SourceSplit> VisitKeyedProcess<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node)
            where TKey : notnull => [];

        public IReadOnlyList<SourceSplit> VisitSink<T>(SinkNode<T> node) => [];
    }
}
