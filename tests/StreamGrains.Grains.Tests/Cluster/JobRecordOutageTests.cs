using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Runtime;
using StreamGrains.Samples;
using StreamGrains.State.Storage;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// The job grain's silo dies while checkpoint storage cannot read the job's record: the grain reactivated by its
/// subtasks' heartbeats keeps reading the record with back-off, stops nothing meanwhile, refuses a submit under the same
/// id, and once storage reads again (a retry: nothing else reads the record again) it fails the job over as for any lost
/// job grain.
/// </summary>
[Collection(nameof(SiloLossCollection))]
public sealed class JobRecordOutageTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_job_grain_reactivated_while_its_record_is_unreadable_refuses_a_resubmit_and_recovers_the_job_when_storage_reads_again()
    {
        const long Events = 1_500_000;
        const long Keys = 20_000;
        const long Seed = 31;
        var name = $"record-outage-{Guid.NewGuid():N}";
        var outage = new RecordOutage();
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 4,
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new RecordOutageStorage(
                new FileSystemCheckpointStorage(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path),
                outage)),
        });
        var victim = GrainPlacementProbe.SiloWithoutSubtasks(cluster);
        var alone = victim.SiloAddress;
        var jobId = await GrainPlacementProbe.FindJobIdAsync(cluster, "job-alone", (job, coordinator) => job == alone && coordinator is not null && coordinator != alone);
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 50_000).With("name", name);
        var spec = CheckpointTests.Checkpointed(new JobSpec { JobType = typeof(ResilientCountJob).FullName!, Parameters = parameters, Parallelism = 1 }) with { JobId = jobId };
        var client = cluster.Client;
        await client.SubmitAsync(spec);
        var running = await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.DoesNotContain(running.Subtasks, s => s.Silo == alone.ToString());
        await client.TriggerCheckpointAsync(jobId, Timeout);

        outage.Active = true;
        await cluster.Orleans.KillSiloAsync(victim);

        // The submit activates the job grain (if no heartbeat did yet); its read of the record fails.
        var resubmit = await cluster.Orleans.Client.GetGrain<IJobGrain>(jobId.Value).Submit(spec);
        var unknown = await Assert.ThrowsAsync<InvalidOperationException>(() => cluster.Orleans.Client.GetGrain<IJobGrain>(jobId.Value).GetStatus(refreshSubtasks: false));
        outage.Active = false;
        await GrainPlacementProbe.PollAsync(() => KnownStatusAsync(cluster, jobId), static s => s is not null, Timeout, "the job grain reading its record again");
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Contains(resubmit.Errors, static e => e.Contains("could not be read", StringComparison.Ordinal));
        Assert.Contains("is unknown", unknown.Message, StringComparison.Ordinal);
        Assert.True(outage.FailedReads >= 1);
        Assert.Equal(JobState.Running, recovered.State);
        Assert.Equal(JobState.Finished, final.State);
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }

    /// <summary>The job's status, or null while its job grain does not know whether the job exists.</summary>
    private static async Task<JobStatus?> KnownStatusAsync(StreamGrainsCluster cluster, JobId jobId)
    {
        try
        {
            return await cluster.Orleans.Client.GetGrain<IJobGrain>(jobId.Value).GetStatus(refreshSubtasks: false);
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Whether reads of job records fail now, and how many did.</summary>
    private sealed class RecordOutage
    {
        private int _failedReads;

        public volatile bool Active;

        public int FailedReads => Volatile.Read(ref _failedReads);

        public void Fail(string path)
        {
            Interlocked.Increment(ref _failedReads);
            throw new CheckpointStorageException($"'{path}': storage unreachable (test)");
        }
    }

    private sealed class RecordOutageStorage(ICheckpointStorage inner, RecordOutage outage) : DelegatingCheckpointStorage(inner)
    {
        public override Task<byte[]?> ReadAsync(string path, CancellationToken cancellationToken)
        {
            if (outage.Active && path.EndsWith("/_job.record", StringComparison.Ordinal))
            {
                outage.Fail(path);
            }

            return base.ReadAsync(path, cancellationToken);
        }

        public override Task<VersionedObject?> ReadVersionedAsync(string path, CancellationToken cancellationToken)
        {
            if (outage.Active && path.EndsWith("/_job.record", StringComparison.Ordinal))
            {
                outage.Fail(path);
            }

            return base.ReadVersionedAsync(path, cancellationToken);
        }
    }
}
