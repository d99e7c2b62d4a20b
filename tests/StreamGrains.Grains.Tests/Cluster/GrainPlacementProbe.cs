using Orleans.TestingHost;
using StreamGrains.Runtime;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// Finds a job id whose job grain and checkpoint coordinator are activated on the silos a test needs, so that the test
/// can kill the silo of one grain and not the other. Subtasks are placed deterministically (consecutive silos in
/// address order), grains by Orleans: the probe activates both grains of candidate ids (a job grain without a record and
/// an idle coordinator do nothing) until one pair lands where wanted.
/// </summary>
internal static class GrainPlacementProbe
{
    /// <summary>The silos in the order the placement planner uses.</summary>
    public static SiloAddress[] OrderedSilos(StreamGrainsCluster cluster) => [.. cluster.Orleans.Silos.Select(static s => s.SiloAddress).OrderBy(static s => s)];

    /// <summary>
    /// A silo that runs no subtask of a job with two chains at parallelism 1 (those go to the first two silos in placement
    /// order) and is not the primary silo (which holds the test cluster's membership and is not killed); needs four silos.
    /// </summary>
    public static InProcessSiloHandle SiloWithoutSubtasks(StreamGrainsCluster cluster)
    {
        var free = OrderedSilos(cluster)[2..];
        return cluster.Orleans.Silos.First(s => free.Contains(s.SiloAddress) && s != cluster.Orleans.Silos[0]);
    }

    /// <summary>A job id (with <paramref name="prefix"/>) whose job grain and coordinator are on silos <paramref name="accept"/> takes.</summary>
    public static async Task<JobId> FindJobIdAsync(StreamGrainsCluster cluster, string prefix, Func<SiloAddress?, SiloAddress?, bool> accept)
    {
        var grains = cluster.Orleans.Client;
        var management = grains.GetGrain<IManagementGrain>(0);
        for (var i = 0; i < 60; i++)
        {
            var id = new JobId($"{prefix}-{i}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 16, 60)]);
            var job = grains.GetGrain<IJobGrain>(id.Value);
            var coordinator = grains.GetGrain<ICheckpointCoordinatorGrain>(id.Value);
            Assert.Null(await job.GetStatus(refreshSubtasks: false));

            // The coordinator prefers the silo of its first caller; called from the client, that is whichever gateway
            // handles the call, so each candidate hints another silo in turn.
            var silos = cluster.Orleans.Silos;
            RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, silos[i % silos.Count].SiloAddress);
            try
            {
                Assert.Equal(0, (await coordinator.GetAttempt()).Attempt);
            }
            finally
            {
                RequestContext.Remove(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey);
            }

            if (accept(await management.GetActivationAddress(job), await management.GetActivationAddress(coordinator)))
            {
                return id;
            }
        }

        Assert.Fail("no candidate job id placed its grains as the test needs in 60 tries");
        return default!;
    }

    /// <summary>Polls <paramref name="probe"/> every 100 ms until it returns a value <paramref name="condition"/> accepts.</summary>
    public static async Task<T> PollAsync<T>(Func<Task<T>> probe, Func<T, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await probe();
            if (condition(value))
            {
                return value;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{what} did not happen within {timeout}; last seen: {value}");
            await Task.Delay(100);
        }
    }
}
