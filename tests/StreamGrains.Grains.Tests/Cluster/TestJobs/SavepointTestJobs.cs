using System.Collections.Concurrent;
using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.State;

namespace StreamGrains.Grains.Tests;

[GenerateSerializer, Immutable]
public sealed record Reading([property: Id(0)] long Key, [property: Id(1)] long Index, [property: Id(2)] int Value)
{
    public static Reading Generate(long keys, long index) => new(index % keys, index, (int)((ulong)(index * 2654435761L) % 1000));
}

[GenerateSerializer, Immutable]
public sealed record Output([property: Id(0)] string Kind, [property: Id(1)] long Key, [property: Id(2)] long A, [property: Id(3)] long B, [property: Id(4)] long C, [property: Id(5)] string D);

/// <summary>What the state of one key should be after a prefix of the readings: count, list (as count, sum, sum of squares), map of buckets.</summary>
public sealed record KeyView(long Count, long ListCount, long ListSum, long ListSquares, string Buckets);

/// <summary>
/// What the rich-state jobs wrote, across every job of a test (static, so it outlives jobs and silos): the latest state
/// of each key, how many state outputs each key produced, and how often each timer fired.
/// </summary>
public static class RichStore
{
    private static readonly ConcurrentDictionary<string, Results> All = new();

    public static Results Of(string name) => All.GetOrAdd(name, static _ => new Results());

    public sealed class Results
    {
        public ConcurrentDictionary<long, KeyView> Latest { get; } = new();

        public ConcurrentDictionary<long, int> Outputs { get; } = new();

        public ConcurrentDictionary<(long Key, long Registration), int> TimerFires { get; } = new();

        public ConcurrentDictionary<long, (string Name, long Count, int Level)> Profiles { get; } = new();

        public long StateOutputs => Outputs.Values.Sum(static v => (long)v);
    }

    /// <summary>The expected state of every key after all <paramref name="events"/> readings, and the timer registrations.</summary>
    public static (Dictionary<long, KeyView> States, HashSet<(long Key, long Registration)> Timers) Expected(long events, long keys, long timerUpTo)
    {
        var counts = new Dictionary<long, (long Count, long Sum, long Squares, long[] Buckets)>();
        for (long i = 0; i < events; i++)
        {
            var r = Reading.Generate(keys, i);
            var (count, sum, squares, buckets) = counts.TryGetValue(r.Key, out var c) ? c : (0, 0, 0, new long[4]);
            buckets[r.Value % 4]++;
            counts[r.Key] = (count + 1, sum + r.Value, squares + ((long)r.Value * r.Value), buckets);
        }

        var states = counts.ToDictionary(static p => p.Key, static p => new KeyView(p.Value.Count, p.Value.Count, p.Value.Sum, p.Value.Squares, string.Join(',', p.Value.Buckets)));
        var timers = new HashSet<(long, long)>();
        foreach (var (key, view) in states)
        {
            for (var reg = RichState.TimerEvery; reg <= Math.Min(timerUpTo, view.Count); reg += RichState.TimerEvery)
            {
                timers.Add((key, reg));
            }
        }

        return (states, timers);
    }
}

/// <summary>Writes outputs into <see cref="RichStore"/>.</summary>
public sealed class RichSink(string name) : ISink<Output>
{
    public ISinkWriter<Output> CreateWriter(SinkContext context) => new Writer(RichStore.Of(name));

    private sealed class Writer(RichStore.Results results) : ISinkWriter<Output>
    {
        public void Write(Output record)
        {
            switch (record.Kind)
            {
                case "state":
                    results.Outputs.AddOrUpdate(record.Key, 1, static (_, n) => n + 1);
                    var parts = record.D.Split('|');
                    var view = new KeyView(record.A, record.B, record.C, long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), parts[1]);
                    results.Latest.AddOrUpdate(record.Key, view, (_, old) => view.Count >= old.Count ? view : old);
                    break;
                case "timer":
                    results.TimerFires.AddOrUpdate((record.Key, record.A), 1, static (_, n) => n + 1);
                    break;
                case "profile":
                    results.Profiles[record.Key] = (record.D, record.A, (int)record.B);
                    break;
            }
        }

