using StreamGrains.Grains.Operators;
using StreamGrains.Graph;
using StreamGrains.State.Keys;
using StreamGrains.State.Serialization;

namespace StreamGrains.Grains.Channels;

/// <summary>The end of a chain that feeds an edge to another chain: picks the receiver of each record.</summary>
internal sealed class ChannelOutput<T> : IRecordInput<T>
{
    private readonly OutputChannel<T>[] _channels;
    private readonly Partitioning _partitioning;
    private readonly IKeyGroupFunction<T>? _keyGroupOf;
    private readonly string _keyedOperatorUid;
    private readonly int _maxParallelism;
    private readonly Operators.Counter _recordsOut;
    private int _next;

    public ChannelOutput(ChannelEdge edge, OutputChannel<T>[] channels, int senderIndex, int maxParallelism, Orleans.Serialization.Serializer serializer, Operators.Counter recordsOut)
    {
        _channels = channels;
        _partitioning = edge.Partitioning;
        _recordsOut = recordsOut;
        _maxParallelism = maxParallelism;
        _keyedOperatorUid = edge.Target.Head.EffectiveUid;
        _next = senderIndex % channels.Length;
        if (_partitioning == Partitioning.Hash)
        {
            var key = edge.Edge.Key ?? throw new InvalidOperationException($"Hash edge {edge} has no key selector.");
            _keyGroupOf = (IKeyGroupFunction<T>)key.Accept(new KeyGroupFunctionFactory(serializer, _maxParallelism));
        }
    }

    public void Process(T record)
    {
        _recordsOut.Increment();
        switch (_partitioning)
        {
            case Partitioning.Hash:
                int keyGroup;
                try
                {
                    keyGroup = _keyGroupOf!.KeyGroupOf(record);
                }
                catch (Exception ex)
                {
                    throw new OperatorException(_keyedOperatorUid, ex);
                }

                _channels[(int)((long)keyGroup * _channels.Length / _maxParallelism)].Add(record);
                break;
            case Partitioning.Rebalance:
                _channels[_next].Add(record);
                _next = _next + 1 == _channels.Length ? 0 : _next + 1;
                break;
            default:
                _channels[0].Add(record);
                break;
        }
    }
}

internal interface IKeyGroupFunction<in T>
{
    int KeyGroupOf(T record);
}

internal sealed class KeyGroupFunction<T, TKey>(Func<T, TKey> selector, KeyGroupAssigner<TKey> assigner) : IKeyGroupFunction<T>
    where TKey : notnull
{
    public int KeyGroupOf(T record) => assigner.KeyGroupOf(selector(record));
}

internal sealed class KeyGroupFunctionFactory(Orleans.Serialization.Serializer serializer, int maxParallelism) : IKeySelectorVisitor<object>
{
    public object Visit<T, TKey>(KeySelector<T, TKey> selector)
        where TKey : notnull =>
        new KeyGroupFunction<T, TKey>(selector.Selector, new KeyGroupAssigner<TKey>(KeySerializers.For(selector.Serializer, serializer), maxParallelism));
}
