using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace StreamGrains.Grains.Placement;

/// <summary>Placement of subtask grains: on the silo the job grain chose (even and sticky), else spread by key hash.</summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SubtaskPlacementStrategy : PlacementStrategy
{
}

/// <summary>Applies <see cref="SubtaskPlacementStrategy"/> to a grain class.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SubtaskPlacementAttribute() : PlacementAttribute(new SubtaskPlacementStrategy());

/// <summary>
/// Places a subtask on the silo named in the activating call's placement hint, which the job grain sets from its
/// placement plan; without a usable hint (the silo left), on a silo chosen by a stable hash of the grain key.
/// </summary>
internal sealed class SubtaskPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        if (silos.Length == 0)
        {
            throw new OrleansException($"No silo can host subtask {target.GrainIdentity}.");
        }

        if (IPlacementDirector.GetPlacementHint(target.RequestContextData, silos) is { } hinted)
        {
            return Task.FromResult(hinted);
        }

        var sorted = silos.OrderBy(static s => s).ToArray();
        return Task.FromResult(sorted[target.GrainIdentity.Key.GetUniformHashCode() % (uint)sorted.Length]);
    }
}

/// <summary>The even placement plan of a job's subtasks over the active silos.</summary>
internal static class PlacementPlanner
{
    /// <summary>
    /// Assigns the subtasks (in plan order: chain by chain, index by index) round-robin over the silos sorted by
    /// address, so every silo gets ⌊n/s⌋ or ⌈n/s⌉ subtasks and each chain's subtasks are spread too. A subtask that ran
    /// before on a silo that is still active keeps it (sticky), so it finds its local state again.
    /// </summary>
    public static SiloAddress[] Assign(IReadOnlyList<SiloAddress> activeSilos, int subtaskCount, IReadOnlyList<SiloAddress?>? previous = null)
    {
        if (activeSilos.Count == 0)
        {
            throw new InvalidOperationException("No active silo to place subtasks on.");
        }

        var silos = activeSilos.OrderBy(static s => s).ToArray();
        var assignment = new SiloAddress[subtaskCount];
        for (var i = 0; i < subtaskCount; i++)
        {
            assignment[i] = previous is not null && i < previous.Count && previous[i] is { } before && silos.Contains(before)
                ? before
                : silos[i % silos.Length];
        }

        return assignment;
    }
}
