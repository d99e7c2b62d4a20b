using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// Failover on a real cluster when checkpoint storage returns bad input: listings that fail, manifests that parse but
/// are corrupt. The job falls back to an older checkpoint or fails with the cause; it never stays Restarting.
/// </summary>
public sealed class FailoverStorageErrorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_listing_that_always_fails_fails_the_job_with_kind_storage_and_the_cause()
    {
        var outage = new ListingOutage();
        await using var cluster = await StartAsync(outage);
        var jobId = new JobId($"listing-down-{Guid.NewGuid():N}");
        outage.Fail(jobId.Value, int.MaxValue);

        await cluster.SubmitAsync<ResilientCountJob>(Parameters(jobId.Value), parallelism: 2, configure: s => Spec(s, jobId, maxRestarts: 3));
        var final = await cluster.Client.WaitForAsync(jobId, static s => s.State.IsTerminal(), Timeout);

        Assert.Equal(JobState.Failed, final.State);
        Assert.Equal(JobFailureKind.Storage, final.Failure!.Kind);
        Assert.Contains(ListingOutage.Message, final.Failure.Message, StringComparison.Ordinal);
        Assert.Equal(3, final.Restarts);
        Assert.Contains(final.Warnings, static w => w.Contains(ListingOutage.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_listing_that_fails_for_a_while_fails_restarts_until_it_works_and_then_the_job_runs()
    {
        var outage = new ListingOutage();
        await using var cluster = await StartAsync(outage);
        var jobId = new JobId($"listing-flaky-{Guid.NewGuid():N}");
        outage.Fail(jobId.Value, 2);

        await cluster.SubmitAsync<ResilientCountJob>(Parameters(jobId.Value), parallelism: 2, configure: s => Spec(s, jobId, maxRestarts: 10));
        var running = await cluster.Client.WaitForAsync(jobId, static s => s.State == JobState.Running, Timeout);
        await cluster.Client.CancelAsync(jobId);

        Assert.Equal(JobState.Running, running.State);
        Assert.Equal(0, outage.Remaining);
        Assert.True(running.Restarts >= 1, $"expected a restart, saw {running.Restarts}");
        Assert.Contains(running.Warnings, static w => w.Contains(ListingOutage.Message, StringComparison.Ordinal));
    }

    /// <summary>
    /// Storage holds a newer checkpoint of the job whose manifest is corrupt when the coordinator reads the job's
    /// checkpoints (as after its silo was lost): it is skipped, and a failure restores the newest readable checkpoint.
    /// </summary>
    [Theory]
    [InlineData("impossible key groups", "\"uid\": \"counts\"", "{ \"start\": -1, \"end\": 127 }")]
    [InlineData("a null uid", "\"uid\": null", "{ \"start\": 0, \"end\": 127 }")]
    public async Task A_newer_checkpoint_with_a_corrupt_manifest_is_skipped_and_a_failure_restores_the_newest_readable_one(string what, string uid, string keyGroups)
    {
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 1 });
        var jobId = new JobId($"corrupt-manifest-{Guid.NewGuid():N}");
        var storage = CheckpointTests.StorageOf(cluster);
        var corrupt = $$"""
            { "formatVersion": 3, "kind": "Checkpoint", "jobId": "{{jobId.Value}}", "jobType": "{{typeof(ResilientCountJob).FullName}}", "checkpointId": 1000, "maxParallelism": 128,
              "operators": [ { {{uid}}, "parallelism": 1, "subtasks": [ { "subtaskIndex": 0, "keyedState": { "keyGroups": {{keyGroups}}, "files": [] } } ] } ] }
            """;
        await storage.WriteAsync(SnapshotLayout.ManifestPath(jobId.Value, 1000), System.Text.Encoding.UTF8.GetBytes(corrupt), overwrite: false, CancellationToken.None);
        var client = cluster.Client;

        await cluster.SubmitAsync<ResilientCountJob>(Parameters(jobId.Value), parallelism: 2, configure: s => Spec(s, jobId, maxRestarts: 3));
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        var checkpoint = await client.TriggerCheckpointAsync(jobId, Timeout);
        ResultStore.Arm(jobId.Value);
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        await client.CancelAsync(jobId);

        Assert.Equal(CheckpointOutcome.Completed, checkpoint.Outcome);
        Assert.True(JobState.Running == recovered.State, $"{what}: {recovered.State} {recovered.Failure}");
        Assert.Equal(1, recovered.Restarts);
        Assert.EndsWith($"chk-{checkpoint.CheckpointId}/_manifest.json", recovered.RestoredFrom, StringComparison.Ordinal);
        Assert.True(checkpoint.CheckpointId < 1000);
    }

    private static JobParameters Parameters(string name) => JobParameters.Empty.With("events", 100_000_000).With("keys", 20_000).With("rate", 50_000).With("name", name);

    private static JobSpec Spec(JobSpec spec, JobId jobId, int maxRestarts) => CheckpointTests.Checkpointed(spec) with
    {
        JobId = jobId,
        Checkpointing = CheckpointTests.Checkpointed(spec).Checkpointing with { Interval = TimeSpan.FromDays(1) },
        Restart = RestartStrategy.FixedDelay(maxRestarts, TimeSpan.FromMilliseconds(100)),
    };

    private static Task<StreamGrainsCluster> StartAsync(ListingOutage outage) => StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
    {
        Silos = 1,
        ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new FailingListingStorage(
            new FileSystemCheckpointStorage(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path),
            outage)),
    });

    /// <summary>How many more listings of a job's objects fail, shared by the storages of every silo.</summary>
    private sealed class ListingOutage
    {
        public const string Message = "injected: listing the job's objects failed";

        private string? _jobId;
        private int _remaining;

        public int Remaining => Volatile.Read(ref _remaining);

        public void Fail(string jobId, int listings)
        {
            _jobId = jobId;
            Volatile.Write(ref _remaining, listings);
        }

        public bool Take(string prefix)
        {
            if (_jobId is null || !prefix.StartsWith(_jobId, StringComparison.Ordinal))
            {
                return false;
            }

            var remaining = Volatile.Read(ref _remaining);
            while (remaining > 0)
            {
                var seen = Interlocked.CompareExchange(ref _remaining, remaining == int.MaxValue ? remaining : remaining - 1, remaining);
                if (seen == remaining)
                {
                    return true;
                }

                remaining = seen;
            }

            return false;
        }
    }

    private sealed class FailingListingStorage(ICheckpointStorage inner, ListingOutage outage) : DelegatingCheckpointStorage(inner)
    {
        public override IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken) =>
            outage.Take(prefix) ? throw new CheckpointStorageException($"{ListingOutage.Message} ('{prefix}')") : Inner.ListAsync(prefix, cancellationToken);
    }
}
