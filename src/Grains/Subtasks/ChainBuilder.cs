using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;
using StreamGrains.Graph;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Subtasks;

/// <summary>Receives the record arrays of one input edge and pushes them into the chain's head.</summary>
internal interface IBatchInput
{
    void Process(Array records);
}

internal sealed class BatchInput<T>(IRecordInput<T> head, Counter recordsIn) : IBatchInput
{
    public void Process(Array records)
    {
        var typed = (T[])records;
        recordsIn.Add(typed.Length);
        foreach (var record in typed)
        {
            head.Process(record);
        }
    }
}

/// <summary>The operators of one subtask, wired together, with their outputs to other chains.</summary>
internal sealed class OperatorChain(IReadOnlyList<ChainOperator> operators, IBatchInput? input, ISourceDriver? source)
{
    /// <summary>Operators in chain order (head first).</summary>
    public IReadOnlyList<ChainOperator> Operators => operators;

    /// <summary>How batches of every input edge enter the head (null for a source chain).</summary>
    public IBatchInput? Input => input;

    /// <summary>The source of a source chain.</summary>
    public ISourceDriver? Source => source;
}

/// <summary>Builds the run-time operators of one subtask from the plan, tail first, so each operator gets its typed output.</summary>
internal sealed class ChainBuilder : IStreamNodeVisitor<ChainOperator>
{
    private readonly JobPlan _plan;
    private readonly ChainPlan _chain;
    private readonly SubtaskId _self;
    private readonly OutputChannels _outputs;
    private readonly Orleans.Serialization.Serializer _serializer;
    private readonly Counter _recordsIn;
    private readonly Counter _recordsOut;
    private readonly Dictionary<StreamNode, object> _inputs = [];

    public ChainBuilder(JobPlan plan, ChainPlan chain, SubtaskId self, OutputChannels outputs, Orleans.Serialization.Serializer serializer, Counter recordsIn, Counter recordsOut)
    {
        _plan = plan;
        _chain = chain;
        _self = self;
        _outputs = outputs;
        _serializer = serializer;
        _recordsIn = recordsIn;
        _recordsOut = recordsOut;
    }

    public OperatorChain Build()
    {
        var operators = new List<ChainOperator>();
        for (var i = _chain.Nodes.Count - 1; i >= 0; i--)
        {
            var node = _chain.Nodes[i];
            var op = node.Accept(this);
            _inputs[node] = op;
            operators.Insert(0, op);
        }

        var head = operators[0];
        IBatchInput? input = _chain.IsSource ? null : _chain.Head.Accept(new BatchInputFactory(head, _recordsIn));
        return new OperatorChain(operators, input, head as ISourceDriver);
    }

    public ChainOperator VisitSource<T>(SourceNode<T> node) => new SourceOperator<T>(node, OutputOf<T>(node));

    public ChainOperator VisitMap<TIn, TOut>(MapNode<TIn, TOut> node) => new MapOperator<TIn, TOut>(node.EffectiveUid, node.Function, OutputOf<TOut>(node));

    public ChainOperator VisitFilter<T>(FilterNode<T> node) => new FilterOperator<T>(node.EffectiveUid, node.Predicate, OutputOf<T>(node));

    public ChainOperator VisitFlatMap<TIn, TOut>(FlatMapNode<TIn, TOut> node) => new FlatMapOperator<TIn, TOut>(node.EffectiveUid, node.Function, OutputOf<TOut>(node));

    public ChainOperator VisitKeyedProcess<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node)
        where TKey : notnull => new KeyedProcessOperator<TKey, TIn, TOut>(node, OutputOf<TOut>(node));

    public ChainOperator VisitSink<T>(SinkNode<T> node) => new SinkOperator<T>(node);

    /// <summary>Everything downstream of <paramref name="node"/>: chained operators and channels to other chains.</summary>
    private IRecordInput<T> OutputOf<T>(StreamNode node)
    {
        var targets = new List<IRecordInput<T>>();
        foreach (var child in _chain.Nodes)
        {
            if (child != _chain.Head && child.Inputs[0].Source == node)
            {
                targets.Add((IRecordInput<T>)_inputs[child]);
            }
        }

        foreach (var edge in _chain.Outputs)
        {
            if (edge.Edge.Source != node)
            {
                continue;
            }

            var channels = edge.ReceiversOf(_self.Index)
                .Select(r => _outputs.Add<T>(edge.Id, _self with { Chain = edge.Target.Index, Index = r }))
                .ToArray();
            targets.Add(new ChannelOutput<T>(edge, channels, _self.Index, _plan.MaxParallelism, _serializer, _recordsOut));
        }

        return targets.Count switch
        {
            0 => DiscardInput<T>.Instance,
            1 => targets[0],
            _ => new BroadcastInput<T>([.. targets]),
        };
    }

    private sealed class BatchInputFactory(ChainOperator head, Counter recordsIn) : IStreamNodeVisitor<IBatchInput>
    {
        public IBatchInput VisitSource<T>(SourceNode<T> node) => throw new InvalidOperationException("A source has no input.");

        public IBatchInput VisitMap<TIn, TOut>(MapNode<TIn, TOut> node) => Create<TIn>();

        public IBatchInput VisitFilter<T>(FilterNode<T> node) => Create<T>();

        public IBatchInput VisitFlatMap<TIn, TOut>(FlatMapNode<TIn, TOut> node) => Create<TIn>();

        public IBatchInput VisitKeyedProcess<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node)
            where TKey : notnull => Create<TIn>();

        public IBatchInput VisitSink<T>(SinkNode<T> node) => Create<T>();

        private BatchInput<T> Create<T>() => new((IRecordInput<T>)head, recordsIn);
    }
}
