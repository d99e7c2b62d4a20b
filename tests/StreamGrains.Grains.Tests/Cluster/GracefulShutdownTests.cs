using StreamGrains.Client;
using StreamGrains.Samples;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// A silo that stops gracefully (Orleans' <c>StopSiloAsync</c>, as on SIGTERM) moves the subtasks of its jobs away with a
/// checkpoint at which they stop: the job keeps running in a new attempt, records no failure, spends nothing of its
/// restart strategy, and its results are exact.
/// </summary>
[Collection(nameof(SiloLossCollection))]
public sealed class GracefulShutdownTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Graceful_stop_of_a_silo_moves_its_subtasks_with_a_checkpoint_and_records_no_failure()
    {
        const long Events = 1_500_000;
        const long Keys = 20_000;
        const long Seed = 23;
        var name = $"graceful-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 3 });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 50_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 3, configure: NoRestarts);
        var running = await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        running = await client.GetStatusAsync(jobId);

        // A silo that runs subtasks but not the job grain (that case is the rolling restart's).
        var jobSilo = await JobGrainSiloAsync(cluster, jobId);
        var leaving = cluster.Orleans.Silos.First(s => !s.SiloAddress.Equals(jobSilo) && running.Subtasks.Any(t => t.Silo == s.SiloAddress.ToString()));
        await cluster.Orleans.StopSiloAsync(leaving);

        // The move began before the stop returned: the attempt's subtasks stopped at a completed checkpoint.
        var moved = await PollAsync(client, jobId, static s => s is { PlannedMoves: 1, State: JobState.Running } || s.State.IsTerminal());
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Running, moved.State);
        Assert.Equal(running.Attempt + 1, moved.Attempt);
        Assert.NotNull(moved.RestoredFrom);
        Assert.DoesNotContain(moved.Subtasks, t => t.Silo == leaving.SiloAddress.ToString());
        Assert.Equal(JobState.Finished, final.State);
        Assert.Null(final.Failure);
        Assert.Equal(0, final.Restarts);
        Assert.Equal(1, final.PlannedMoves);
        Assert.Contains(final.Warnings, static w => w.Contains("planned move", StringComparison.Ordinal));
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }

    [Fact]
    public async Task Rolling_restart_of_every_silo_keeps_the_job_running_with_exact_results()
    {
        const long Events = 3_000_000;
        const long Keys = 20_000;
        const long Seed = 29;
        var name = $"rolling-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 3 });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 50_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 3, configure: NoRestarts);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);

        // Each original silo in turn: a replacement joins, then the silo stops gracefully. A silo that runs a subtask of
        // the current attempt or the job grain makes the job move; the next silo stops only once it runs again.
        var expectedMoves = 0;
        foreach (var silo in cluster.Orleans.Silos.ToArray())
        {
            var replacement = (await cluster.Orleans.StartAdditionalSiloAsync()).SiloAddress.ToString();
            var status = await PollAsync(client, jobId, static s => s.State is JobState.Running || s.State.IsTerminal());
            Assert.True(status.State == JobState.Running, Describe(status));
            var address = silo.SiloAddress.ToString();
            var hadSubtasks = status.Subtasks.Any(t => t.Attempt == status.Attempt && t.Silo == address);
            if (hadSubtasks || silo.SiloAddress.Equals(await JobGrainSiloAsync(cluster, jobId)))
            {
                expectedMoves++;
            }

            await cluster.Orleans.StopSiloAsync(silo);
            var moves = expectedMoves;
            status = await PollAsync(client, jobId, s => (s.PlannedMoves >= moves && s.State == JobState.Running) || s.State.IsTerminal());
            Assert.True(status.State == JobState.Running, Describe(status));
            Assert.DoesNotContain(status.Subtasks, t => t.Attempt == status.Attempt && t.Silo == address);

            // The other silos already have their share of each chain: what ran on the stopped silo went to the one that joined.
            Assert.True(!hadSubtasks || status.Subtasks.Any(t => t.Attempt == status.Attempt && t.Silo == replacement), $"no subtask moved to the new silo {replacement}");
        }

        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Finished, final.State);
        Assert.Null(final.Failure);
        Assert.Equal(0, final.Restarts);
        Assert.True(expectedMoves >= 2, $"expected the job to move at least twice, it moved {final.PlannedMoves} times");
        Assert.Equal(expectedMoves, final.PlannedMoves);
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }

    private static string Describe(JobStatus status) => $"{status} (attempt {status.Attempt}, {status.PlannedMoves} moves): {string.Join(" | ", status.Warnings)}";

    /// <summary>Checkpointed every second, with a restart strategy that allows no restart: a failure would end the job.</summary>
    private static JobSpec NoRestarts(JobSpec spec) => CheckpointTests.Checkpointed(spec) with { Restart = RestartStrategy.None };

    private static async Task<SiloAddress?> JobGrainSiloAsync(StreamGrainsCluster cluster, JobId jobId) =>
        await cluster.Orleans.Client.GetGrain<IManagementGrain>(0).GetActivationAddress(cluster.Orleans.Client.GetGrain<Runtime.IJobGrain>(jobId.Value));

    /// <summary>
    /// Polls the job's status until <paramref name="condition"/> holds. A status call may fail while the job grain moves
    /// with its silo (the call is then retried).
    /// </summary>
    private static async Task<JobStatus> PollAsync(StreamGrainsClient client, JobId jobId, Func<JobStatus, bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            try
            {
                var status = await client.GetStatusAsync(jobId);
                if (condition(status))
                {
                    return status;
                }

                Assert.True(DateTime.UtcNow < deadline, $"job {jobId} did not reach the condition within {Timeout}: {status} (attempt {status.Attempt}, {status.PlannedMoves} moves)");
            }
            catch (Exception ex) when (ex is OrleansException or TimeoutException && DateTime.UtcNow < deadline)
            {
                // The job grain's silo stopped during the call; the next call reaches its new activation.
            }

            await Task.Delay(100);
        }
    }
}
