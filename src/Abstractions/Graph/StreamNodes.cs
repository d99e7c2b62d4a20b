using StreamGrains.Connectors;
using StreamGrains.Functions;
using StreamGrains.State;

namespace StreamGrains.Graph;

/// <summary>How records of an edge are distributed over the subtasks of its target.</summary>
public enum Partitioning : byte
{
    /// <summary>Subtask <c>i</c> sends to subtask <c>i</c>; chained when parallelism is equal. Becomes <see cref="Rebalance"/> when it is not.</summary>
    Forward = 0,

    /// <summary>Round-robin over the target's subtasks.</summary>
    Rebalance = 1,

    /// <summary>By key group of the record's key (<c>KeyBy</c>).</summary>
    Hash = 2,
}

/// <summary>One operator of a job's graph, as built by <see cref="StreamBuilder"/>.</summary>
public abstract class StreamNode
{
    private protected StreamNode(int id, string kind)
    {
        Id = id;
        Kind = kind;
    }

    /// <summary>Position of the node in build order; stable for a given job definition and parameters.</summary>
    public int Id { get; }

    /// <summary>Operator kind ("source", "map", "filter", "flatmap", "process", "sink").</summary>
    public string Kind { get; }

    /// <summary>The user-given Uid, if any.</summary>
    public string? Uid { get; internal set; }

    /// <summary>The user-given display name, if any.</summary>
    public string? Name { get; internal set; }

    /// <summary>The user-given parallelism, if any.</summary>
    public int? Parallelism { get; internal set; }

    /// <summary>Edges into this node.</summary>
    public IReadOnlyList<StreamEdge> Inputs => InputList;

    internal List<StreamEdge> InputList { get; } = [];

    /// <summary>Whether the operator keeps state (and therefore needs a Uid).</summary>
    public abstract bool IsStateful { get; }

    /// <summary>Type of the records the node emits (<see cref="void"/> for sinks).</summary>
    public abstract Type OutputType { get; }

    /// <summary>The Uid, or a generated one ("#id:kind") for stateless operators without one.</summary>
    public string EffectiveUid => Uid ?? $"#{Id}:{Kind}";

    /// <summary>Calls the visitor method of the node's concrete type.</summary>
    public abstract TResult Accept<TResult>(IStreamNodeVisitor<TResult> visitor);

    /// <inheritdoc />
    public override string ToString() => Name is null ? EffectiveUid : $"{EffectiveUid} ({Name})";
}

/// <summary>An edge of the graph.</summary>
public sealed class StreamEdge
{
    internal StreamEdge(StreamNode source, StreamNode target, Partitioning partitioning, KeySelector? key)
    {
        Source = source;
        Target = target;
        Partitioning = partitioning;
        Key = key;
    }

    /// <summary>Upstream node.</summary>
    public StreamNode Source { get; }

    /// <summary>Downstream node.</summary>
    public StreamNode Target { get; }

    /// <summary>Partitioning requested by the job definition.</summary>
    public Partitioning Partitioning { get; }

    /// <summary>The key selector of a <see cref="Graph.Partitioning.Hash"/> edge.</summary>
    public KeySelector? Key { get; }
}

/// <summary>A key selector with its key type, for hash partitioning and keyed state.</summary>
public abstract class KeySelector
{
    /// <summary>Type of the records.</summary>
    public abstract Type RecordType { get; }

    /// <summary>Type of the keys.</summary>
    public abstract Type KeyType { get; }

    /// <summary>Calls the visitor with the selector's concrete generic type.</summary>
    public abstract TResult Accept<TResult>(IKeySelectorVisitor<TResult> visitor);
}

/// <summary>Extracts a key of type <typeparamref name="TKey"/> from records of type <typeparamref name="T"/>.</summary>
public sealed class KeySelector<T, TKey> : KeySelector
    where TKey : notnull
{
    internal KeySelector(Func<T, TKey> selector, IKeySerializer<TKey>? serializer)
    {
        Selector = selector;
        Serializer = serializer;
    }

    /// <summary>The selector function; must be deterministic.</summary>
    public Func<T, TKey> Selector { get; }

    /// <summary>An explicit key serializer, if any.</summary>
    public IKeySerializer<TKey>? Serializer { get; }

    /// <inheritdoc />
    public override Type RecordType => typeof(T);

    /// <inheritdoc />
    public override Type KeyType => typeof(TKey);

    /// <inheritdoc />
    public override TResult Accept<TResult>(IKeySelectorVisitor<TResult> visitor) => visitor.Visit(this);
}

/// <summary>Visits a <see cref="KeySelector"/> with its concrete generic type.</summary>
public interface IKeySelectorVisitor<out TResult>
{
    /// <summary>Visits the selector.</summary>
    TResult Visit<T, TKey>(KeySelector<T, TKey> selector)
        where TKey : notnull;
}

