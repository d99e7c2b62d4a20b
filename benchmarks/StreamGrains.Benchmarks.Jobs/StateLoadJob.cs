using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.State;

namespace StreamGrains.Benchmarks.Checkpoints;

/// <summary>
/// Loads <c>keys</c> keys of <c>valueBytes</c> incompressible bytes each at full speed, then keeps overwriting random
/// keys at <c>rate</c> updates per second. Parameters: keys, valueBytes, rate, seed, name.
/// </summary>
public sealed class StateLoadJob : IStreamJob
{
    /// <summary>The one value state.</summary>
    public static readonly ValueStateDescriptor<byte[]> Value = new("value");

    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(parameters);
        var keys = parameters.GetInt64("keys", 1_000);
        var valueBytes = (int)parameters.GetInt64("valueBytes", 1_024);
        var rate = parameters.GetDouble("rate", 1_000);
        var seed = parameters.GetInt64("seed", 42);
        var name = parameters.GetString("name", "bench");
        builder.Source(new GeneratorSource<long>(static i => i) { RecordsPerSecond = rate, UnthrottledPrefix = keys })
            .Uid("updates")
            .Map(i => Failure.Check(name, i))
            .Uid("chaos")
            .KeyBy(i => i < keys ? i : DeterministicRandom.NextInt64(seed, i, keys))
            .Process(new Overwrite(valueBytes, seed))
            .Uid("state")
            .Sink(new DiscardSink<long>())
            .Uid("out");
    }

    /// <summary>A failure injected into user code: the next record after <see cref="Arm"/> throws, once.</summary>
    public static class Failure
    {
        private static readonly Dictionary<string, DateTimeOffset?> Armed = [];

        /// <summary>When the armed failure was thrown.</summary>
        public static DateTimeOffset? ThrownAt(string name)
        {
            lock (Armed)
            {
                return Armed.GetValueOrDefault(name);
            }
        }

        public static void Arm(string name)
        {
            lock (Armed)
            {
                Armed[name] = null;
            }
        }

        internal static long Check(string name, long value)
        {
            lock (Armed)
            {
                if (Armed.TryGetValue(name, out var thrown) && thrown is null)
                {
                    Armed[name] = DateTimeOffset.UtcNow;
                    throw new InvalidOperationException("failure injected by the benchmark");
                }
            }

            return value;
        }
    }

    private sealed class Overwrite(int valueBytes, long seed) : KeyedProcessFunction<long, long, long>
    {
        private IValueState<byte[]>? _value;

        public override void Open(IKeyedRuntimeContext context) => _value = context.GetValueState(Value);

        public override void ProcessElement(long value, IKeyedProcessContext<long> context, ICollector<long> output)
        {
            var bytes = new byte[valueBytes];
            var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(bytes.AsSpan(0, valueBytes & ~7));
            for (var i = 0; i < words.Length; i++)
            {
                words[i] = DeterministicRandom.Next(seed ^ value, i);
            }

            _value!.Update(bytes);
        }
    }
}
