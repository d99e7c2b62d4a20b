using StreamGrains.Snapshots;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

public sealed class SourceRecordsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    /// <summary>
    /// A bounded job that fails over after a checkpoint re-reads what its sources read after that checkpoint; those
    /// records count once, so the finished job reports exactly its input.
    /// </summary>
    [Fact]
    public async Task Source_records_count_every_input_record_once_across_a_failover()
    {
        const long Events = 1_000_000;
        var name = $"source-records-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 1 });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", 5_000).With("rate", 100_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static s => CheckpointTests.Checkpointed(s) with
        {
            Checkpointing = CheckpointTests.Checkpointed(s).Checkpointing with { Interval = TimeSpan.FromDays(1) },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        var checkpoint = await client.TriggerCheckpointAsync(jobId, Timeout);
        ResultStore.Arm(name);
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(CheckpointOutcome.Completed, checkpoint.Outcome);
        Assert.Equal(JobState.Finished, final.State);
        Assert.Equal(1, final.Restarts);
        Assert.True(recovered.SourceRecordsBefore is > 0 and < Events, $"the restored checkpoint's count: {recovered.SourceRecordsBefore}");
        Assert.Equal(recovered.SourceRecordsBefore, final.SourceRecordsBefore);
        Assert.Equal(Events, final.SourceRecords);
    }
}
