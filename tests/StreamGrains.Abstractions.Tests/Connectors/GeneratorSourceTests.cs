using StreamGrains.Connectors;

namespace StreamGrains.Abstractions.Tests;

public sealed class GeneratorSourceTests
{
    private const int MaxParallelism = 128;

    [Theory]
    [InlineData(0L, 4, 2)]
    [InlineData(1L, 1, 1)]
    [InlineData(5L, 8, 3)]
    [InlineData(7L, 7, 7)]
    [InlineData(100L, 4, 2)]
    [InlineData(100L, 1, 3)]
    [InlineData(1000L, 16, 3)]
    [InlineData(997L, 13, 5)]
    [InlineData(10_000L, 128, 128)]
    public async Task Bounded_source_emits_every_index_exactly_once_over_all_readers(long count, int splits, int parallelism)
    {
        var source = new GeneratorSource<long>(static i => i) { Count = count, Splits = splits };
        var readers = CreateReaders(source, Enumerate(source, parallelism), parallelism);
        var emitted = new List<long>();

        for (var subtask = 0; subtask < parallelism; subtask++)
        {
            var output = new ListOutput();
            await DrainAsync(readers[subtask], output, maxRecords: 13);

            // A reader only emits the indices of its own splits (split k of S produces k, k + S, ...).
            var own = Enumerable.Range(0, splits).Where(k => k % parallelism == subtask).ToHashSet();
            Assert.All(output.Records, i => Assert.Contains((int)(i % splits), own));
            emitted.AddRange(output.Records);
        }

        AssertExactlyOnce(count, emitted);
    }

    [Fact]
    public async Task Splits_default_to_the_max_parallelism()
    {
        var source = new GeneratorSource<long>(static i => i) { Count = 1000 };

        var splits = Enumerate(source, parallelism: 3);

        Assert.Equal(MaxParallelism, splits.Count);
        Assert.Equal(splits.Count, splits.Select(static s => s.Id).Distinct().Count());
        Assert.All(splits, static s => Assert.Equal(0, s.Position));
        var emitted = new List<long>();
        foreach (var reader in CreateReaders(source, splits, 3))
        {
            var output = new ListOutput();
            await DrainAsync(reader, output, maxRecords: 100);
            emitted.AddRange(output.Records);
        }

        AssertExactlyOnce(1000, emitted);
    }

