using System.Collections.Concurrent;
using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.Samples;
using StreamGrains.State;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// Results that outlive silos: the test cluster runs in this process, so a static store survives a killed silo (the
/// collector grain would not). Each write carries its attempt; a write of an older attempt never replaces a newer one.
/// </summary>
public static class ResultStore
{
    private static readonly ConcurrentDictionary<string, ConcurrentDictionary<string, (int Attempt, long Count)>> Results = new();
    private static readonly ConcurrentDictionary<string, bool> Poison = new();

    public static IReadOnlyDictionary<string, long> Counts(string name) =>
        Results.TryGetValue(name, out var results) ? results.ToDictionary(static p => p.Key, static p => p.Value.Count) : [];

    /// <summary>Makes the next record that passes the job's poison check throw, once.</summary>
    public static void Arm(string name) => Poison[name] = true;

    internal static bool TakePoison(string name) => Poison.TryRemove(name, out _);

    internal static void Write(string name, int attempt, string key, long count) =>
        Results.GetOrAdd(name, static _ => new()).AddOrUpdate(key, (attempt, count), (_, old) => attempt >= old.Attempt ? (attempt, count) : old);
}

/// <summary>Upserts counts into <see cref="ResultStore"/>, fenced by attempt.</summary>
public sealed class FencedUpsertSink(string name) : ISink<UserCount>
{
    public ISinkWriter<UserCount> CreateWriter(SinkContext context) => new Writer(name, context.Attempt);

    private sealed class Writer(string name, int attempt) : ISinkWriter<UserCount>
    {
        public void Write(UserCount record) => ResultStore.Write(name, attempt, record.UserId, record.Count);

        public ValueTask FlushAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask EndOfInputAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>
/// ClickCounts with a fenced result store and a poison pill: after <see cref="ResultStore.Arm"/>, one record makes the
/// "chaos" map throw. Parameters: events, keys, seed, rate, name.
/// </summary>
public sealed class ResilientCountJob : IStreamJob
{
    public const string PoisonMessage = "poisoned by the test";

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var events = parameters.GetInt64("events", 1_000_000);
        var keys = parameters.GetInt64("keys", 10_000);
        var seed = parameters.GetInt64("seed", 42);
        var rate = parameters.GetDouble("rate", 0);
        var name = parameters.GetString("name", "results");
        builder.Source(new GeneratorSource<Click>(i => ClickCounts.Generate(seed, keys, i)) { Count = events, RecordsPerSecond = rate > 0 ? rate : null })
            .Uid("clicks")
            .Map(c => ResultStore.TakePoison(name) ? throw new InvalidOperationException(PoisonMessage) : c)
            .Uid("chaos")
            .KeyBy(static c => c.UserId)
            .Process(new CountPerKey())
            .Uid("counts")
            .Sink(new FencedUpsertSink(name))
            .Uid("out");
    }
}

[GenerateSerializer, Immutable]
public sealed record Tagged([property: Id(0)] string Source, [property: Id(1)] long Index);

/// <summary>
/// Two sources at very different rates, united into one keyed operator that counts records per source. In a consistent
/// checkpoint each count equals the number of records its source had emitted (the sum of its split positions).
/// </summary>
public sealed class FastSlowJob : IStreamJob
{
    public static readonly ValueStateDescriptor<long> Count = new("count");

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var fast = builder.Source(new GeneratorSource<Tagged>(static i => new Tagged("fast", i)) { Count = 100_000_000, RecordsPerSecond = parameters.GetDouble("fastRate", 200_000) })
            .Uid("fast")
            .Parallelism(2);
        var slow = builder.Source(new GeneratorSource<Tagged>(static i => new Tagged("slow", i)) { Count = 100_000_000, RecordsPerSecond = parameters.GetDouble("slowRate", 200) })
            .Uid("slow")
            .Parallelism(1);
        fast.Union(slow)
            .KeyBy(static t => t.Source)
            .Process(new CountBySource())
            .Uid("counter")
            .Parallelism(2)
            .Sink(new DiscardSink<long>())
            .Uid("out");
    }

