using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Grains.Channels;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

public sealed class ChannelTests
{
    [Fact]
    public async Task Batches_delivered_late_and_twice_are_processed_once_and_in_order()
    {
        const long Events = 200_000;
        const int Splits = 16;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 3,
            ConfigureServices = static services => services.AddSingleton<IBatchTransport, ChaosTransport>(),
        });
        var parameters = JobParameters.Empty.With("events", Events).With("splits", Splits);

        // Small batches so that there are many of them to reorder and duplicate.
        var jobId = await cluster.SubmitAsync<OrderCheckJob>(parameters, configure: static s => s with { Channels = s.Channels with { BatchSize = 64 } });
        var status = await cluster.Client.WaitForCompletionAsync(jobId, TimeSpan.FromMinutes(3));

        var observations = await cluster.Client.ReadCollectedAsync<SplitObservation>(jobId, OrderCheckJob.Sink);
        Assert.Equal(Splits, observations.Count);
        foreach (var observation in observations)
        {
            Assert.Equal(0, observation.Violations);
            Assert.Equal(Events / Splits, observation.Count);
            Assert.Equal((Events / Splits) - 1, observation.Last);
        }

        // The chaos must actually have happened, or this test proves nothing.
        Assert.True(status.Subtasks.Sum(static s => s.DuplicateBatchesDropped) > 0, "no duplicate batch reached a receiver");
        Assert.True(status.Subtasks.Sum(static s => s.BatchesReordered) > 0, "no batch arrived out of order");
    }

    [Fact]
    public async Task With_a_slow_sink_in_flight_batches_per_channel_never_exceed_the_credit_limit()
    {
        const int Credits = 2;
        const long Events = 20_000;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 2 });
        var parameters = JobParameters.Empty.With("events", Events).With("delayMs", 2);

        var jobId = await cluster.SubmitAsync<SlowSinkJob>(parameters, configure: static s => s with { Channels = s.Channels with { BatchSize = 100, CreditsPerChannel = Credits } });
        var status = await cluster.Client.WaitForCompletionAsync(jobId, TimeSpan.FromMinutes(3));

        var sink = Assert.Single(status.Subtasks, static s => s.Chain.EndsWith("slow", StringComparison.Ordinal));
        Assert.Equal(Events, sink.RecordsOut);
        Assert.InRange(sink.MaxInFlightBatchesPerInputChannel, 1, Credits);
        var senders = status.Subtasks.Where(static s => s.IsSource).ToList();
        Assert.Equal(2, senders.Count);
        Assert.All(senders, s => Assert.InRange(s.MaxUnacknowledgedBatchesPerOutputChannel, 1, Credits));

        // The sink is the bottleneck, so the senders must have used up their credit (flow control engaged).
        Assert.Contains(senders, s => s.MaxUnacknowledgedBatchesPerOutputChannel == Credits);
    }
}
