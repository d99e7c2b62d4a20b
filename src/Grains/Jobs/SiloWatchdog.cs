using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// Notices that a silo running a subtask of the current attempt left the cluster (the job grain asks it every second):
/// the subtask's own failure report dies with its silo, so without the watchdog the job would wait forever.
/// </summary>
internal static class SiloWatchdog
{
    /// <summary>How often the job grain checks.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>The addresses of the silos that are active in <paramref name="membership"/>.</summary>
    public static HashSet<string> ActiveSilos(ClusterMembershipSnapshot membership)
    {
        ArgumentNullException.ThrowIfNull(membership);
        return membership.Members.Values.Where(static m => m.Status == SiloStatus.Active).Select(static m => m.SiloAddress.ToString()).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// The failure of <paramref name="attempt"/> when one of its subtasks ran on a silo that is not among
    /// <paramref name="activeSilos"/>; null when every subtask's silo is active (or not known yet).
    /// </summary>
    public static JobFailure? FindLostSilo(IEnumerable<KeyValuePair<SubtaskId, SubtaskStatus>> subtasks, int attempt, IReadOnlySet<string> activeSilos)
    {
        ArgumentNullException.ThrowIfNull(subtasks);
        ArgumentNullException.ThrowIfNull(activeSilos);
        foreach (var (id, status) in subtasks)
        {
            if (id.Attempt == attempt && status.Silo is { } silo && !activeSilos.Contains(silo))
            {
                return JobFailure.Of(JobFailureKind.SiloLost, $"silo {silo}, which ran subtask {id}, left the cluster", id.Index);
            }
        }

        return null;
    }
}
