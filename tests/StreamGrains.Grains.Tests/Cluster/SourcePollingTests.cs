using System.Collections.Concurrent;
using System.Diagnostics;
using StreamGrains.Connectors;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

public sealed class SourcePollingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_source_that_asks_to_be_polled_again_in_under_a_millisecond_is_not_polled_in_a_busy_loop()
    {
        var name = $"sub-ms-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 1 });
        var jobId = await cluster.SubmitAsync<SubMillisecondWaitJob>(JobParameters.Empty.With("name", name), parallelism: 1);
        await cluster.Client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        var polls = SubMillisecondWaitJob.Polls(name);
        await polls.Started.Task.WaitAsync(Timeout);

        var before = polls.Count;
        var watch = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(1)); // a window of polling to count, not synchronization
        var perSecond = (polls.Count - before) / watch.Elapsed.TotalSeconds;
        await cluster.Client.CancelAsync(jobId, CancellationToken.None);

        // Each poll asks to wait 0.3 ms. Waits last at least one whole millisecond, so at most 1,000 polls a second (about
        // 250 here); when the timer truncated the wait to 0 ms the loop ran without waiting (2,600 a second here, far more
        // in a busy process).
        Assert.True(perSecond > 10, $"the source was polled {perSecond:F0} times a second; it is not being polled at all");
        Assert.True(perSecond < 1_500, $"the source was polled {perSecond:F0} times a second: a busy loop");
    }
}

/// <summary>A source that never has anything and asks to be polled again in 0.3 ms. Parameters: name.</summary>
public sealed class SubMillisecondWaitJob : IStreamJob
{
    private static readonly ConcurrentDictionary<string, PollCounter> Counters = new();

    public static PollCounter Polls(string name) => Counters.GetOrAdd(name, static _ => new PollCounter());

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var counter = Polls(parameters.GetString("name", "sub-ms"));
        builder.Source(new WaitingSource(counter))
            .Uid("waiting")
            .Parallelism(1)
            .Sink(new DiscardSink<long>())
            .Uid("out");
    }

    public sealed class PollCounter
    {
        private long _count;

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Count => Interlocked.Read(ref _count);

        public void Polled()
        {
            Interlocked.Increment(ref _count);
            Started.TrySetResult();
        }
    }

    private sealed class WaitingSource(PollCounter counter) : ISource<long>
    {
        public bool IsBounded => false;

        public IReadOnlyList<SourceSplit> EnumerateSplits(SplitEnumerationContext context) => [new SourceSplit("0", 0)];

        public ISourceReader<long> CreateReader(SourceReaderContext context) => new Reader(counter, context.Splits);

        private sealed class Reader(PollCounter counter, IReadOnlyList<SourceSplit> splits) : ISourceReader<long>
        {
            public ValueTask<SourcePollResult> PollAsync(ISourceOutput<long> output, int maxRecords, CancellationToken cancellationToken)
            {
                counter.Polled();
                return ValueTask.FromResult(SourcePollResult.Wait(TimeSpan.FromMilliseconds(0.3)));
            }

            public IReadOnlyList<SourceSplit> SnapshotSplits() => splits;

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
