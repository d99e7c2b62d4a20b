using StreamGrains.Connectors;
using StreamGrains.Functions;

namespace StreamGrains.Abstractions.Tests;

/// <summary>Small graph pieces for planning tests.</summary>
internal static class Ops
{
    public static GeneratorSource<long> Numbers(long count = 10) => new(static i => i) { Count = count };

    public static DiscardSink<long> Discard() => new();
}

/// <summary>A keyed process function that does nothing; planning never runs it.</summary>
internal sealed class NoOpProcess : KeyedProcessFunction<long, long, long>
{
    public override void ProcessElement(long value, IKeyedProcessContext<long> context, ICollector<long> output) => output.Collect(value);
}

/// <summary>source → map → keyBy → process → sink, resolved by name through <c>JobDefinitions</c>.</summary>
public sealed class KeyedPipelineJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(parameters);
        builder.Source(Ops.Numbers(parameters.GetInt64("count", 10))).Uid("numbers")
            .Map(static x => x * 2)
            .KeyBy(static x => x % 7)
            .Process(new NoOpProcess()).Uid("process")
            .Sink(Ops.Discard()).Uid("out");
    }
}

/// <summary>A job whose definition is invalid (a stateful operator without Uid).</summary>
public sealed class MissingUidJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Source(Ops.Numbers()).Uid("numbers")
            .KeyBy(static x => x)
            .Process(new NoOpProcess())
            .Sink(Ops.Discard());
    }
}

/// <summary>A job whose Build throws.</summary>
public sealed class ThrowingJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters) => throw new InvalidOperationException("boom in build");
}

/// <summary>Not a job definition.</summary>
public sealed class NotAJob
{
}

/// <summary>A job definition that cannot be instantiated by the silos.</summary>
public sealed class JobWithoutDefaultConstructor(int value) : IStreamJob
{
    public int Value { get; } = value;

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
    }
}

/// <summary>An abstract job definition.</summary>
public abstract class AbstractJob : IStreamJob
{
    public abstract void Build(StreamBuilder builder, JobParameters parameters);
}
