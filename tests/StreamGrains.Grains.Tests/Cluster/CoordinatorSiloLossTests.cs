using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using StreamGrains.Client;
using StreamGrains.Runtime;
using StreamGrains.Samples;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// The checkpoint coordinator's silo dies while the job's subtasks and job grain live on: the job grain's watch starts
/// the coordinator again (no failover), checkpoints continue with new ids, and a stop-with-savepoint in flight is aborted
/// (its subtasks resume, its directory is deleted). The job runs on two of four silos; the coordinator is on another one.
/// </summary>
[Collection(nameof(SiloLossCollection))]
public sealed class CoordinatorSiloLossTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Checkpoints_continue_with_higher_ids_after_the_coordinators_silo_is_killed_and_counts_are_exact()
    {
        const long Events = 1_500_000;
        const long Keys = 20_000;
        const long Seed = 23;
        var name = $"coordinator-loss-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 4 });
        var (jobId, victim) = await SubmitWithCoordinatorAloneAsync(cluster, name, Events, Keys, Seed);
        var client = cluster.Client;
        var coordinator = cluster.Orleans.Client.GetGrain<ICheckpointCoordinatorGrain>(jobId.Value);
        var before = await client.TriggerCheckpointAsync(jobId, Timeout);
        var (_, epochBefore) = await coordinator.GetAttempt();

        await cluster.Orleans.KillSiloAsync(victim);
        var (attempt, epoch) = await GrainPlacementProbe.PollAsync(coordinator.GetAttempt, r => r.Attempt == 1 && r.Epoch > epochBefore, Timeout, "the coordinator started again by the job grain");
        var after = await client.TriggerCheckpointAsync(jobId, Timeout);
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(CheckpointOutcome.Completed, before.Outcome);
        Assert.Equal(CheckpointOutcome.Completed, after.Outcome);
        Assert.True(after.CheckpointId > before.CheckpointId, $"checkpoint ids continue: {before.CheckpointId} before the loss, {after.CheckpointId} after");
        Assert.Equal((1, JobState.Finished, 0), (attempt, final.State, final.Restarts));
        Assert.True(epoch > epochBefore);
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }

    [Fact]
    public async Task A_new_coordinator_activation_continues_above_the_reserved_ids_even_when_it_is_not_resumed()
    {
        // What a coordinator lost with its silo leaves: ids reserved below 150, and perhaps a checkpoint in flight whose
        // manifest was never written. When that silo also ran subtasks, the job fails over and the next attempt's
        // coordinator is a new activation started without Resumed (here: the first attempt's, with the same storage).
        const long Reserved = 150;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 1 });
        var jobId = JobId.New();
        await CheckpointTests.StorageOf(cluster).WriteAsync(
            Checkpointing.CheckpointIdReservation.PathOf(jobId.Value), System.Text.Encoding.UTF8.GetBytes(Reserved.ToString(System.Globalization.CultureInfo.InvariantCulture)), overwrite: true, CancellationToken.None);
        var parameters = JobParameters.Empty.With("events", 400_000).With("keys", 1_000).With("seed", 5).With("rate", 50_000).With("name", $"reserved-ids-{Guid.NewGuid():N}");
        await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 1, configure: s => CheckpointTests.Checkpointed(s) with { JobId = jobId });
        await cluster.Client.WaitForStateAsync(jobId, JobState.Running, Timeout);

        var checkpoint = await cluster.Client.TriggerCheckpointAsync(jobId, Timeout);
        await cluster.Client.CancelAsync(jobId);

        Assert.Equal(CheckpointOutcome.Completed, checkpoint.Outcome);
        Assert.True(checkpoint.CheckpointId >= Reserved, $"checkpoint {checkpoint.CheckpointId} reuses an id below the reserved {Reserved}");
    }

    [Fact]
    public async Task A_stop_with_savepoint_whose_coordinator_is_lost_fails_its_subtasks_resume_and_its_directory_is_deleted()
    {
        const long Events = 1_500_000;
        const long Keys = 20_000;
        const long Seed = 29;
        var name = $"savepoint-loss-{Guid.NewGuid():N}";
        var gate = new CopyGate();
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 4,
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new GatedCopyStorage(
                new FileSystemCheckpointStorage(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path),
                gate)),
        });
        try
        {
            var (jobId, victim) = await SubmitWithCoordinatorAloneAsync(cluster, name, Events, Keys, Seed);
            var client = cluster.Client;
            var directory = $"savepoints/{name}";
            // The savepoint's snapshot completes (its subtasks stop after it), then its copies wait at the gate.
            var savepoint = client.StopWithSavepointAsync(jobId, Timeout, directory: directory);
            await gate.Entered.Task.WaitAsync(Timeout);
            await cluster.Orleans.KillSiloAsync(victim);
            var failed = await Assert.ThrowsAsync<SavepointFailedException>(() => savepoint);
            var final = await client.WaitForCompletionAsync(jobId, Timeout);

            Assert.Equal(SavepointPhase.Failed, failed.Status.Phase);
            Assert.Contains("coordinator", failed.Status.FailureMessage, StringComparison.Ordinal);
            Assert.Equal((JobState.Finished, 1, (string?)null), (final.State, final.Attempt, final.FinalSavepoint));
            Assert.False(await CheckpointTests.StorageOf(cluster).ExistsAsync($"{directory}/_manifest.json", CancellationToken.None));
            await foreach (var left in CheckpointTests.StorageOf(cluster).ListAsync(directory, CancellationToken.None))
            {
                Assert.Fail($"{left.Path} of the aborted savepoint is left in storage");
            }

            CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
        }
        finally
        {
            gate.Open.TrySetResult();
        }
    }

    /// <summary>
    /// Submits a counting job with parallelism 1 (two chains, on the first two silos in placement order) under an id whose
    /// coordinator is on a silo without subtasks (not the primary) and whose job grain is not; returns the id and that silo.
    /// </summary>
    private static async Task<(JobId JobId, InProcessSiloHandle Victim)> SubmitWithCoordinatorAloneAsync(StreamGrainsCluster cluster, string name, long events, long keys, long seed)
    {
        var victim = GrainPlacementProbe.SiloWithoutSubtasks(cluster);
        var alone = victim.SiloAddress;
        var jobId = await GrainPlacementProbe.FindJobIdAsync(cluster, "coordinator-alone", (job, coordinator) => coordinator == alone && job is not null && job != alone);
        var parameters = JobParameters.Empty.With("events", events).With("keys", keys).With("seed", seed).With("rate", 50_000).With("name", name);
        Assert.Equal(jobId, await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 1, configure: s => CheckpointTests.Checkpointed(s) with { JobId = jobId }));
        var running = await cluster.Client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.DoesNotContain(running.Subtasks, s => s.Silo == alone.ToString());
        return (jobId, victim);
    }

    /// <summary>Holds every copy inside checkpoint storage (what a native savepoint does) until the test opens it.</summary>
    private sealed class CopyGate
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class GatedCopyStorage(ICheckpointStorage inner, CopyGate gate) : DelegatingCheckpointStorage(inner)
    {
        public override async Task CopyAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken)
        {
            gate.Entered.TrySetResult();
            await gate.Open.Task.WaitAsync(cancellationToken);
            await Inner.CopyAsync(sourcePath, destinationPath, cancellationToken);
        }
    }
}
