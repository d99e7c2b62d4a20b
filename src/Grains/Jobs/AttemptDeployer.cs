using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Placement;
using StreamGrains.Graph;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>How the deployment of an attempt ended.</summary>
internal enum DeployOutcome
{
    /// <summary>Every subtask runs and the checkpoint coordinator (if any) has started.</summary>
    Started,

    /// <summary>The job moved on while the attempt deployed (another attempt, a cancel): the caller does nothing more.</summary>
    Superseded,

    /// <summary>A subtask could not read the state to restore (missing or corrupt files): another checkpoint may work.</summary>
    RestoreFailed,

    /// <summary>A subtask could not be deployed, or the deployment itself failed.</summary>
    Failed,
}

/// <summary>One attempt to deploy: which attempt of which job, from what, and where its subtasks ran before.</summary>
internal sealed record AttemptRequest
{
    public required JobId JobId { get; init; }

    public required int Attempt { get; init; }

    public required JobPlan Plan { get; init; }

    public required JobSpec Spec { get; init; }

    /// <summary>The checkpoint or savepoint to restore, or null to start empty.</summary>
    public CompletedCheckpoint? Restore { get; init; }

    /// <summary>Whether the job owns the restored files (its own checkpoint, or a savepoint restored in claim mode).</summary>
    public bool OwnsFiles { get; init; }

    /// <summary>The silos to place subtasks on.</summary>
    public required IReadOnlyList<SiloAddress> ActiveSilos { get; init; }

    /// <summary>The silo of each subtask of the last deployment, by <see cref="JobRecord.PlacementKey"/>; updated with where the subtasks now run.</summary>
    public required Dictionary<string, string> Placement { get; init; }

    /// <summary>The job record's epoch the coordinator is started with (<see cref="CoordinatorStart.Epoch"/>).</summary>
    public long Epoch { get; init; }
}

/// <summary>
/// Deploys the subtasks of one attempt and starts them: places them (evenly, sticky to the silos they ran on), deploys
/// all of them (each restores its state), and only when every one reported ready starts them (the restore gate), then
/// starts the checkpoint coordinator. The job may move on while this runs (a cancel, a failover to another attempt):
/// after every wait it asks <c>isCurrent</c> and gives up with <see cref="DeployOutcome.Superseded"/>.
/// </summary>
/// <remarks>
/// No grain call spans a restore: a deploy call returns once the subtask started opening, and the outcome of each
/// subtask comes back by its one-way report (<see cref="OnSubtaskReady"/>) or, should that be lost or its silo be gone,
/// by a poll of its deploy state every <c>pollInterval</c> (each poll bounded by
/// <see cref="GrainSubtaskGateway.CallTimeout"/>). The polls also bring the restore's progress into the roster. A subtask
/// whose grain holds no deployment any more (re-created after its silo or directory entry was lost), or that answers no
/// poll for <c>unansweredLimit</c> (<see cref="DefaultUnansweredLimit"/>), fails the attempt; so does the first failed subtask, without waiting for the
/// others.
/// </remarks>
internal sealed class AttemptDeployer(ISubtaskGateway subtasks, SubtaskRoster roster, ICheckpointCoordinatorGrain coordinator, ILogger logger, TimeProvider time, TimeSpan? pollInterval = null, TimeSpan? unansweredLimit = null)
{
    /// <summary>How long a silo that a deploy call could not reach is left out of placements (unless no other silo is active).</summary>
    public static readonly TimeSpan UnreachableFor = TimeSpan.FromSeconds(60);

    // Silos a deploy call could not reach, and when. A killed silo stays Active in the membership until the cluster
    // declares it dead (about 15 s with Orleans' defaults); without this, every restart in that time would place
    // subtasks on it again, fail at once and use up the restart strategy.
    private readonly Dictionary<SiloAddress, DateTimeOffset> _unreachable = [];

    /// <summary>What the coordinator was last started with (the job grain starts it again from this if it is lost).</summary>
    public CoordinatorStart? LastCoordinatorStart { get; private set; }

    /// <summary>
    /// The silos of <paramref name="active"/> that no deploy call failed to reach in the last <see cref="UnreachableFor"/>;
    /// all of <paramref name="active"/> when that would leave none.
    /// </summary>
    public IReadOnlyList<SiloAddress> Reachable(IReadOnlyList<SiloAddress> active)
    {
        ArgumentNullException.ThrowIfNull(active);
        var now = time.GetUtcNow();
        var reachable = active.Where(s => !_unreachable.TryGetValue(s, out var at) || now - at >= UnreachableFor).ToArray();
        return reachable.Length > 0 ? reachable : active;
    }

    /// <summary>How often the deploy state of each subtask not yet ready is polled, by default.</summary>
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromSeconds(2);

