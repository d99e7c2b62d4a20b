using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StreamGrains.Samples;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.TestInfrastructure;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

[Collection(nameof(SiloLossCollection))]
public sealed class ChangelogSiloLossTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Theory]
    [InlineData(CheckpointStorageOptions.FileSystemKind)]
    [InlineData(CheckpointStorageOptions.AzureBlobKind)]
    public async Task Keyed_count_is_exact_in_changelog_mode_after_a_silo_loss_during_a_materialization_another_silo_loss_and_a_user_exception(string storageKind)
    {
        const long Events = 5_000_000;
        const long Keys = 100_000;
        const long Seed = 13;
        var name = $"changelog-exactly-once-{Guid.NewGuid():N}";
        var gate = ChangelogTests.MaterializationGate.For(name);
        await using var azurite = storageKind == CheckpointStorageOptions.AzureBlobKind ? await AzuriteServer.StartAsync() : null;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 3,
            ConfigureRuntime = azurite is null ? null : o => CheckpointTests.UseBlob(o, azurite.ConnectionString),
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new ChangelogTests.GatedStorage(sp.GetRequiredService<IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Create(), gate)),
        });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 80_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 3, configure: ChangelogTests.ChangelogCheckpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        var first = await client.TriggerCheckpointAsync(jobId, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, first.Outcome);
        Assert.All(first.Subtasks.Where(static s => s.Chain.Contains("counts", StringComparison.Ordinal)), static s => Assert.NotNull(s.MaterializationId));

        // A silo dies while one of its subtasks uploads a materialization: the upload is held until the silo is gone.
        var victim = cluster.Orleans.Silos[1];
        var status = await client.GetStatusAsync(jobId);
        var onVictim = status.Subtasks.Where(s => s.Chain.Contains("counts", StringComparison.Ordinal) && s.Silo == victim.SiloAddress.ToString()).Select(static s => s.Index).ToHashSet();
        Assert.NotEmpty(onVictim);
        var held = gate.Hold(path => onVictim.Any(i => path.Contains($"/changelog/counts/{i}/mat/", StringComparison.Ordinal)));
        await held.WaitAsync(Timeout);
        await cluster.Orleans.KillSiloAsync(victim);
        gate.Release();
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        Assert.Equal(JobState.Running, recovered.State);
        var afterFirstLoss = await client.TriggerCheckpointAsync(jobId, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, afterFirstLoss.Outcome);
        Assert.True(afterFirstLoss.ChangelogBytes > 0 || afterFirstLoss.Subtasks.Any(static s => s.MaterializationId is not null), $"checkpoint {afterFirstLoss.CheckpointId} carries no changelog figures");

        // Another original silo is lost, then user code throws once.
        await cluster.Orleans.StartAdditionalSiloAsync();
        status = await client.GetStatusAsync(jobId);
        var second = cluster.Orleans.Silos.Skip(1).First(silo => status.Subtasks.Any(s => s.Attempt == status.Attempt && s.Silo == silo.SiloAddress.ToString()));
        await cluster.Orleans.KillSiloAsync(second);
        recovered = await client.WaitForAsync(jobId, s => s.Attempt > recovered.Attempt && s.State == JobState.Running, Timeout);
        Assert.Equal(JobState.Running, recovered.State);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        ResultStore.Arm(name);
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Finished, final.State);
        Assert.True(final.Restarts >= 3, $"expected at least 3 restarts, saw {final.Restarts}: {string.Join(" | ", final.Warnings)}");
        Assert.Contains(final.Warnings, static w => w.Contains(ResilientCountJob.PoisonMessage, StringComparison.Ordinal));
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }
}
