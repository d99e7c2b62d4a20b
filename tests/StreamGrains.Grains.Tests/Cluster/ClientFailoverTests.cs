using Orleans.Runtime.Placement;
using StreamGrains.Client;
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
        var patient = new Poller(client);

        // A client that does not retry sees whatever part of the outage its calls meet only as a typed exception. How
        // much of the outage that is depends on how fast the cluster notices the kill (seen: none at all, under load),
        // so the test does not require that it meets one.
        var impatient = new Poller(new StreamGrainsClient(client.Grains) { TransientRetryTime = TimeSpan.Zero });
        var polling = new[] { patient.RunAsync(jobId, killed.Task, stop.Token), impatient.RunAsync(jobId, killed.Task, stop.Token) };
        await Task.WhenAll(patient.Answered.Task, impatient.Answered.Task).WaitAsync(Timeout);
        await cluster.Orleans.KillSiloAsync(victim);
        killed.SetResult();
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        await patient.AnsweredAfterKill.Task.WaitAsync(Timeout);
        await stop.CancelAsync();
        await Task.WhenAll(polling);
        await client.CancelAsync(jobId);

        Assert.Equal(JobState.Running, recovered.State);
        Assert.True(patient.Errors.Count == 0, $"status calls threw: {string.Join(" | ", patient.Errors.Select(static e => $"{e.GetType().Name}: {e.Message}").Distinct().Take(5))}");
        Assert.NotEqual(victim.SiloAddress, await client.Grains.GetGrain<IManagementGrain>(0).GetActivationAddress(jobGrain));
        Assert.All(impatient.Errors, static e => Assert.IsType<ClusterUnavailableException>(e));
    }

    /// <summary>
    /// Calls <see cref="StreamGrainsClient.GetStatusAsync"/> about 50 times a second until stopped and keeps the
    /// exceptions; <see cref="Answered"/> completes at the first answer, <see cref="AnsweredAfterKill"/> at the first answer
    /// to a call made after the kill.
    /// </summary>
    private sealed class Poller(StreamGrainsClient client)
    {
        public TaskCompletionSource Answered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource AnsweredAfterKill { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<Exception> Errors { get; } = [];

        public Task RunAsync(JobId jobId, Task killed, CancellationToken stop) => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var afterKill = killed.IsCompleted;
                try
                {
                    await client.GetStatusAsync(jobId, refreshSubtasks: false);
                    Answered.TrySetResult();
                    if (afterKill)
                    {
                        AnsweredAfterKill.TrySetResult();
                    }
                }
                catch (Exception ex)
                {
                    Errors.Add(ex);
                }

                // Paces the polling; nothing waits for an event here.
                await Task.Delay(20, CancellationToken.None);
            }
        }, CancellationToken.None);
    }
}
