using System.Globalization;

namespace StreamGrains.Connectors;

/// <summary>
/// A deterministic source: event <c>i</c> is <c>generate(i)</c>. Bounded (<see cref="Count"/> events) or unbounded,
/// optionally rate-limited, and replayable from any position.
/// </summary>
/// <remarks>
/// The index space is cut into <see cref="Splits"/> splits: split <c>s</c> of <c>n</c> produces indices
/// <c>s, s + n, s + 2n, ...</c>, and its position is how many of them were emitted. Splits are spread over the
/// subtasks, so the set of events does not depend on the parallelism. <c>generate</c> must be a pure function of the
/// index (use <see cref="DeterministicRandom"/> for seeded randomness).
/// </remarks>
public sealed class GeneratorSource<T> : ISource<T>
{
    private const string SplitPrefix = "gen-";

    private readonly Func<long, T> _generate;

    /// <summary>Creates a generator of <c>generate(0), generate(1), ...</c>.</summary>
    public GeneratorSource(Func<long, T> generate)
    {
        ArgumentNullException.ThrowIfNull(generate);
        _generate = generate;
    }

    /// <summary>Number of events; unbounded when null.</summary>
    public long? Count { get; init; }

    /// <summary>Total rate over all subtasks, in events per second; unlimited when null.</summary>
    public double? RecordsPerSecond { get; init; }

    /// <summary>
    /// Events with an index below this are emitted at full speed before <see cref="RecordsPerSecond"/> applies (to load
    /// state quickly, then update it at a steady rate). Default 0.
    /// </summary>
    public long UnthrottledPrefix { get; init; }

    /// <summary>Number of splits; the job's max parallelism when null.</summary>
    public int? Splits { get; init; }

    /// <inheritdoc />
    public bool IsBounded => Count is not null;

    /// <inheritdoc />
    public IReadOnlyList<SourceSplit> EnumerateSplits(SplitEnumerationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (Count is < 0)
        {
            throw new InvalidOperationException($"GeneratorSource.Count must not be negative, was {Count}.");
        }

        if (UnthrottledPrefix < 0)
        {
            throw new InvalidOperationException($"GeneratorSource.UnthrottledPrefix must not be negative, was {UnthrottledPrefix}.");
        }

        if (RecordsPerSecond is <= 0)
        {
            throw new InvalidOperationException($"GeneratorSource.RecordsPerSecond must be positive, was {RecordsPerSecond}.");
        }

        var splits = Splits ?? context.MaxParallelism;
        if (splits < 1)
        {
            throw new InvalidOperationException($"GeneratorSource.Splits must be at least 1, was {splits}.");
        }

        return Enumerable.Range(0, splits).Select(s => new SourceSplit(SplitId(s, splits), 0)).ToArray();
    }

    /// <inheritdoc />
    public ISourceReader<T> CreateReader(SourceReaderContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var splits = context.Splits.Select(ParseSplit).ToArray();
        double? rate = null;
        if (RecordsPerSecond is { } total && splits.Length > 0)
        {
            rate = total * splits.Length / splits[0].Total;
        }

        return new Reader(this, splits, rate, context.Time);
    }

    private static string SplitId(int split, int total) => string.Create(CultureInfo.InvariantCulture, $"{SplitPrefix}{split}-of-{total}");

    private ReaderSplit ParseSplit(SourceSplit split)
    {
        var id = split.Id;
        var of = id.IndexOf("-of-", StringComparison.Ordinal);
        if (!id.StartsWith(SplitPrefix, StringComparison.Ordinal) || of < 0
            || !int.TryParse(id.AsSpan(SplitPrefix.Length, of - SplitPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var number)
            || !int.TryParse(id.AsSpan(of + 4), NumberStyles.None, CultureInfo.InvariantCulture, out var total)
            || number >= total)
        {
            throw new FormatException($"'{id}' is not a generator split id.");
        }

        long end = long.MaxValue;
        if (Count is { } count)
        {
            end = PositionsBelow(count, number, total);
        }

        return new ReaderSplit(id, number, total, end, Math.Min(end, PositionsBelow(UnthrottledPrefix, number, total))) { Position = split.Position };
    }

    /// <summary>How many indices <c>number, number + total, ...</c> are below <paramref name="limit"/>.</summary>
    private static long PositionsBelow(long limit, int number, int total) => limit > number ? ((limit - number - 1) / total) + 1 : 0;

    private sealed class ReaderSplit(string id, int number, int total, long end, long unthrottledEnd)
    {
        public string Id { get; } = id;

        public int Number { get; } = number;

        public int Total { get; } = total;

        /// <summary>Position after the split's last event.</summary>
        public long End { get; } = end;

        public long Position { get; set; }

        /// <summary>Position after the split's last event of the unthrottled prefix.</summary>
        public long UnthrottledEnd { get; } = unthrottledEnd;

        public bool Exhausted => Position >= End;
    }

    private sealed class Reader(GeneratorSource<T> source, ReaderSplit[] splits, double? rate, TimeProvider time) : ISourceReader<T>
    {
        private const int Chunk = 64;
        private long _emitted;
        private long _startTimestamp = -1;
        private int _next;

        public ValueTask<SourcePollResult> PollAsync(ISourceOutput<T> output, int maxRecords, CancellationToken cancellationToken)
        {
            var budget = maxRecords;
            var prefix = rate is not null && splits.Any(static s => s.Position < s.UnthrottledEnd);
            if (rate is { } perSecond && !prefix)
            {
                if (_startTimestamp < 0)
                {
                    _startTimestamp = time.GetTimestamp();
                }

                var allowed = (long)(time.GetElapsedTime(_startTimestamp).TotalSeconds * perSecond) + 1;
                if (allowed <= _emitted)
                {
                    var wait = TimeSpan.FromSeconds((_emitted - allowed + 1) / perSecond);
                    return ValueTask.FromResult(AllExhausted() ? SourcePollResult.End : SourcePollResult.Wait(wait));
                }

                budget = (int)Math.Min(budget, allowed - _emitted);
            }

            var checkedSplits = 0;
            while (budget > 0 && checkedSplits < splits.Length)
            {
                var split = splits[_next];
                if (split.Exhausted)
                {
                    checkedSplits++;
                    _next = (_next + 1) % splits.Length;
                    continue;
                }

                var n = (int)Math.Min(Math.Min(budget, Chunk), (prefix ? split.UnthrottledEnd : split.End) - split.Position);
                if (n == 0)
                {
                    checkedSplits++;
                    _next = (_next + 1) % splits.Length;
                    continue;
                }

                checkedSplits = 0;

                for (var i = 0; i < n; i++)
                {
                    output.Emit(source._generate(split.Number + (split.Position * split.Total)));
                    split.Position++;
                }

                budget -= n;
                _emitted += prefix ? 0 : n;
                _next = (_next + 1) % splits.Length;
            }

            return ValueTask.FromResult(AllExhausted() ? SourcePollResult.End : SourcePollResult.More);
        }

        public IReadOnlyList<SourceSplit> SnapshotSplits() => splits.Select(static s => new SourceSplit(s.Id, s.Position)).ToArray();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        private bool AllExhausted()
        {
            foreach (var split in splits)
            {
                if (!split.Exhausted)
                {
                    return false;
                }
            }

            return true;
        }
    }
}
