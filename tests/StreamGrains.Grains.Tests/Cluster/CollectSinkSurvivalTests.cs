using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Core.Internal;
using Orleans.Runtime.Placement;
using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.Grains.Connectors;
using StreamGrains.Runtime;
using StreamGrains.State;
using StreamGrains.State.Storage;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

[GenerateSerializer, Immutable]
public sealed record KeyCount([property: Id(0)] long Key, [property: Id(1)] long Count);

/// <summary>
/// Numbers 0..events-1, keyed by <c>i % keys</c>, counted per key; every count goes to an append-mode collect sink, so
/// an exactly-once result holds each (key, count) pair exactly once. Parameters: events, keys, rate.
/// </summary>
public sealed class CollectCountsJob : IStreamJob
{
    public const string Sink = "rows";

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var events = parameters.GetInt64("events", 60_000);
        var keys = parameters.GetInt64("keys", 1_000);
        var rate = parameters.GetDouble("rate", 0);
        builder.Source(new GeneratorSource<long>(static i => i) { Count = events, RecordsPerSecond = rate > 0 ? rate : null })
            .Uid("numbers")
            .KeyBy(i => i % keys)
            .Process(new RunningCount())
            .Uid("counts")
            .Sink(new CollectSink<KeyCount>(Sink) { BatchSize = 500 })
            .Uid("out");
    }

    /// <summary>Every (key, count) pair the job emits, once each.</summary>
    public static IReadOnlyList<KeyCount> Expected(long events, long keys) =>
        Enumerable.Range(0, (int)keys).SelectMany(k => Enumerable.Range(1, (int)((events / keys) + (k < events % keys ? 1 : 0))).Select(c => new KeyCount(k, c))).ToList();

    private sealed class RunningCount : KeyedProcessFunction<long, long, KeyCount>
    {
        private static readonly ValueStateDescriptor<long> CountState = new("count");
        private IValueState<long>? _count;

        public override void Open(IKeyedRuntimeContext context) => _count = context.GetValueState(CountState);

        public override void ProcessElement(long value, IKeyedProcessContext<long> context, ICollector<KeyCount> output)
        {
            var count = _count!.Get() + 1;
            _count.Update(count);
            output.Collect(new KeyCount(context.CurrentKey, count));
        }
    }
}

