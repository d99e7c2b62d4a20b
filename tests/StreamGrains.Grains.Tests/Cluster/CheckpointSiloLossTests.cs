using StreamGrains.Samples;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.TestInfrastructure;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

[Collection(nameof(SiloLossCollection))]
public sealed class CheckpointSiloLossTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Theory]
    [InlineData(CheckpointStorageOptions.FileSystemKind)]
    [InlineData(CheckpointStorageOptions.AzureBlobKind)]
    public async Task Keyed_count_is_exact_after_two_silo_losses_and_a_user_exception(string storageKind)
    {
        const long Events = 5_000_000;
        const long Keys = 100_000;
        const long Seed = 11;
        var name = $"exactly-once-{Guid.NewGuid():N}";
        await using var azurite = storageKind == CheckpointStorageOptions.AzureBlobKind ? await AzuriteServer.StartAsync() : null;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 3,
            ConfigureRuntime = azurite is null ? null : o => CheckpointTests.UseBlob(o, azurite.ConnectionString),
        });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 150_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 3, configure: CheckpointTests.Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        // Hard stop of a silo: its subtasks are gone; the job restarts all subtasks from the latest checkpoint.
        var first = cluster.Orleans.Silos[1];
        var second = cluster.Orleans.Silos[2];
        await cluster.Orleans.KillSiloAsync(first);
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        Assert.Equal(JobState.Running, recovered.State);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        // A new silo joins, then another original one (which runs subtasks of the current attempt) is stopped hard.
        await cluster.Orleans.StartAdditionalSiloAsync();
        Assert.Contains((await client.GetStatusAsync(jobId)).Subtasks, s => s.Silo == second.SiloAddress.ToString());
        await cluster.Orleans.KillSiloAsync(second);
        recovered = await client.WaitForAsync(jobId, s => s.Attempt > recovered.Attempt && s.State == JobState.Running, Timeout);
        Assert.Equal(JobState.Running, recovered.State);

        ResultStore.Arm(name);
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Finished, final.State);
        Assert.True(final.Restarts >= 3, $"expected at least 3 restarts, saw {final.Restarts}: {string.Join(" | ", final.Warnings)}");
        Assert.Contains(final.Warnings, static w => w.Contains(ResilientCountJob.PoisonMessage, StringComparison.Ordinal));
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }
}