/// <summary>Visits a <see cref="StreamNode"/> with its concrete generic type.</summary>
public interface IStreamNodeVisitor<out TResult>
{
    /// <summary>Visits a source.</summary>
    TResult VisitSource<T>(SourceNode<T> node);

    /// <summary>Visits a map.</summary>
    TResult VisitMap<TIn, TOut>(MapNode<TIn, TOut> node);

    /// <summary>Visits a filter.</summary>
    TResult VisitFilter<T>(FilterNode<T> node);

    /// <summary>Visits a flat map.</summary>
    TResult VisitFlatMap<TIn, TOut>(FlatMapNode<TIn, TOut> node);

    /// <summary>Visits a keyed process operator.</summary>
    TResult VisitKeyedProcess<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node)
        where TKey : notnull;

    /// <summary>Visits a sink.</summary>
    TResult VisitSink<T>(SinkNode<T> node);
}

/// <summary>A source operator.</summary>
public sealed class SourceNode<T> : StreamNode
{
    internal SourceNode(int id, ISource<T> source)
        : base(id, "source") => Source = source;

    /// <summary>The source.</summary>
    public ISource<T> Source { get; }

    /// <inheritdoc />
    public override bool IsStateful => true;

    /// <inheritdoc />
    public override Type OutputType => typeof(T);

    /// <inheritdoc />
    public override TResult Accept<TResult>(IStreamNodeVisitor<TResult> visitor) => visitor.VisitSource(this);
}

/// <summary>A one-to-one transformation.</summary>
public sealed class MapNode<TIn, TOut> : StreamNode
{
    internal MapNode(int id, Func<TIn, TOut> function)
        : base(id, "map") => Function = function;

    /// <summary>The function.</summary>
    public Func<TIn, TOut> Function { get; }

    /// <inheritdoc />
    public override bool IsStateful => false;

    /// <inheritdoc />
    public override Type OutputType => typeof(TOut);

    /// <inheritdoc />
    public override TResult Accept<TResult>(IStreamNodeVisitor<TResult> visitor) => visitor.VisitMap(this);
}

/// <summary>Keeps the records a predicate accepts.</summary>
public sealed class FilterNode<T> : StreamNode
{
    internal FilterNode(int id, Func<T, bool> predicate)
        : base(id, "filter") => Predicate = predicate;

    /// <summary>The predicate.</summary>
    public Func<T, bool> Predicate { get; }

    /// <inheritdoc />
    public override bool IsStateful => false;

    /// <inheritdoc />
    public override Type OutputType => typeof(T);

    /// <inheritdoc />
    public override TResult Accept<TResult>(IStreamNodeVisitor<TResult> visitor) => visitor.VisitFilter(this);
}

/// <summary>A one-to-many transformation.</summary>
public sealed class FlatMapNode<TIn, TOut> : StreamNode
{
    internal FlatMapNode(int id, Action<TIn, ICollector<TOut>> function)
        : base(id, "flatmap") => Function = function;

    /// <summary>The function.</summary>
    public Action<TIn, ICollector<TOut>> Function { get; }

    /// <inheritdoc />
    public override bool IsStateful => false;

    /// <inheritdoc />
    public override Type OutputType => typeof(TOut);

    /// <inheritdoc />
    public override TResult Accept<TResult>(IStreamNodeVisitor<TResult> visitor) => visitor.VisitFlatMap(this);
}

/// <summary>A keyed process function over a keyed stream.</summary>
public sealed class KeyedProcessNode<TKey, TIn, TOut> : StreamNode
    where TKey : notnull
{
    internal KeyedProcessNode(int id, KeyedProcessFunction<TKey, TIn, TOut> function, KeySelector<TIn, TKey> key)
        : base(id, "process")
    {
        Function = function;
        Key = key;
    }

    /// <summary>The function.</summary>
    public KeyedProcessFunction<TKey, TIn, TOut> Function { get; }

    /// <summary>The key selector of the input.</summary>
    public KeySelector<TIn, TKey> Key { get; }

    /// <inheritdoc />
    public override bool IsStateful => true;

    /// <inheritdoc />
    public override Type OutputType => typeof(TOut);

    /// <inheritdoc />
    public override TResult Accept<TResult>(IStreamNodeVisitor<TResult> visitor) => visitor.VisitKeyedProcess(this);
}

/// <summary>A sink operator.</summary>
public sealed class SinkNode<T> : StreamNode
{
    internal SinkNode(int id, ISink<T> sink)
        : base(id, "sink") => Sink = sink;

    /// <summary>The sink.</summary>
    public ISink<T> Sink { get; }

    /// <inheritdoc />
    public override bool IsStateful => false;

    /// <inheritdoc />
    public override Type OutputType => typeof(void);

    /// <inheritdoc />
    public override TResult Accept<TResult>(IStreamNodeVisitor<TResult> visitor) => visitor.VisitSink(this);
}
