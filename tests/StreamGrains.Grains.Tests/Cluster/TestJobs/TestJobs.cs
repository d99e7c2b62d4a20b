using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.State;

namespace StreamGrains.Grains.Tests;

/// <summary>Event <c>Sequence</c> of generator split <c>Split</c>.</summary>
[GenerateSerializer, Immutable]
public sealed record SequencedEvent([property: Id(0)] int Split, [property: Id(1)] long Sequence);

/// <summary>What the order checker saw for one split.</summary>
[GenerateSerializer, Immutable]
public sealed record SplitObservation([property: Id(0)] int Split, [property: Id(1)] long Count, [property: Id(2)] long Violations, [property: Id(3)] long Last);

/// <summary>
/// Generates per-split sequences and checks, keyed by split, that each split's records arrive exactly once and in
/// order. Parameters: events, splits, sourceParallelism, checkParallelism.
/// </summary>
public sealed class OrderCheckJob : IStreamJob
{
    public const string Sink = "observations";

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var events = parameters.GetInt64("events", 100_000);
        var splits = parameters.GetInt32("splits", 16);
        builder.Source(new GeneratorSource<SequencedEvent>(i => new SequencedEvent((int)(i % splits), i / splits)) { Count = events, Splits = splits })
            .Uid("sequences")
            .Parallelism(parameters.GetInt32("sourceParallelism", 3))
            .Map(static e => e)
            .KeyBy(static e => e.Split)
            .Process(new OrderChecker())
            .Uid("checker")
            .Parallelism(parameters.GetInt32("checkParallelism", 2))
            .Sink(CollectSink<SplitObservation>.Upsert(Sink, static o => o.Split))
            .Uid("out");
    }

    private sealed class OrderChecker : KeyedProcessFunction<int, SequencedEvent, SplitObservation>
    {
        private static readonly ValueStateDescriptor<SplitObservation> Seen = new("seen");
        private IValueState<SplitObservation>? _seen;

        public override void Open(IKeyedRuntimeContext context) => _seen = context.GetValueState(Seen);

        public override void ProcessElement(SequencedEvent value, IKeyedProcessContext<int> context, ICollector<SplitObservation> output)
        {
            var seen = _seen!.Get() ?? new SplitObservation(value.Split, 0, 0, -1);
            var violation = value.Sequence == seen.Last + 1 ? 0 : 1;
            var next = new SplitObservation(value.Split, seen.Count + 1, seen.Violations + violation, value.Sequence);
            _seen.Update(next);
            output.Collect(next);
        }
    }
}

/// <summary>A source feeding a deliberately slow sink. Parameters: events, delayMs (per flushed batch).</summary>
public sealed class SlowSinkJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var events = parameters.GetInt64("events", 20_000);
        var delay = TimeSpan.FromMilliseconds(parameters.GetInt32("delayMs", 2));
        builder.Source(new GeneratorSource<long>(static i => i) { Count = events })
            .Uid("numbers")
            .Parallelism(2)
            .Map(static i => i * 2)
            .Sink(new SlowSink(delay))
            .Uid("slow")
            .Parallelism(1);
    }

    private sealed class SlowSink(TimeSpan delay) : ISink<long>
    {
        public ISinkWriter<long> CreateWriter(SinkContext context) => new Writer(delay);

        private sealed class Writer(TimeSpan delay) : ISinkWriter<long>
        {
            private int _buffered;

            public void Write(long record) => _buffered++;

            public async ValueTask FlushAsync(CancellationToken cancellationToken)
            {
                if (_buffered > 0)
                {
                    _buffered = 0;
                    await Task.Delay(delay, cancellationToken);
                }
            }

            public ValueTask EndOfInputAsync(CancellationToken cancellationToken) => FlushAsync(cancellationToken);

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}

/// <summary>A map that throws on record <c>failAt</c> of subtask 0. Parameters: events, failAt.</summary>
public sealed class FailingJob : IStreamJob
{
    public const string Message = "record 1234 is poisoned";

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var failAt = parameters.GetInt64("failAt", 1234);
        builder.Source(new GeneratorSource<long>(static i => i) { Count = parameters.GetInt64("events", 100_000) })
            .Uid("numbers")
            .Map(i => i == failAt ? throw new InvalidOperationException(Message) : i)
            .Uid("explode")
            .Sink(new DiscardSink<long>())
            .Uid("out");
    }
}

/// <summary>An unbounded, rate-limited source for cancel tests.</summary>
public sealed class EndlessJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters) =>
        builder.Source(new GeneratorSource<long>(static i => i) { RecordsPerSecond = 10_000 })
            .Uid("numbers")
            .KeyBy(static i => i % 100)
            .Process(new LongCountPerKey())
            .Uid("counts")
            .Sink(new DiscardSink<long>())
            .Uid("out");
}

/// <summary>Invalid definitions for validation tests, selected by the "case" parameter.</summary>
public sealed class InvalidJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var source = builder.Source(new GeneratorSource<long>(static i => i) { Count = 10 });
        switch (parameters.GetString("case", string.Empty))
        {
            case "duplicate-uid":
                source.Uid("same").Map(static i => i).Uid("same").Sink(new DiscardSink<long>()).Uid("out");
                break;
            case "stateful-without-uid":
                source.Uid("numbers").KeyBy(static i => i).Process(new Noop()).Sink(new DiscardSink<long>()).Uid("out");
                break;
            case "operator-parallelism":
                source.Uid("numbers").Map(static i => i).Uid("wide").Parallelism(500).Sink(new DiscardSink<long>()).Uid("out");
                break;
            default:
                source.Uid("numbers").Sink(new DiscardSink<long>()).Uid("out");
                break;
        }
    }

    private sealed class Noop : KeyedProcessFunction<long, long, long>
    {
        public override void ProcessElement(long value, IKeyedProcessContext<long> context, ICollector<long> output) => output.Collect(value);
    }
}

/// <summary>Counts records per key in value state "count" and emits each new count.</summary>
public sealed class LongCountPerKey : KeyedProcessFunction<long, long, long>
{
    private IValueState<long>? _count;

    public override void Open(IKeyedRuntimeContext context) => _count = context.GetValueState(new ValueStateDescriptor<long>("count"));

    public override void ProcessElement(long value, IKeyedProcessContext<long> context, ICollector<long> output)
    {
        var count = _count!.Get() + 1;
        _count.Update(count);
        output.Collect(count);
    }
}
