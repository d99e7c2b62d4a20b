using Microsoft.Extensions.Logging;
using Orleans.Runtime.Placement;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// The job grain's calls to the subtask grains of its attempts. An interface so that the parts that deploy, start, poll
/// and stop subtasks (<see cref="AttemptDeployer"/>, <see cref="SubtaskRoster"/>) can be tested without a cluster.
/// </summary>
internal interface ISubtaskGateway
{
    /// <summary>
    /// Starts deploying a subtask on <paramref name="silo"/> (a placement hint: a silo that left is replaced by the placement
    /// director); returns once the subtask accepted, before it restores anything. The outcome comes back by
    /// <see cref="IJobGrain.OnSubtaskReady"/> or <see cref="GetDeployStateAsync"/>.
    /// </summary>
    Task DeployAsync(SiloAddress silo, SubtaskDeployment deployment);

    /// <summary>How far the subtask's deployment got, or null when it cannot be had in time (its silo may be gone or busy).</summary>
    Task<SubtaskDeployState?> GetDeployStateAsync(SubtaskId subtask);

    /// <summary>Starts a deployed subtask.</summary>
    Task StartAsync(SubtaskId subtask);

    /// <summary>The subtask's status, or null when it cannot be had in time (its silo may be gone).</summary>
    Task<SubtaskStatus?> GetStatusAsync(SubtaskId subtask);

    /// <summary>Stops a subtask; a subtask that cannot be reached in time is left (its silo may be gone, or its heartbeat stops it later).</summary>
    Task CancelAsync(SubtaskId subtask, StopReason reason);
}

/// <summary>The subtask gateway over grain calls; deploy-state, status and stop calls give up after <see cref="CallTimeout"/>.</summary>
internal sealed class GrainSubtaskGateway(IGrainFactory grains, ILogger logger) : ISubtaskGateway
{
    /// <summary>How long a deploy-state, status or stop call may take before the subtask is taken as unreachable.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    public Task DeployAsync(SiloAddress silo, SubtaskDeployment deployment)
    {
        ArgumentNullException.ThrowIfNull(deployment);

        // The hint travels with the call that activates the grain; it is read when the call is made, so it can be removed at once.
        RequestContext.Set(IPlacementDirector.PlacementHintKey, silo);
        try
        {
            return Subtask(deployment.Subtask).Deploy(deployment);
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }
    }

    public Task StartAsync(SubtaskId subtask) => Subtask(subtask).Start();

    public async Task<SubtaskDeployState?> GetDeployStateAsync(SubtaskId subtask)
    {
        try
        {
            return await Subtask(subtask).GetDeployState().WaitAsync(CallTimeout);
        }
        catch (Exception ex)
        {
            logger.LogDebug(ex, "Deploy state of subtask {Subtask} unavailable", subtask);
            return null;
        }
    }

    public async Task<SubtaskStatus?> GetStatusAsync(SubtaskId subtask)
    {
        try
        {
            return await Subtask(subtask).GetStatus().WaitAsync(CallTimeout);
        }
        catch (Exception ex)
        {
            logger.LogDebug(ex, "Status of subtask {Subtask} unavailable", subtask);
            return null;
        }
    }

    public async Task CancelAsync(SubtaskId subtask, StopReason reason)
    {
        try
        {
            await Subtask(subtask).Cancel(reason).WaitAsync(CallTimeout);
        }
        catch (Exception ex)
        {
            logger.LogDebug(ex, "Stopping subtask {Subtask} failed (its silo may be gone)", subtask);
        }
    }

    private ISubtaskGrain Subtask(SubtaskId subtask) => grains.GetGrain<ISubtaskGrain>(subtask.GrainKey);
}