/// <summary>The collect sink's rows survive the loss of the collector grain and of its silo; an unrecoverable loss fails the job.</summary>
[Collection(nameof(SiloLossCollection))]
public sealed class CollectSinkSurvivalTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Rows_survive_the_kill_of_the_collectors_silo_exactly_once_in_append_mode()
    {
        const long Events = 60_000;
        const long Keys = 500;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 3 });
        var jobId = new JobId($"collect-kill-{Guid.NewGuid():N}"[..24]);
        var victim = cluster.Orleans.Silos[1];
        var collector = await ActivateCollectorOnAsync(cluster, jobId, victim.SiloAddress);

        await cluster.Client.SubmitAsync(CheckpointTests.Checkpointed(Spec(jobId, Events, Keys, rate: 8_000)));
        await WaitForRowsAsync(collector, 5_000);
        Assert.Equal(Snapshots.CheckpointOutcome.Completed, (await cluster.Client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);
        await WaitForRowsAsync(collector, (await collector.Read(0, 1)).Total + 1_000);
        await cluster.Orleans.KillSiloAsync(victim);
        var status = await cluster.Client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Finished, status.State);
        Assert.True(status.Attempt > 1, $"the job should have restarted after its silo was lost: {status}");
        var host = await cluster.Client.Grains.GetGrain<IManagementGrain>(0).GetActivationAddress(collector);
        Assert.NotEqual(victim.SiloAddress, host);
        AssertExactly(CollectCountsJob.Expected(Events, Keys), await cluster.Client.ReadCollectedAsync<KeyCount>(jobId, CollectCountsJob.Sink));
    }

    [Fact]
    public async Task Rows_survive_deactivations_of_the_collector_while_the_job_runs_without_a_restart()
    {
        const long Events = 50_000;
        const long Keys = 300;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 2 });
        var jobId = new JobId($"collect-deact-{Guid.NewGuid():N}"[..24]);
        var collector = cluster.Client.Grains.GetGrain<ICollectorGrain>(CollectSink<KeyCount>.CollectorKey(jobId, CollectCountsJob.Sink));

        await cluster.Client.SubmitAsync(CheckpointTests.Checkpointed(Spec(jobId, Events, Keys, rate: 10_000)));
        var seen = 0L;
        for (var i = 0; i < 2; i++)
        {
            seen = await WaitForRowsAsync(collector, seen + 5_000);
            await collector.Cast<IGrainManagementExtension>().DeactivateOnIdle();
        }

        var status = await cluster.Client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Finished, status.State);
        Assert.Equal(1, status.Attempt);
        AssertExactly(CollectCountsJob.Expected(Events, Keys), await cluster.Client.ReadCollectedAsync<KeyCount>(jobId, CollectCountsJob.Sink));
    }

    [Fact]
    public async Task A_collector_that_cannot_store_rows_fails_a_job_without_checkpointing_instead_of_finishing()
    {
        var storage = new CollectedWriteOutage();
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 2,
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => storage.Wrap(sp.GetRequiredService<IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Create())),
        });
        var jobId = new JobId($"collect-lost-{Guid.NewGuid():N}"[..24]);
        var collector = cluster.Client.Grains.GetGrain<ICollectorGrain>(CollectSink<KeyCount>.CollectorKey(jobId, CollectCountsJob.Sink));

        await cluster.Client.SubmitAsync(Spec(jobId, events: 40_000, keys: 100, rate: 10_000));
        await WaitForRowsAsync(collector, 2_000);
        storage.Fail = true;
        var failed = await Assert.ThrowsAsync<Client.JobFailedException>(() => cluster.Client.WaitForCompletionAsync(jobId, Timeout));

        Assert.Equal(JobState.Failed, failed.Status.State);
        Assert.Contains("Collect sink 'rows'", failed.Status.Failure?.Message, StringComparison.Ordinal);
        Assert.Contains("did not store batch", failed.Status.Failure?.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_collector_that_lost_stored_batches_fails_the_job_at_the_end_of_input_instead_of_finishing()
    {
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 2 });
        var jobId = new JobId($"collect-gap-{Guid.NewGuid():N}"[..24]);
        var collector = cluster.Client.Grains.GetGrain<ICollectorGrain>(CollectSink<KeyCount>.CollectorKey(jobId, CollectCountsJob.Sink));
        var storage = StorageOf(cluster);

        await cluster.Client.SubmitAsync(Spec(jobId, events: 40_000, keys: 100, rate: 10_000));
        await WaitForRowsAsync(collector, 2_000);
        var stored = await storage.ListAsync(CollectorGrain.PrefixOf(collector.GetPrimaryKeyString()), CancellationToken.None).ToListAsync();
        await storage.DeleteAsync(stored.OrderBy(static s => s.Path, StringComparer.Ordinal).First().Path, CancellationToken.None);
        await collector.Cast<IGrainManagementExtension>().DeactivateOnIdle();
        var failed = await Assert.ThrowsAsync<Client.JobFailedException>(() => cluster.Client.WaitForCompletionAsync(jobId, Timeout));

        Assert.Equal(JobState.Failed, failed.Status.State);
        Assert.Contains("the collector holds", failed.Status.Failure?.Message, StringComparison.Ordinal);
    }

    private static JobSpec Spec(JobId jobId, long events, long keys, long rate) => new()
    {
        JobId = jobId,
        JobType = typeof(CollectCountsJob).FullName!,
        Parameters = JobParameters.Empty.With("events", events).With("keys", keys).With("rate", rate),
        Parallelism = 2,
    };

    private static ICheckpointStorage StorageOf(StreamGrainsCluster cluster) =>
        cluster.Orleans.Silos[0].ServiceProvider.GetRequiredService<ICheckpointStorage>();

    /// <summary>Activates the job's collector on <paramref name="silo"/> (a placement hint on the first call) and checks it is there.</summary>
    private static async Task<ICollectorGrain> ActivateCollectorOnAsync(StreamGrainsCluster cluster, JobId jobId, SiloAddress silo)
    {
        var collector = cluster.Client.Grains.GetGrain<ICollectorGrain>(CollectSink<KeyCount>.CollectorKey(jobId, CollectCountsJob.Sink));
        RequestContext.Set(IPlacementDirector.PlacementHintKey, silo);
        try
        {
            await collector.Read(0, 1);
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }

        var host = await cluster.Client.Grains.GetGrain<IManagementGrain>(0).GetActivationAddress(collector);
        Assert.Equal(silo, host);
        return collector;
    }

    /// <summary>Polls the collector until it holds at least <paramref name="rows"/> rows; returns how many it holds.</summary>
    private static async Task<long> WaitForRowsAsync(ICollectorGrain collector, long rows)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var total = (await collector.Read(0, 1)).Total;
            if (total >= rows)
            {
                return total;
            }

            Assert.True(DateTime.UtcNow < deadline, $"the collector did not reach {rows} rows within {Timeout}; it holds {total}");
            await Task.Delay(50);
        }
    }

    private static void AssertExactly(IReadOnlyList<KeyCount> expected, IReadOnlyList<KeyCount> actual)
    {
        var duplicates = actual.GroupBy(static r => r).Where(static g => g.Count() > 1).Select(static g => g.Key).Take(5).ToList();
        Assert.True(duplicates.Count == 0, $"rows collected more than once: {string.Join(", ", duplicates)}");
        var missing = expected.Except(actual).Take(5).ToList();
        Assert.True(missing.Count == 0, $"rows missing ({expected.Count - actual.Count} in all): {string.Join(", ", missing)}");
        Assert.Equal(expected.Count, actual.Count);
    }

    /// <summary>Makes writes of collected batches fail once <see cref="Fail"/> is set (other storage keeps working).</summary>
    private sealed class CollectedWriteOutage
    {
        public volatile bool Fail;

        public ICheckpointStorage Wrap(ICheckpointStorage inner) => new Storage(inner, this);

        private sealed class Storage(ICheckpointStorage inner, CollectedWriteOutage outage) : DelegatingCheckpointStorage(inner)
        {
            public override Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken) =>
                outage.Fail && path.Contains("/collected/", StringComparison.Ordinal)
                    ? throw new CheckpointStorageException($"injected outage writing {path}")
                    : base.WriteAsync(path, content, overwrite, cancellationToken);
        }
    }
}
