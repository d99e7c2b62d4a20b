using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.Graph;
using StreamGrains.State;

namespace StreamGrains;

/// <summary>Builds a job's graph: start with <see cref="Source{T}"/>, then chain operations on the returned streams.</summary>
public sealed class StreamBuilder
{
    private readonly List<StreamNode> _nodes = [];

    /// <summary>Creates a builder for a job with the given max parallelism.</summary>
    public StreamBuilder(int maxParallelism = KeyGroups.DefaultMaxParallelism)
    {
        KeyGroups.CheckMaxParallelism(maxParallelism);
        MaxParallelism = maxParallelism;
    }

    /// <summary>Number of key groups of the job.</summary>
    public int MaxParallelism { get; }

    /// <summary>The nodes added so far, in build order.</summary>
    public IReadOnlyList<StreamNode> Nodes => _nodes;

    /// <summary>Adds a source.</summary>
    public DataStream<T> Source<T>(ISource<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var node = Add(id => new SourceNode<T>(id, source));
        return new DataStream<T>(this, [node], [Partitioning.Forward]);
    }

    internal TNode Add<TNode>(Func<int, TNode> create)
        where TNode : StreamNode
    {
        var node = create(_nodes.Count);
        _nodes.Add(node);
        return node;
    }

    internal static void Connect(StreamNode target, IReadOnlyList<StreamNode> sources, IReadOnlyList<Partitioning> partitionings, KeySelector? key)
    {
        for (var i = 0; i < sources.Count; i++)
        {
            target.InputList.Add(new StreamEdge(sources[i], target, partitionings[i], key));
        }
    }
}

/// <summary>Fluent settings shared by every operator handle.</summary>
public abstract class OperatorHandle
{
    private protected OperatorHandle(IReadOnlyList<StreamNode> nodes) => NodesOfHandle = nodes;

    private protected IReadOnlyList<StreamNode> NodesOfHandle { get; }

    private protected StreamNode SingleNode(string setting) => NodesOfHandle.Count == 1
        ? NodesOfHandle[0]
        : throw new InvalidOperationException($"{setting} applies to one operator, but this stream is a union of {NodesOfHandle.Count} streams; set it on each stream before the union.");

    private protected void SetUid(string uid)
    {
        ValidateUid(uid);
        SingleNode("Uid").Uid = uid;
    }

    private protected void SetName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        SingleNode("Name").Name = name;
    }

    private protected void SetParallelism(int parallelism)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelism, 1);
        SingleNode("Parallelism").Parallelism = parallelism;
    }

    /// <summary>Throws when <paramref name="uid"/> is not a valid operator Uid.</summary>
    public static void ValidateUid(string uid)
    {
        if (string.IsNullOrWhiteSpace(uid))
        {
            throw new ArgumentException("An operator Uid must not be empty.", nameof(uid));
        }

        if (uid.Length > 128)
        {
            throw new ArgumentException($"Operator Uid '{uid[..20]}...' is longer than 128 characters.", nameof(uid));
        }

        foreach (var c in uid)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.'))
            {
                throw new ArgumentException($"Operator Uid '{uid}' contains '{c}'; use letters, digits, '-', '_' and '.'.", nameof(uid));
            }
        }
    }
}

/// <summary>A stream of records of type <typeparamref name="T"/>: the output of one operator, or a union of several.</summary>
public sealed class DataStream<T> : OperatorHandle
{
    private readonly StreamBuilder _builder;
    /// <summary>How each node's records reach the next operator (one entry per node: a union keeps each input's own).</summary>
    private readonly IReadOnlyList<Partitioning> _partitionings;

    internal DataStream(StreamBuilder builder, IReadOnlyList<StreamNode> nodes, IReadOnlyList<Partitioning> partitionings)
        : base(nodes)
    {
        _builder = builder;
        _partitionings = partitionings;
    }

    /// <summary>Sets the stable Uid of the operator that produces this stream; state is matched by Uid on restore.</summary>
    public DataStream<T> Uid(string uid)
    {
        SetUid(uid);
        return this;
    }

    /// <summary>Sets a display name for the operator that produces this stream.</summary>
    public DataStream<T> Name(string name)
    {
        SetName(name);
        return this;
    }

    /// <summary>Sets the parallelism of the operator that produces this stream.</summary>
    public DataStream<T> Parallelism(int parallelism)
    {
        SetParallelism(parallelism);
        return this;
    }

    /// <summary>Transforms every record.</summary>
    public DataStream<TOut> Map<TOut>(Func<T, TOut> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return Then<TOut>(id => new MapNode<T, TOut>(id, function));
    }

    /// <summary>Keeps the records for which <paramref name="predicate"/> is true.</summary>
    public DataStream<T> Filter(Func<T, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return Then<T>(id => new FilterNode<T>(id, predicate));
    }