        public ValueTask FlushAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask EndOfInputAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>
/// Value, map and list state and timers per key: counts readings, counts them per bucket (map), keeps every value
/// (list), and every <see cref="TimerEvery"/> readings (up to "timerUpTo") registers a timer a little later that
/// reports which registration it was. Emits its state after every reading.
/// </summary>
public sealed class RichState(long timerUpTo, long timerDelayMs) : KeyedProcessFunction<long, Reading, Output>
{
    public const long TimerEvery = 10;
    private static readonly ValueStateDescriptor<long> CountDescriptor = new("count");
    private static readonly MapStateDescriptor<int, long> BucketsDescriptor = new("buckets");
    private static readonly ListStateDescriptor<int> ValuesDescriptor = new("values");
    private static readonly MapStateDescriptor<long, long> TimersDescriptor = new("timers");
    private IValueState<long> _count = null!;
    private IMapState<int, long> _buckets = null!;
    private IListState<int> _values = null!;
    private IMapState<long, long> _timers = null!;

    public override void Open(IKeyedRuntimeContext context)
    {
        _count = context.GetValueState(CountDescriptor);
        _buckets = context.GetMapState(BucketsDescriptor);
        _values = context.GetListState(ValuesDescriptor);
        _timers = context.GetMapState(TimersDescriptor);
    }

    public override void ProcessElement(Reading value, IKeyedProcessContext<long> context, ICollector<Output> output)
    {
        var count = _count.Get() + 1;
        _count.Update(count);
        var bucket = value.Value % 4;
        _buckets.Put(bucket, (_buckets.TryGet(bucket, out var n) ? n : 0) + 1);
        _values.Add(value.Value);
        if (count % TimerEvery == 0 && count <= timerUpTo)
        {
            var at = context.TimerService.CurrentProcessingTime + timerDelayMs;
            while (_timers.ContainsKey(at))
            {
                at++;
            }

            _timers.Put(at, count);
            context.TimerService.RegisterProcessingTimeTimer(at);
        }

        var values = _values.Get();
        var buckets = string.Join(',', Enumerable.Range(0, 4).Select(b => _buckets.TryGet(b, out var c) ? c : 0));
        output.Collect(new Output("state", context.CurrentKey, count, values.Count, values.Sum(static v => (long)v), FormattableString.Invariant($"{values.Sum(static v => (long)v * v)}|{buckets}")));
    }

    public override void OnTimer(long timestamp, IKeyedProcessContext<long> context, ICollector<Output> output)
    {
        if (_timers.TryGet(timestamp, out var registration))
        {
            _timers.Remove(timestamp);
            output.Collect(new Output("timer", context.CurrentKey, registration, 0, 0, string.Empty));
        }
    }
}

/// <summary>Passes outputs through, counting them per key (a stateful operator that a changed job adds or removes).</summary>
public sealed class PassThroughCount : KeyedProcessFunction<long, Output, Output>
{
    private static readonly ValueStateDescriptor<long> Seen = new("seen");
    private IValueState<long> _seen = null!;

    public override void Open(IKeyedRuntimeContext context) => _seen = context.GetValueState(Seen);