    [Fact]
    public async Task Records_are_generate_of_their_index()
    {
        var source = new GeneratorSource<string>(static i => $"event-{i}-{DeterministicRandom.NextInt64(7, i, 1000)}") { Count = 50, Splits = 3 };
        var output = new ListOutput<string>();

        foreach (var reader in CreateReaders(source, Enumerate(source, 1), 1))
        {
            await DrainAsync(reader, output, maxRecords: 1000);
        }

        var expected = Enumerable.Range(0, 50).Select(static i => $"event-{i}-{DeterministicRandom.NextInt64(7, i, 1000)}").Order(StringComparer.Ordinal);
        Assert.Equal(expected, output.Records.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(1, 500L, 7, 3, 3)]
    [InlineData(2, 500L, 7, 3, 2)]
    [InlineData(3, 1000L, 16, 4, 7)]
    [InlineData(4, 64L, 128, 5, 1)]
    [InlineData(5, 3L, 8, 2, 4)]
    public async Task Readers_restored_from_snapshot_positions_continue_without_loss_or_duplication(int seed, long count, int splitCount, int parallelism, int newParallelism)
    {
        var random = new Random(seed);
        var source = new GeneratorSource<long>(static i => i) { Count = count, Splits = splitCount };
        var readers = CreateReaders(source, Enumerate(source, parallelism), parallelism);
        var beforeSnapshot = new List<long>();

        // Read part of the input with random poll sizes.
        for (var poll = 0; poll < 10; poll++)
        {
            var output = new ListOutput();
            await readers[random.Next(parallelism)].PollAsync(output, random.Next(1, 40), CancellationToken.None);
            beforeSnapshot.AddRange(output.Records);
        }

        var snapshot = readers.SelectMany(static r => r.SnapshotSplits()).ToList();
        Assert.Equal(splitCount, snapshot.Count);
        Assert.Equal(beforeSnapshot.Count, snapshot.Sum(static s => s.Position));

        // Records emitted after the snapshot are lost with the failed attempt.
        foreach (var reader in readers)
        {
            await reader.PollAsync(new ListOutput(), 25, CancellationToken.None);
            await reader.DisposeAsync();
        }

        // Restore, possibly with another parallelism: snapshot splits are assigned round-robin again.
        var restored = CreateReaders(source, snapshot, newParallelism);
        var afterRestore = new List<long>();
        foreach (var reader in restored)
        {
            var output = new ListOutput();
            await DrainAsync(reader, output, maxRecords: random.Next(1, 50));
            afterRestore.AddRange(output.Records);
        }

        Assert.Empty(beforeSnapshot.Intersect(afterRestore));
        AssertExactlyOnce(count, [.. beforeSnapshot, .. afterRestore]);
    }

    [Fact]
    public async Task Snapshot_positions_count_the_records_emitted_per_split()
    {
        var source = new GeneratorSource<long>(static i => i) { Count = 100, Splits = 4 };
        var reader = CreateReaders(source, Enumerate(source, 1), 1).Single();
        var output = new ListOutput();

        await reader.PollAsync(output, 30, CancellationToken.None);

        var positions = reader.SnapshotSplits().ToDictionary(static s => s.Id, static s => s.Position);
        var emittedPerSplit = Enumerable.Range(0, 4).Select(k => (long)output.Records.Count(i => i % 4 == k)).ToList();
        Assert.Equal(30, output.Records.Count);
        Assert.Equal(emittedPerSplit, Enumerate(source, 1).Select(s => positions[s.Id]));
    }

    [Fact]
    public async Task Rate_limited_reader_emits_no_more_than_the_rate_allows()
    {
        const double Rate = 8;
        var clock = new ManualTimeProvider();
        var source = new GeneratorSource<long>(static i => i) { RecordsPerSecond = Rate, Splits = 4 };
        var reader = CreateReaders(source, Enumerate(source, 1), 1, clock).Single();
        var output = new ListOutput();
        var random = new Random(77);
        var waits = 0;

        for (var step = 0; step < 200; step++)
        {
            var before = output.Records.Count;
            var result = await reader.PollAsync(output, 1000, CancellationToken.None);

            // Allowed so far: one record at the start, then one per 1/Rate seconds.
            var allowed = (clock.Elapsed.Ticks * (long)Rate / TimeSpan.TicksPerSecond) + 1;
            Assert.InRange(output.Records.Count, allowed - 1, allowed);
            if (result.Status == SourceStatus.NothingAvailable)
            {
                waits++;
                Assert.Equal(before, output.Records.Count);
                Assert.True(result.RetryAfter > TimeSpan.Zero, $"RetryAfter was {result.RetryAfter}");

                // Waiting as told is enough to get a record.
                if (random.Next(2) == 0)
                {
                    clock.Advance(result.RetryAfter);
                    var more = await reader.PollAsync(output, 1000, CancellationToken.None);
                    Assert.Equal(SourceStatus.MoreAvailable, more.Status);
                    Assert.True(output.Records.Count > before, "no record after waiting RetryAfter");
                }
            }
            else
            {
                Assert.Equal(SourceStatus.MoreAvailable, result.Status);
            }

            clock.Advance(TimeSpan.FromMilliseconds(random.Next(0, 400)));
        }

        Assert.True(waits > 10, $"the rate limit was hit only {waits} times");
        Assert.Equal(output.Records.Count, output.Records.Distinct().Count());
    }

    [Fact]
    public async Task Rate_limited_reader_returns_nothing_available_when_polled_again_at_the_same_instant()
    {
        var clock = new ManualTimeProvider();
        var source = new GeneratorSource<long>(static i => i) { RecordsPerSecond = 10, Count = 1000, Splits = 2 };
        var reader = CreateReaders(source, Enumerate(source, 1), 1, clock).Single();
        var output = new ListOutput();

        await reader.PollAsync(output, 100, CancellationToken.None);
        var emitted = output.Records.Count;
        var result = await reader.PollAsync(output, 100, CancellationToken.None);

        Assert.Equal(1, emitted);
        Assert.Equal(SourceStatus.NothingAvailable, result.Status);
        Assert.InRange(result.RetryAfter, TimeSpan.FromTicks(1), TimeSpan.FromSeconds(1));
        Assert.Equal(emitted, output.Records.Count);

        clock.Advance(TimeSpan.FromSeconds(2));
        await reader.PollAsync(output, 100, CancellationToken.None);

        Assert.Equal(21, output.Records.Count);
    }

    [Fact]
    public async Task The_rate_is_shared_by_the_readers_in_proportion_to_their_splits()
    {
        const double Rate = 100;
        var clock = new ManualTimeProvider();
        var source = new GeneratorSource<long>(static i => i) { RecordsPerSecond = Rate, Splits = 4 };
        var splits = Enumerate(source, 3);
        var readers = CreateReaders(source, splits, 3, clock);
        var outputs = readers.Select(static _ => new ListOutput()).ToArray();

        for (var step = 0; step < 50; step++)
        {
            for (var i = 0; i < readers.Count; i++)
            {
                await readers[i].PollAsync(outputs[i], 1_000_000, CancellationToken.None);
            }

            clock.Advance(TimeSpan.FromMilliseconds(100));
        }

        // Reader 0 has splits 0 and 3, readers 1 and 2 one split each: half and a quarter each of the total rate.
        var seconds = clock.Elapsed.TotalSeconds - 0.1;
        var total = outputs.Sum(static o => o.Records.Count);
        Assert.InRange(total, (Rate * seconds) - 3, (Rate * seconds) + 3);
        Assert.InRange(outputs[0].Records.Count, (Rate / 2 * seconds) - 1, (Rate / 2 * seconds) + 1);
        Assert.InRange(outputs[1].Records.Count, (Rate / 4 * seconds) - 1, (Rate / 4 * seconds) + 1);
        Assert.InRange(outputs[2].Records.Count, (Rate / 4 * seconds) - 1, (Rate / 4 * seconds) + 1);
    }

    [Fact]
    public async Task The_unthrottled_prefix_is_emitted_at_once_and_the_rate_applies_after_it()
    {
        var clock = new ManualTimeProvider();
        var source = new GeneratorSource<long>(static i => i) { RecordsPerSecond = 10, UnthrottledPrefix = 1000, Splits = 3 };
        var readers = CreateReaders(source, Enumerate(source, 2), 2, clock);
        var outputs = readers.Select(static _ => new ListOutput()).ToArray();

        // Without the clock moving, the readers emit exactly the prefix, each index once, then one record each (the rate's first).
        for (var round = 0; round < 100; round++)
        {
            for (var i = 0; i < readers.Count; i++)
            {
                await readers[i].PollAsync(outputs[i], 64, CancellationToken.None);
            }
        }

        var prefix = outputs.SelectMany(static o => o.Records).Where(static i => i < 1000).ToList();
        AssertExactlyOnce(1000, prefix);
        var afterPrefix = outputs.Sum(static o => o.Records.Count(static i => i >= 1000));
        Assert.InRange(afterPrefix, 1, 2);

        clock.Advance(TimeSpan.FromSeconds(10));
        for (var i = 0; i < readers.Count; i++)
        {
            await readers[i].PollAsync(outputs[i], 1_000_000, CancellationToken.None);
        }

        Assert.InRange(outputs.Sum(static o => o.Records.Count(static i => i >= 1000)), 95, 105);
    }

    [Fact]
    public async Task Reader_without_splits_ends_at_once()
    {
        var source = new GeneratorSource<long>(static i => i) { Count = 10, Splits = 2 };
        var readers = CreateReaders(source, Enumerate(source, 3), 3);
        var output = new ListOutput();

        var result = await readers[2].PollAsync(output, 10, CancellationToken.None);

        Assert.Equal(SourceStatus.EndOfInput, result.Status);
        Assert.Empty(output.Records);
    }

    [Fact]
    public void Boundedness_follows_count()
    {
        Assert.True(new GeneratorSource<long>(static i => i) { Count = 0 }.IsBounded);
        Assert.False(new GeneratorSource<long>(static i => i).IsBounded);
    }

    [Fact]
    public void Invalid_settings_are_reported_when_splits_are_enumerated()
    {
        var context = new SplitEnumerationContext(1, MaxParallelism, JobParameters.Empty);

        Assert.Throws<InvalidOperationException>(() => new GeneratorSource<long>(static i => i) { Count = -1 }.EnumerateSplits(context));
        Assert.Throws<InvalidOperationException>(() => new GeneratorSource<long>(static i => i) { RecordsPerSecond = 0 }.EnumerateSplits(context));
        Assert.Throws<InvalidOperationException>(() => new GeneratorSource<long>(static i => i) { UnthrottledPrefix = -1 }.EnumerateSplits(context));
        Assert.Throws<InvalidOperationException>(() => new GeneratorSource<long>(static i => i) { Splits = 0 }.EnumerateSplits(context));
    }

    [Theory]
    [InlineData("3")]
    [InlineData("gen-3")]
    [InlineData("gen-4-of-4")]
    [InlineData("gen-x-of-4")]
    [InlineData("topic-1-of-2")]
    public void Foreign_split_ids_are_refused(string id)
    {
        var source = new GeneratorSource<long>(static i => i);

        Assert.Throws<FormatException>(() => source.CreateReader(Context([new SourceSplit(id, 0)], 0, 1, TimeProvider.System)));
    }

    private static List<SourceSplit> Enumerate<T>(GeneratorSource<T> source, int parallelism) =>
        [.. source.EnumerateSplits(new SplitEnumerationContext(parallelism, MaxParallelism, JobParameters.Empty))];

    /// <summary>Creates one reader per subtask, split k going to subtask k mod p, as the job grain does.</summary>
    private static List<ISourceReader<T>> CreateReaders<T>(GeneratorSource<T> source, IReadOnlyList<SourceSplit> splits, int parallelism, TimeProvider? time = null) =>
        [.. Enumerable.Range(0, parallelism).Select(subtask => source.CreateReader(Context(
            [.. splits.Where((_, k) => k % parallelism == subtask)],
            subtask,
            parallelism,
            time ?? TimeProvider.System)))];

    private static SourceReaderContext Context(IReadOnlyList<SourceSplit> splits, int subtask, int parallelism, TimeProvider time) => new()
    {
        OperatorUid = "gen",
        SubtaskIndex = subtask,
        Parallelism = parallelism,
        Splits = splits,
        Time = time,
    };

    private static async Task DrainAsync<T>(ISourceReader<T> reader, ListOutput<T> output, int maxRecords)
    {
        for (var poll = 0; poll < 100_000; poll++)
        {
            var before = output.Records.Count;
            var result = await reader.PollAsync(output, maxRecords, CancellationToken.None);
            Assert.InRange(output.Records.Count - before, 0, maxRecords);
            if (result.Status == SourceStatus.EndOfInput)
            {
                return;
            }

            Assert.Equal(SourceStatus.MoreAvailable, result.Status);
        }

        Assert.Fail("the reader did not reach the end of its input");
    }

    private static void AssertExactlyOnce(long count, List<long> emitted)
    {
        var seen = new bool[count];
        foreach (var index in emitted)
        {
            Assert.InRange(index, 0, count - 1);
            Assert.False(seen[index], $"index {index} was emitted twice");
            seen[index] = true;
        }

        Assert.Equal(count, emitted.Count);
    }

    private class ListOutput<T> : ISourceOutput<T>
    {
        public List<T> Records { get; } = [];

        public void Emit(T record) => Records.Add(record);
    }

    private sealed class ListOutput : ListOutput<long>
    {
    }
}