    /// <summary>How long a deploying subtask may leave every poll unanswered before it counts as failed, by default.</summary>
    public static readonly TimeSpan DefaultUnansweredLimit = TimeSpan.FromMinutes(2);

    private readonly TimeSpan _pollInterval = pollInterval ?? DefaultPollInterval;
    private readonly TimeSpan _unansweredLimit = unansweredLimit ?? DefaultUnansweredLimit;
    private (int Attempt, DeployReadiness Readiness)? _current;

    /// <summary>A subtask reported the outcome of its deployment; ignored unless it belongs to the attempt being deployed. Completes at once.</summary>
    public Task OnSubtaskReady(SubtaskId subtask, DeployResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (_current is { } current && current.Attempt == subtask.Attempt)
        {
            current.Readiness.Report(subtask, result);
        }

        return Task.CompletedTask;
    }

    /// <summary>Deploys and starts the attempt of <paramref name="request"/>; the roster then holds its subtasks.</summary>
    public async Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAsync(AttemptRequest request, Func<bool> isCurrent)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(isCurrent);
        var (plan, spec, attempt) = (request.Plan, request.Spec, request.Attempt);
        var ids = plan.Chains.SelectMany(c => Enumerable.Range(0, c.Parallelism).Select(i => new SubtaskId(request.JobId, c.Index, i, attempt))).ToArray();
        var readiness = new DeployReadiness(ids);
        try
        {
            var splits = RestorePlanner.AssignSplits(plan, spec, request.Restore?.Manifest);
            var silos = Reachable(request.ActiveSilos);
            var previous = ids.Select(id => request.Placement.TryGetValue(JobRecord.PlacementKey(id), out var silo) ? silos.FirstOrDefault(s => s.ToString() == silo) : null).ToArray();
            var placement = PlacementPlanner.Assign(silos, plan.Chains.Select(static c => c.Parallelism).ToArray(), previous);
            roster.Clear();
            _current = (attempt, readiness);
            var deploys = new Task[ids.Length];
            for (var i = 0; i < ids.Length; i++)
            {
                var id = ids[i];
                var chain = plan.Chains[id.Chain];
                roster.Set(id, new SubtaskStatus { Chain = chain.Name, Index = id.Index, Attempt = attempt, Parallelism = chain.Parallelism, IsSource = chain.IsSource, Silo = placement[i].ToString() });
                deploys[i] = StartDeployAsync(readiness, placement[i], new SubtaskDeployment
                {
                    Spec = spec,
                    Subtask = id,
                    Splits = splits.TryGetValue(id.Chain, out var chainSplits) ? chainSplits[id.Index] : [],
                    Restore = RestorePlanner.SubtaskRestoreOf(request.Restore, chain, id.Index, request.OwnsFiles),
                    RestoredFrom = request.Restore is { } restored && request.OwnsFiles ? new RestoredCheckpoint { CheckpointId = restored.CheckpointId, Attempt = restored.Manifest.Attempt } : null,
                });
            }

            await Task.WhenAll(deploys);
            if (!await AwaitOutcomesAsync(readiness, isCurrent))
            {
                return (DeployOutcome.Superseded, null);
            }

            foreach (var id in ids)
            {
                if (readiness.ResultOf(id) is { } result)
                {
                    roster.Set(id, roster[id] with { Silo = result.Silo, KeyGroups = result.KeyGroups, State = result.Failure is null ? SubtaskState.Ready : SubtaskState.Failed, Restore = result.Restore ?? roster[id].Restore });
                    request.Placement[JobRecord.PlacementKey(id)] = result.Silo;
                }
            }

            if (readiness.FirstFailure is { } failed)
            {
                logger.LogWarning("Attempt {Attempt} of job {Job}: subtask {Subtask} could not be deployed: {Failure}", attempt, request.JobId, failed.Subtask, failed.Result.Failure);
                await roster.ReleaseAsync(attempt, StopReason.Failover);
                return (failed.Result.RestoreFailed ? DeployOutcome.RestoreFailed : DeployOutcome.Failed, failed.Result.Failure);
            }

            // Restore gate: nothing starts before every subtask reported its state ready.
            await Task.WhenAll(ids.Select(subtasks.StartAsync));
            if (!isCurrent())
            {
                return (DeployOutcome.Superseded, null);
            }

            roster.Heard(ids, time.GetUtcNow());

            // The coordinator runs before the job reports Running, so a client that saw Running can trigger a checkpoint.
            if (spec.Checkpointing.Enabled)
            {
                LastCoordinatorStart = new CoordinatorStart
                {
                    Spec = spec,
                    Attempt = attempt,
                    Subtasks = ids,
                    Sources = ids.Where(id => plan.Chains[id.Chain].IsSource).ToArray(),
                    RestoredCheckpointId = request.Restore is not null && request.OwnsFiles ? request.Restore.CheckpointId : null,
                    Epoch = request.Epoch,
                };
                await coordinator.Start(LastCoordinatorStart);
                if (!isCurrent())
                {
                    await coordinator.StopQuietlyAsync(attempt, logger, request.JobId);
                    return (DeployOutcome.Superseded, null);
                }
            }

            return (DeployOutcome.Started, null);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Deploying attempt {Attempt} of job {Job} failed", attempt, request.JobId);
            return (DeployOutcome.Failed, JobFailure.FromException(ex, JobFailureKind.Runtime, operatorUid: null, subtaskIndex: -1));
        }
        finally
        {
            if (_current?.Readiness == readiness)
            {
                _current = null;
            }
        }
    }

    /// <summary>Sends one deploy call; a call that fails (the silo refused or is gone) is that subtask's failed outcome.</summary>
    private async Task StartDeployAsync(DeployReadiness readiness, SiloAddress silo, SubtaskDeployment deployment)
    {
        try
        {
            await subtasks.DeployAsync(silo, deployment);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Subtask {Subtask} did not accept its deployment", deployment.Subtask);
            if (ex is OrleansMessageRejectionException or SiloUnavailableException or TimeoutException)
            {
                _unreachable[silo] = time.GetUtcNow();
            }

            readiness.Report(deployment.Subtask, new DeployResult { Silo = silo.ToString(), Failure = JobFailure.FromException(ex, JobFailureKind.Runtime, operatorUid: null, deployment.Subtask.Index) });
        }
    }

    /// <summary>
    /// Waits until every subtask has an outcome or one failed, polling those without one every poll interval; false when
    /// the job moved on meanwhile (checked at least once per poll interval).
    /// </summary>
    private async Task<bool> AwaitOutcomesAsync(DeployReadiness readiness, Func<bool> isCurrent)
    {
        var lastAnswer = readiness.Pending.ToDictionary(static id => id, _ => time.GetUtcNow());
        var nextPoll = time.GetUtcNow() + _pollInterval;
        while (!readiness.IsDecided)
        {
            if (!isCurrent())
            {
                return false;
            }

            var wait = nextPoll - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.WhenAny(readiness.Changed, Task.Delay(wait, time));
                continue;
            }

            await PollAsync(readiness, lastAnswer, isCurrent);
            nextPoll = time.GetUtcNow() + _pollInterval;
        }

        return isCurrent();
    }

    /// <summary>Asks every subtask without an outcome for its deploy state, takes the outcomes found and the restores' progress.</summary>
    private async Task PollAsync(DeployReadiness readiness, Dictionary<SubtaskId, DateTimeOffset> lastAnswer, Func<bool> isCurrent)
    {
        var pending = readiness.Pending;
        var states = await Task.WhenAll(pending.Select(subtasks.GetDeployStateAsync));
        if (!isCurrent())
        {
            return;
        }

        var now = time.GetUtcNow();
        for (var i = 0; i < pending.Length; i++)
        {
            var id = pending[i];
            var silo = roster.TryGet(id)?.Silo ?? string.Empty;
            switch (states[i])
            {
                case { Phase: SubtaskDeployPhase.Done, Result: { } result }:
                    readiness.Report(id, result);
                    break;
                case { Phase: SubtaskDeployPhase.Opening } opening:
                    lastAnswer[id] = now;
                    roster.Update(id, s => s with { Silo = opening.Silo ?? s.Silo, Restore = opening.Restore ?? s.Restore });
                    break;
                case { } lost:
                    readiness.Report(id, new DeployResult { Silo = lost.Silo ?? silo, Failure = JobFailure.Of(JobFailureKind.Runtime, $"subtask {id} lost its deployment: its grain on silo {lost.Silo} holds none (its silo, or the silo that held its directory entry, was lost)", id.Index) });
                    break;
                case null when now - lastAnswer[id] >= _unansweredLimit:
                    readiness.Report(id, new DeployResult { Silo = silo, Failure = JobFailure.Of(JobFailureKind.Runtime, $"subtask {id} on silo {silo} answered no poll of its deployment for {now - lastAnswer[id]}", id.Index) });
                    break;
            }
        }
    }
}

/// <summary>Calls to the checkpoint coordinator that must not hold the job up.</summary>
internal static class CoordinatorCalls
{
    /// <summary>Stops checkpointing for <paramref name="attempt"/>; a coordinator that does not answer in time is logged and left.</summary>
    public static async Task StopQuietlyAsync(this ICheckpointCoordinatorGrain coordinator, int attempt, ILogger logger, JobId job)
    {
        try
        {
            await coordinator.Stop(attempt).WaitAsync(GrainSubtaskGateway.CallTimeout);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Job {Job}: stopping the checkpoint coordinator failed", job);
        }
    }
}
