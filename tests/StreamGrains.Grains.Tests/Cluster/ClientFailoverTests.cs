using Orleans.Runtime.Placement;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>Client calls while a silo fails: retried, or a typed exception, never a raw Orleans one.</summary>
[Collection(nameof(SiloLossCollection))]
public sealed class ClientFailoverTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Status_calls_while_the_job_grains_silo_is_killed_answer_after_retries_without_raw_orleans_exceptions()
    {
        var name = $"client-failover-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 3 });
        var client = cluster.Client;
        var victim = cluster.Orleans.Silos[1];
        var jobId = new JobId($"client-failover-{Guid.NewGuid():N}"[..28]);
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 10_000).With("rate", 20_000).With("name", name);

        // The job grain is activated by the submission, on the silo the placement hint names.
        RequestContext.Set(IPlacementDirector.PlacementHintKey, victim.SiloAddress);
        try
        {
            await client.SubmitAsync(CheckpointTests.Checkpointed(new JobSpec { JobId = jobId, JobType = typeof(ResilientCountJob).FullName!, Parameters = parameters, Parallelism = 2 }));
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }

        var jobGrain = client.Grains.GetGrain<Runtime.IJobGrain>(jobId.Value);
        Assert.Equal(victim.SiloAddress, (await client.Grains.GetGrain<IManagementGrain>(0).GetActivationAddress(jobGrain)));
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);

        using var stop = new CancellationTokenSource();
        var killed = new TaskCompletionSource();
        var poller = Task.Run(async () =>
        {
            var (before, after) = (0, 0);
            var errors = new List<Exception>();
            while (!stop.IsCancellationRequested)
            {
                var killedBefore = killed.Task.IsCompleted;
                try
                {
                    await client.GetStatusAsync(jobId, refreshSubtasks: false);
                    _ = killedBefore ? after++ : before++;
                }
                catch (Exception ex)
                {
                    errors.Add(ex);
                }

                // Paces the polling (about 50 calls a second); nothing waits for an event here.
                await Task.Delay(20, CancellationToken.None);
            }

            return (before, after, errors);
        });
        await cluster.Orleans.KillSiloAsync(victim);
        killed.SetResult();
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        await stop.CancelAsync();
        var (callsBefore, callsAfter, errors) = await poller;
        await client.CancelAsync(jobId);

        Assert.Equal(JobState.Running, recovered.State);
        Assert.True(callsBefore > 0 && callsAfter > 0, $"status calls before the kill: {callsBefore}, after: {callsAfter}");
        Assert.True(errors.Count == 0, $"status calls threw: {string.Join(" | ", errors.Select(static e => $"{e.GetType().Name}: {e.Message}").Distinct().Take(5))}");
        Assert.NotEqual(victim.SiloAddress, (await client.Grains.GetGrain<IManagementGrain>(0).GetActivationAddress(jobGrain)));
    }
}