    public override void ProcessElement(Output value, IKeyedProcessContext<long> context, ICollector<Output> output)
    {
        _seen.Update(_seen.Get() + 1);
        output.Collect(value);
    }
}

/// <summary>
/// Readings → rich keyed state → sink. Parameters: events, keys, rate, name, timerUpTo, timerDelayMs, variant.
/// Variant 1 has a stateful "legacy" operator after the rich one; variant 2 (a changed job) drops it, adds a filter
/// before the keyed operator (chained with the source) and a new stateful "added" operator.
/// </summary>
public sealed class RichStateJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var events = parameters.GetInt64("events", 200_000);
        var keys = parameters.GetInt64("keys", 1_000);
        var rate = parameters.GetDouble("rate", 0);
        var name = parameters.GetString("name", "rich");
        var timerUpTo = parameters.GetInt64("timerUpTo", 100);
        var timerDelay = parameters.GetInt64("timerDelayMs", 200);
        var variant = parameters.GetInt64("variant", 1);
        var readings = builder.Source(new GeneratorSource<Reading>(i => Reading.Generate(keys, i)) { Count = events, RecordsPerSecond = rate > 0 ? rate : null })
            .Uid("readings")
            .Parallelism(1);
        if (variant == 2)
        {
            readings = readings.Filter(static r => r.Value >= 0).Uid("filter").Parallelism(1);
        }

        if (parameters.GetInt64("dropAll", 0) == 1)
        {
            // Nothing reaches the keyed operator: its restored state stays as it was restored.
            readings = readings.Filter(static _ => false).Uid("drop").Parallelism(1);
        }

        var rich = readings.KeyBy(static r => r.Key).Process(new RichState(timerUpTo, timerDelay)).Uid("rich");
        var last = variant == 2
            ? rich.KeyBy(static o => o.Key).Process(new PassThroughCount()).Uid("added")
            : rich.KeyBy(static o => o.Key).Process(new PassThroughCount()).Uid("legacy");
        last.Sink(new RichSink(name)).Uid("out");
    }
}

/// <summary>
/// A keyed profile per key in one of two versions of its state type: version 2 adds a field (<c>Level</c>, default 7).
/// Parameters: events, keys, rate, name, version.
/// </summary>
public sealed class ProfileJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var events = parameters.GetInt64("events", 20_000);
        var keys = parameters.GetInt64("keys", 100);
        var rate = parameters.GetDouble("rate", 0);
        var name = parameters.GetString("name", "profiles");
        var source = builder.Source(new GeneratorSource<Reading>(i => Reading.Generate(keys, i)) { Count = events, RecordsPerSecond = rate > 0 ? rate : null })
            .Uid("readings")
            .Parallelism(1)
            .KeyBy(static r => r.Key);
        var profiles = parameters.GetInt64("version", 1) == 1 ? source.Process(new ProfileV1Function()) : source.Process(new ProfileV2Function());
        profiles.Uid("profiles").Sink(new RichSink(name)).Uid("out");
    }

    private sealed class ProfileV1Function : KeyedProcessFunction<long, Reading, Output>
    {
        private static readonly ValueStateDescriptor<V1.Profile> Descriptor = new("profile");
        private IValueState<V1.Profile> _profile = null!;

        public override void Open(IKeyedRuntimeContext context) => _profile = context.GetValueState(Descriptor);

        public override void ProcessElement(Reading value, IKeyedProcessContext<long> context, ICollector<Output> output)
        {
            var profile = _profile.Get() ?? new V1.Profile { Name = FormattableString.Invariant($"user-{value.Key}") };
            profile = profile with { Count = profile.Count + 1 };
            _profile.Update(profile);
            output.Collect(new Output("profile", value.Key, profile.Count, -1, 0, profile.Name));
        }
    }

    private sealed class ProfileV2Function : KeyedProcessFunction<long, Reading, Output>
    {
        private static readonly ValueStateDescriptor<V2.Profile> Descriptor = new("profile");
        private IValueState<V2.Profile> _profile = null!;

        public override void Open(IKeyedRuntimeContext context) => _profile = context.GetValueState(Descriptor);

        public override void ProcessElement(Reading value, IKeyedProcessContext<long> context, ICollector<Output> output)
        {
            var profile = _profile.Get() ?? new V2.Profile { Name = FormattableString.Invariant($"user-{value.Key}") };
            profile = profile with { Count = profile.Count + 1 };
            _profile.Update(profile);
            output.Collect(new Output("profile", value.Key, profile.Count, profile.Level, 0, profile.Name));
        }
    }
}
