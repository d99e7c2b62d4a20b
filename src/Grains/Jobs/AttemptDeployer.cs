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
internal sealed class AttemptDeployer(ISubtaskGateway subtasks, SubtaskRoster roster, ICheckpointCoordinatorGrain coordinator, ILogger logger)
{
    /// <summary>What the coordinator was last started with (the job grain starts it again from this if it is lost).</summary>
    public CoordinatorStart? LastCoordinatorStart { get; private set; }

    /// <summary>Deploys and starts the attempt of <paramref name="request"/>; the roster then holds its subtasks.</summary>
    public async Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAsync(AttemptRequest request, Func<bool> isCurrent)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(isCurrent);
        var (plan, spec, attempt) = (request.Plan, request.Spec, request.Attempt);
        var ids = plan.Chains.SelectMany(c => Enumerable.Range(0, c.Parallelism).Select(i => new SubtaskId(request.JobId, c.Index, i, attempt))).ToArray();
        try
        {
            var splits = RestorePlanner.AssignSplits(plan, spec, request.Restore?.Manifest);
            var previous = ids.Select(id => request.Placement.TryGetValue(JobRecord.PlacementKey(id), out var silo) ? request.ActiveSilos.FirstOrDefault(s => s.ToString() == silo) : null).ToArray();
            var placement = PlacementPlanner.Assign(request.ActiveSilos, plan.Chains.Select(static c => c.Parallelism).ToArray(), previous);
            roster.Clear();
            var deploys = new Task<DeployResult>[ids.Length];
            for (var i = 0; i < ids.Length; i++)
            {
                var id = ids[i];
                var chain = plan.Chains[id.Chain];
                roster.Set(id, new SubtaskStatus { Chain = chain.Name, Index = id.Index, Attempt = attempt, Parallelism = chain.Parallelism, IsSource = chain.IsSource, Silo = placement[i].ToString() });
                deploys[i] = subtasks.DeployAsync(placement[i], new SubtaskDeployment
                {
                    Spec = spec,
                    Subtask = id,
                    Splits = splits.TryGetValue(id.Chain, out var chainSplits) ? chainSplits[id.Index] : [],
                    Restore = RestorePlanner.SubtaskRestoreOf(request.Restore, chain, id.Index, request.OwnsFiles),
                    RestoredFrom = request.Restore is { } restored && request.OwnsFiles ? new RestoredCheckpoint { CheckpointId = restored.CheckpointId, Attempt = restored.Manifest.Attempt } : null,
                });
            }

            var results = await Task.WhenAll(deploys);
            if (!isCurrent())
            {
                return (DeployOutcome.Superseded, null);
            }

            for (var i = 0; i < ids.Length; i++)
            {
                roster.Set(ids[i], roster[ids[i]] with { Silo = results[i].Silo, KeyGroups = results[i].KeyGroups, State = SubtaskState.Ready, Restore = results[i].Restore });
                request.Placement[JobRecord.PlacementKey(ids[i])] = results[i].Silo;
            }

            if (results.FirstOrDefault(static r => r.Failure is not null) is { } failed)
            {
                await roster.ReleaseAsync(attempt, StopReason.Failover);
                return (failed.RestoreFailed ? DeployOutcome.RestoreFailed : DeployOutcome.Failed, failed.Failure);
            }

            // Restore gate: nothing starts before every subtask reported its state ready.
            await Task.WhenAll(ids.Select(subtasks.StartAsync));
            if (!isCurrent())
            {
                return (DeployOutcome.Superseded, null);
            }

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