    /// <summary>Emits zero or more records per record.</summary>
    public DataStream<TOut> FlatMap<TOut>(Action<T, ICollector<TOut>> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return Then<TOut>(id => new FlatMapNode<T, TOut>(id, function));
    }

    /// <summary>Emits the records <paramref name="function"/> returns for each record.</summary>
    public DataStream<TOut> FlatMap<TOut>(Func<T, IEnumerable<TOut>> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return FlatMap<TOut>((value, output) =>
        {
            foreach (var item in function(value))
            {
                output.Collect(item);
            }
        });
    }

    /// <summary>Merges this stream with others of the same type; the next operator reads all of them.</summary>
    public DataStream<T> Union(params DataStream<T>[] others)
    {
        ArgumentNullException.ThrowIfNull(others);
        var nodes = new List<StreamNode>(NodesOfHandle);
        var partitionings = new List<Partitioning>(_partitionings);
        foreach (var other in others)
        {
            if (!ReferenceEquals(other._builder, _builder))
            {
                throw new ArgumentException("Cannot union streams of different builders.", nameof(others));
            }

            for (var i = 0; i < other.NodesOfHandle.Count; i++)
            {
                if (!nodes.Contains(other.NodesOfHandle[i]))
                {
                    nodes.Add(other.NodesOfHandle[i]);
                    partitionings.Add(other._partitionings[i]);
                }
            }
        }

        return new DataStream<T>(_builder, nodes, partitionings);
    }

    /// <summary>Distributes records round-robin to the next operator's subtasks.</summary>
    public DataStream<T> Rebalance() => new(_builder, NodesOfHandle, NodesOfHandle.Select(static _ => Partitioning.Rebalance).ToArray());

    /// <summary>Partitions the stream by key: records with equal keys go to the same subtask and share keyed state.</summary>
    /// <param name="selector">Extracts the key; must be deterministic.</param>
    /// <param name="keySerializer">An explicit key serializer; built-in or Orleans' codec when null.</param>
    public KeyedStream<TKey, T> KeyBy<TKey>(Func<T, TKey> selector, IKeySerializer<TKey>? keySerializer = null)
        where TKey : notnull
    {
        ArgumentNullException.ThrowIfNull(selector);
        return new KeyedStream<TKey, T>(_builder, NodesOfHandle, new KeySelector<T, TKey>(selector, keySerializer));
    }

    /// <summary>Writes the stream to a sink.</summary>
    public SinkHandle Sink(ISink<T> sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var node = _builder.Add(id => new SinkNode<T>(id, sink));
        StreamBuilder.Connect(node, NodesOfHandle, _partitionings, key: null);
        return new SinkHandle(node);
    }

    private DataStream<TOut> Then<TOut>(Func<int, StreamNode> create)
    {
        var node = _builder.Add(create);
        StreamBuilder.Connect(node, NodesOfHandle, _partitionings, key: null);
        return new DataStream<TOut>(_builder, [node], [Graph.Partitioning.Forward]);
    }
}

/// <summary>A stream partitioned by key.</summary>
public sealed class KeyedStream<TKey, T>
    where TKey : notnull
{
    private readonly StreamBuilder _builder;
    private readonly IReadOnlyList<StreamNode> _inputs;
    private readonly KeySelector<T, TKey> _key;

    internal KeyedStream(StreamBuilder builder, IReadOnlyList<StreamNode> inputs, KeySelector<T, TKey> key)
    {
        _builder = builder;
        _inputs = inputs;
        _key = key;
    }

    /// <summary>Processes each record with keyed state and timers of its key.</summary>
    public DataStream<TOut> Process<TOut>(KeyedProcessFunction<TKey, T, TOut> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        var node = _builder.Add(id => new KeyedProcessNode<TKey, T, TOut>(id, function, _key));
        StreamBuilder.Connect(node, _inputs, _inputs.Select(static _ => Partitioning.Hash).ToArray(), _key);
        return new DataStream<TOut>(_builder, [node], [Partitioning.Forward]);
    }
}

/// <summary>Settings of a sink operator.</summary>
public sealed class SinkHandle : OperatorHandle
{
    internal SinkHandle(StreamNode node)
        : base([node])
    {
    }

    /// <summary>Sets the stable Uid of the sink.</summary>
    public SinkHandle Uid(string uid)
    {
        SetUid(uid);
        return this;
    }

    /// <summary>Sets a display name for the sink.</summary>
    public SinkHandle Name(string name)
    {
        SetName(name);
        return this;
    }

    /// <summary>Sets the parallelism of the sink.</summary>
    public SinkHandle Parallelism(int parallelism)
    {
        SetParallelism(parallelism);
        return this;
    }
}
