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
    /// Assigns the subtasks (in plan order: chain by chain, index by index) to the silos sorted by address, each chain
    /// in contiguous blocks: subtask <c>j</c> of a chain of parallelism <c>p &gt; s</c> goes to block <c>⌊j·s/p⌋</c> of
    /// the <c>s</c> silos (with <c>p ≤ s</c>, to silo <c>j</c>), so every silo gets ⌊p/s⌋ or ⌈p/s⌉ of each chain's subtasks, and subtasks of neighbouring key-group
    /// ranges share a silo. That is what a rescale from <c>p</c> to <c>2p</c> wants: the two new subtasks that split an
    /// old subtask's key groups need the same SSTs, and on one silo they download them once
    /// (<see cref="State.Snapshots.SharedRestoreDownloads"/>). The blocks of each chain start one silo further on per
    /// subtask placed before it, so that chains with fewer subtasks than silos do not all start on the first. A subtask
    /// that ran before on a silo that is still active keeps it (sticky), so it finds its local state again; one whose
    /// silo left takes its block's silo unless that already has ⌈p/s⌉ of the chain, else the silo with the fewest (so a
    /// silo that joined gets the subtasks of one that left).
    /// </summary>
    public static SiloAddress[] Assign(IReadOnlyList<SiloAddress> activeSilos, IReadOnlyList<int> chainParallelisms, IReadOnlyList<SiloAddress?>? previous = null)
    {
        if (activeSilos.Count == 0)
        {
            throw new InvalidOperationException("No active silo to place subtasks on.");
        }

        var silos = activeSilos.OrderBy(static s => s).ToArray();
        var assignment = new SiloAddress[chainParallelisms.Sum()];
        var first = 0;
        foreach (var parallelism in chainParallelisms)
        {
            // Sticky subtasks first; the others take their block's silo unless it already has its share of the chain
            // (⌈p/s⌉), else the next silo with the fewest: a silo that joined gets the subtasks of one that left.
            var share = (parallelism + silos.Length - 1) / silos.Length;
            var load = new int[silos.Length];
            for (var j = 0; j < parallelism; j++)
            {
                var i = first + j;
                if (previous is not null && i < previous.Count && previous[i] is { } before && Array.IndexOf(silos, before) is var kept and >= 0)
                {
                    assignment[i] = before;
                    load[kept]++;
                }
            }

            for (var j = 0; j < parallelism; j++)
            {
                if (assignment[first + j] is not null)
                {
                    continue;
                }

                // With no more subtasks than silos, consecutive silos: blocks of one would skip silos.
                var block = parallelism <= silos.Length ? j : (int)((long)j * silos.Length / parallelism);
                var slot = (first + block) % silos.Length;
                if (load[slot] >= share)
                {
                    slot = Enumerable.Range(slot, silos.Length).Select(k => k % silos.Length).MinBy(k => load[k]);
                }

                assignment[first + j] = silos[slot];
                load[slot]++;
            }

            first += parallelism;
        }

        return assignment;
    }
}