    private sealed class CountBySource : KeyedProcessFunction<string, Tagged, long>
    {
        private IValueState<long>? _count;

        public override void Open(IKeyedRuntimeContext context) => _count = context.GetValueState(Count);

        public override void ProcessElement(Tagged value, IKeyedProcessContext<string> context, ICollector<long> output)
        {
            var count = _count!.Get() + 1;
            _count.Update(count);
            output.Collect(count);
        }
    }
}

/// <summary>
/// Writes <c>keys</c> keys of 512 incompressible bytes at full speed, then overwrites random keys at <c>rate</c> per
/// second. Parameters: keys, rate.
/// </summary>
public sealed class OverwriteJob : IStreamJob
{
    public const int ValueBytes = 512;

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var keys = parameters.GetInt64("keys", 1_000);
        var rate = parameters.GetDouble("rate", 100);
        builder.Source(new GeneratorSource<long>(static i => i) { RecordsPerSecond = rate, UnthrottledPrefix = keys })
            .Uid("numbers")
            .KeyBy(i => i < keys ? i : DeterministicRandom.NextInt64(7, i, keys))
            .Process(new Overwrite())
            .Uid("values")
            .Sink(new DiscardSink<long>())
            .Uid("out");
    }

    private sealed class Overwrite : KeyedProcessFunction<long, long, long>
    {
        private static readonly ValueStateDescriptor<byte[]> Value = new("value");
        private IValueState<byte[]>? _value;

        public override void Open(IKeyedRuntimeContext context) => _value = context.GetValueState(Value);

        public override void ProcessElement(long value, IKeyedProcessContext<long> context, ICollector<long> output)
        {
            var bytes = new byte[ValueBytes];
            for (var i = 0; i < ValueBytes; i += 8)
            {
                BitConverter.TryWriteBytes(bytes.AsSpan(i), DeterministicRandom.Next(value, i));
            }

            _value!.Update(bytes);
        }
    }
}

/// <summary>
/// A steady trickle of keyed records whose keyed function can be made to hold its subtask's mailbox: after
/// <see cref="HoldNextRecord"/> the next record blocks until released (at most a minute). Parameters: name.
/// </summary>
public sealed class BusyMailboxJob : IStreamJob
{
    public const string KeyedUid = "busy";
    private static readonly ValueStateDescriptor<long> Count = new("count");
    private static readonly ConcurrentDictionary<string, Hold> Holds = new();

    /// <summary>Makes the next record of job <paramref name="name"/> hold the mailbox.</summary>
    public static Hold HoldNextRecord(string name) => Holds[name] = new Hold();

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var name = parameters.GetString("name", KeyedUid);
        builder.Source(new GeneratorSource<long>(static i => i) { Count = 100_000_000, RecordsPerSecond = 1_000 })
            .Uid("numbers")
            .Parallelism(1)
            .KeyBy(static i => i % 100)
            .Process(new Counting(name))
            .Uid(KeyedUid)
            .Parallelism(1)
            .Sink(new DiscardSink<long>())
            .Uid("out");
    }

    public sealed class Hold
    {
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when a record holds the mailbox.</summary>
        public Task Held => _held.Task;

        /// <summary>Completes when the mailbox is free again.</summary>
        public Task Released => _released.Task;

        public void Release() => _released.TrySetResult();

        internal void Block()
        {
            if (_held.TrySetResult())
            {
                _released.Task.Wait(TimeSpan.FromMinutes(1));
                _released.TrySetResult();
            }
        }
    }

    private sealed class Counting(string name) : KeyedProcessFunction<long, long, long>
    {
        private IValueState<long>? _count;

        public override void Open(IKeyedRuntimeContext context) => _count = context.GetValueState(Count);

        public override void ProcessElement(long value, IKeyedProcessContext<long> context, ICollector<long> output)
        {
            if (Holds.TryRemove(name, out var hold))
            {
                hold.Block();
            }

            var count = _count!.Get() + 1;
            _count.Update(count);
            output.Collect(count);
        }
    }
}
