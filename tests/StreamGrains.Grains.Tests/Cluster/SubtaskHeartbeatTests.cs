using Orleans.Core.Internal;
using StreamGrains.Runtime;
using StreamGrains.Samples;

namespace StreamGrains.Grains.Tests;

/// <summary>The job grain notices a subtask that stops sending heartbeats without a report, and restarts the job.</summary>
public sealed class SubtaskHeartbeatTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_source_subtask_whose_grain_is_gone_without_a_report_is_found_by_its_missing_heartbeats_and_the_job_restarts_to_exact_counts()
    {
        const long Events = 400_000;
        const long Keys = 5_000;
        const long Seed = 31;
        var name = $"silent-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 20_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static s => s with
        {
            Checkpointing = CheckpointSettings.Disabled,
            Restart = RestartStrategy.FixedDelay(3, TimeSpan.FromMilliseconds(200)),
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);

        // The source subtask's activation goes away as after a directory-partition loss: it reports no failure, and
        // nothing calls it (no checkpoints), so only its missing heartbeats tell. Its downstream would wait forever.
        var source = new SubtaskId(jobId, 0, 0, 1);
        await cluster.Orleans.Client.GetGrain<ISubtaskGrain>(source.GrainKey).AsReference<IGrainManagementExtension>().DeactivateOnIdle();
        var restarted = await client.WaitForAsync(jobId, static s => s.Attempt >= 2, Timeout);
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Finished, final.State);
        Assert.Equal((2, 1), (final.Attempt, final.Restarts));
        Assert.Contains(restarted.Warnings.Concat(final.Warnings), w => w.Contains($"subtask {source}", StringComparison.Ordinal) && w.Contains("sent no heartbeat", StringComparison.Ordinal));
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }
}
