using System.Diagnostics;
using StreamGrains.Client;
using StreamGrains.Connectors;
using StreamGrains.Grains;

namespace StreamGrains.Benchmarks.Backpressure;

internal sealed record BackpressureSettings(long Events, int SinkRecordsPerSecond, int Credits, int BatchSize);

/// <summary>
/// A fast source into a sink throttled to a fixed rate. Memory must not grow with the number of records: the same job
/// runs with N and 4N events, and the peak working set of both phases is reported with their ratio, next to the
/// largest number of batches seen in flight on one channel (which must not exceed the credit limit).
/// </summary>
internal static class BackpressureBenchmark
{
    public static async Task<int> RunAsync(BackpressureSettings settings, CancellationToken cancellationToken)
    {
        var common = new Dictionary<string, object?>
        {
            ["benchmark"] = "backpressure",
            ["sink_records_per_s"] = settings.SinkRecordsPerSecond,
            ["credits_per_channel"] = settings.Credits,
            ["batch_size"] = settings.BatchSize,
        };
        var small = await RunPhaseAsync(settings, settings.Events, cancellationToken);
        Report.Line(new Dictionary<string, object?>(common) { ["phase"] = "run", ["events"] = settings.Events, ["max_working_set_mb"] = small.WorkingSetMb, ["max_managed_heap_mb"] = small.HeapMb, ["max_in_flight_batches_per_channel"] = small.MaxInFlight, ["seconds"] = small.Seconds });
        var large = await RunPhaseAsync(settings, settings.Events * 4, cancellationToken);
        Report.Line(new Dictionary<string, object?>(common) { ["phase"] = "run", ["events"] = settings.Events * 4, ["max_working_set_mb"] = large.WorkingSetMb, ["max_managed_heap_mb"] = large.HeapMb, ["max_in_flight_batches_per_channel"] = large.MaxInFlight, ["seconds"] = large.Seconds });
        Report.Line(new Dictionary<string, object?>(common)
        {
            ["phase"] = "summary",
            ["events_small"] = settings.Events,
            ["events_large"] = settings.Events * 4,
            ["max_in_flight_batches_per_channel"] = Math.Max(small.MaxInFlight, large.MaxInFlight),
            ["credit_limit_held"] = Math.Max(small.MaxInFlight, large.MaxInFlight) <= settings.Credits,
            ["max_managed_heap_mb_small"] = small.HeapMb,
            ["max_managed_heap_mb_large"] = large.HeapMb,
            ["managed_heap_growth_ratio"] = Report.Round(large.HeapMb / small.HeapMb),
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }

    private static async Task<(double WorkingSetMb, double HeapMb, int MaxInFlight, double Seconds)> RunPhaseAsync(BackpressureSettings settings, long events, CancellationToken cancellationToken)
    {
        await using var cluster = await EmbeddedCluster.StartAsync(cancellationToken: cancellationToken);
        var client = new StreamGrainsClient(cluster.Grains);
        GC.Collect();
        var sampler = new MemorySampler(TimeSpan.FromMilliseconds(50));
        var watch = Stopwatch.StartNew();
        var jobId = await client.SubmitAsync(
            new JobSpec
            {
                JobType = typeof(ThrottledSinkJob).FullName!,
                Parallelism = 2,
                Parameters = JobParameters.Empty.With("events", events).With("rate", settings.SinkRecordsPerSecond),
                Channels = ChannelSettings.Default with { CreditsPerChannel = settings.Credits, BatchSize = settings.BatchSize },
            },
            cancellationToken);
        var status = await client.WaitForCompletionAsync(jobId, TimeSpan.FromMinutes(30), cancellationToken: cancellationToken);
        var seconds = watch.Elapsed.TotalSeconds;
        await sampler.DisposeAsync();
        var sink = status.Subtasks.Single(static s => s.Chain.EndsWith("throttled", StringComparison.Ordinal));
        if (sink.RecordsOut != events)
        {
            throw new InvalidOperationException($"The sink wrote {sink.RecordsOut} records, expected {events}.");
        }

        return (Report.Round(sampler.MaxWorkingSetMb, 1), Report.Round(sampler.MaxManagedHeapMb, 1), status.Subtasks.Max(static s => s.MaxInFlightBatchesPerInputChannel), Report.Round(seconds, 2));
    }
}

/// <summary>A generator at full speed into a sink that writes at most <c>rate</c> records per second (parallelism 1).</summary>
public sealed class ThrottledSinkJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(parameters);
        var rate = parameters.GetDouble("rate", 100_000);
        builder.Source(new GeneratorSource<string>(static i => $"record-{i}") { Count = parameters.GetInt64("events", 1_000_000) })
            .Uid("records")
            .Map(static s => s.ToUpperInvariant())
            .Sink(new ThrottledSink(rate))
            .Uid("throttled")
            .Parallelism(1);
    }

    private sealed class ThrottledSink(double rate) : ISink<string>
    {
        public ISinkWriter<string> CreateWriter(SinkContext context) => new Writer(rate);

        private sealed class Writer(double rate) : ISinkWriter<string>
        {
            private readonly Stopwatch _clock = Stopwatch.StartNew();
            private long _written;

            public void Write(string record) => _written++;

            public async ValueTask FlushAsync(CancellationToken cancellationToken)
            {
                var due = TimeSpan.FromSeconds(_written / rate) - _clock.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, cancellationToken);
                }
            }

            public ValueTask EndOfInputAsync(CancellationToken cancellationToken) => FlushAsync(cancellationToken);

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
