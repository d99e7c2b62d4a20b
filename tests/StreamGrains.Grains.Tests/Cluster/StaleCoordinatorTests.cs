using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Serialization;
using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// Another writer (a newer activation of the job grain, in a split brain) raises the job record's epoch: the running
/// coordinator, started under the older epoch, refuses its next deletion and stops, and the older job grain's record
/// writes are refused too, so neither overwrites nor deletes what the newer one owns.
/// </summary>
public sealed class StaleCoordinatorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task A_coordinator_whose_epoch_is_superseded_deletes_no_subsumed_checkpoint_and_stops()
    {
        var name = $"stale-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 2 });
        await using var services = new ServiceCollection().AddSerializer().BuildServiceProvider();
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 5_000).With("rate", 20_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 1, configure: static s => CheckpointTests.Checkpointed(s) with
        {
            Checkpointing = CheckpointTests.Checkpointed(s).Checkpointing with { Retained = 1 },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        await client.TriggerCheckpointAsync(jobId, Timeout);
        var storage = CheckpointTests.StorageOf(cluster);
        var store = new JobRecordStore(storage, services.GetRequiredService<Serializer>(), NullLogger.Instance);
        var record = (await store.ReadAsync(jobId, CancellationToken.None))!;
        var superseding = record.Epoch + 10;
        record.Epoch = superseding;
        Assert.True(await store.WriteAsync(jobId, record));

        // The coordinator's next completed checkpoint subsumes the previous one (one is retained): that deletion is refused.
        var coordinator = cluster.Orleans.Client.GetGrain<ICheckpointCoordinatorGrain>(jobId.Value);
        await GrainPlacementProbe.PollAsync(coordinator.GetAttempt, static r => r.Attempt == 0, Timeout, "the stale coordinator stopping");
        var manifests = await CheckpointTests.ReadManifestsAsync(storage, jobId);
        var latest = await store.ReadAsync(jobId, CancellationToken.None);
        await client.CancelAsync(jobId);

        Assert.True(manifests.Count >= 2, $"a subsumed checkpoint stays when its deletion is refused; manifests: {string.Join(", ", manifests.Select(static m => m.CheckpointId))}");
        Assert.Equal(superseding, latest!.Epoch);
    }
}
