using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.State;

namespace StreamGrains.Samples;

/// <summary>A click on a page by a user.</summary>
[GenerateSerializer, Immutable]
public sealed record Click([property: Id(0)] string UserId, [property: Id(1)] int Page, [property: Id(2)] long Index);

/// <summary>The number of clicks of a user so far.</summary>
[GenerateSerializer, Immutable]
public sealed record UserCount([property: Id(0)] string UserId, [property: Id(1)] long Count);

/// <summary>
/// Counts clicks per user over generated clicks and keeps the latest count per user in a collect sink.
/// </summary>
/// <remarks>
/// Parameters: <c>events</c> (default 1,000,000; 0 = unbounded), <c>keys</c> (distinct users, default 10,000), <c>seed</c>
/// (default 42), <c>rate</c> (events per second over all subtasks, default unlimited), <c>sink</c> (collect sink name,
/// default "counts"; "none" discards the output).
/// </remarks>
public sealed class ClickCounts : IStreamJob
{
    /// <summary>Name of the collect sink that receives the counts.</summary>
    public const string DefaultSink = "counts";

    /// <summary>The click with index <paramref name="index"/> (the same in every process).</summary>
    public static Click Generate(long seed, long keys, long index) =>
        new(UserIdOf(DeterministicRandom.NextInt64(seed, index, keys)), (int)DeterministicRandom.NextInt64(seed + 1, index, 1000), index);

    /// <summary>The user id of user number <paramref name="user"/>.</summary>
    public static string UserIdOf(long user) => $"user-{user}";

    /// <summary>Counts computed without the engine: the expected result.</summary>
    public static Dictionary<string, long> ExpectedCounts(long seed, long keys, long events)
    {
        var counts = new long[keys];
        for (long i = 0; i < events; i++)
        {
            counts[DeterministicRandom.NextInt64(seed, i, keys)]++;
        }

        var result = new Dictionary<string, long>();
        for (long user = 0; user < keys; user++)
        {
            if (counts[user] > 0)
            {
                result[UserIdOf(user)] = counts[user];
            }
        }

        return result;
    }

    /// <inheritdoc />
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(parameters);
        var events = parameters.GetInt64("events", 1_000_000);
        var keys = parameters.GetInt64("keys", 10_000);
        var seed = parameters.GetInt64("seed", 42);
        var rate = parameters.GetDouble("rate", 0);
        var sink = parameters.GetString("sink", DefaultSink);

        var counts = builder
            .Source(new GeneratorSource<Click>(i => Generate(seed, keys, i))
            {
                Count = events > 0 ? events : null,
                RecordsPerSecond = rate > 0 ? rate : null,
            })
            .Uid("clicks")
            .KeyBy(static c => c.UserId)
            .Process(new CountPerKey())
            .Uid("counts");
        if (sink == "none")
        {
            counts.Sink(new DiscardSink<UserCount>()).Uid("out");
        }
        else
        {
            counts.Sink(CollectSink<UserCount>.Upsert(sink, static c => c.UserId)).Uid("out");
        }
    }
}

/// <summary>Counts records per key in value state and emits the new count.</summary>
public sealed class CountPerKey : KeyedProcessFunction<string, Click, UserCount>
{
    private static readonly ValueStateDescriptor<long> CountState = new("count");
    private IValueState<long>? _count;

    /// <inheritdoc />
    public override void Open(IKeyedRuntimeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _count = context.GetValueState(CountState);
    }

    /// <inheritdoc />
    public override void ProcessElement(Click value, IKeyedProcessContext<string> context, ICollector<UserCount> output)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(output);
        var count = _count!.Get() + 1;
        _count.Update(count);
        output.Collect(new UserCount(context.CurrentKey, count));
    }
}
