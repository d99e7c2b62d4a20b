namespace StreamGrains.Graph;

/// <summary>One edge between two chains: records cross it in batches over channels.</summary>
public sealed class ChannelEdge
{
    internal ChannelEdge(int id, StreamEdge edge, ChainPlan source, ChainPlan target, Partitioning partitioning)
    {
        Id = id;
        Edge = edge;
        Source = source;
        Target = target;
        Partitioning = partitioning;
    }

    /// <summary>Index of the edge in <see cref="JobPlan.Edges"/>.</summary>
    public int Id { get; }

    /// <summary>The graph edge.</summary>
    public StreamEdge Edge { get; }

    /// <summary>The sending chain.</summary>
    public ChainPlan Source { get; }

    /// <summary>The receiving chain.</summary>
    public ChainPlan Target { get; }

    /// <summary>The partitioning in effect (a forward edge between different parallelisms becomes rebalance).</summary>
    public Partitioning Partitioning { get; }

    /// <summary>Indices of the sending subtasks that feed receiving subtask <paramref name="targetIndex"/>.</summary>
    public IEnumerable<int> SendersOf(int targetIndex) =>
        Partitioning == Partitioning.Forward ? [targetIndex] : Enumerable.Range(0, Source.Parallelism);

    /// <summary>Indices of the receiving subtasks that sending subtask <paramref name="sourceIndex"/> feeds.</summary>
    public IEnumerable<int> ReceiversOf(int sourceIndex) =>
        Partitioning == Partitioning.Forward ? [sourceIndex] : Enumerable.Range(0, Target.Parallelism);

    /// <inheritdoc />
    public override string ToString() => $"{Source.Name} -[{Partitioning}]-> {Target.Name}";
}

/// <summary>Operators joined by forward edges with equal parallelism; each of its subtasks is one grain.</summary>
public sealed class ChainPlan
{
    private readonly List<ChannelEdge> _inputs = [];
    private readonly List<ChannelEdge> _outputs = [];

    internal ChainPlan(int index, StreamNode head, int parallelism)
    {
        Index = index;
        Head = head;
        Parallelism = parallelism;
        NodeList.Add(head);
    }

    /// <summary>Index of the chain in <see cref="JobPlan.Chains"/>.</summary>
    public int Index { get; }

    /// <summary>First operator of the chain.</summary>
    public StreamNode Head { get; }

    /// <summary>Operators of the chain in build order (head first).</summary>
    public IReadOnlyList<StreamNode> Nodes => NodeList;

    internal List<StreamNode> NodeList { get; } = [];

    /// <summary>Parallelism of every operator of the chain.</summary>
    public int Parallelism { get; }

    /// <summary>Whether the chain starts with a source.</summary>
    public bool IsSource => Head.Kind == "source";

    /// <summary>Whether the chain's head is keyed (so its subtasks own key-group ranges).</summary>
    public bool IsKeyed => Head.Inputs.Count > 0 && Head.Inputs[0].Partitioning == Partitioning.Hash;

    /// <summary>Display name: the effective Uids of the chain's operators.</summary>
    public string Name => string.Join(" -> ", NodeList.Select(static n => n.EffectiveUid));

    /// <summary>Edges from other chains into this chain's head.</summary>
    public IReadOnlyList<ChannelEdge> Inputs => _inputs;

    /// <summary>Edges from this chain's operators to other chains.</summary>
    public IReadOnlyList<ChannelEdge> Outputs => _outputs;

    internal void AddInput(ChannelEdge edge) => _inputs.Add(edge);

    internal void AddOutput(ChannelEdge edge) => _outputs.Add(edge);

    /// <inheritdoc />
    public override string ToString() => $"{Name} (x{Parallelism})";
}

/// <summary>
/// The physical plan of a job: its operators grouped into chains, and the edges between chains.
/// </summary>
/// <remarks>
/// Deterministic: the same graph, default parallelism and max parallelism always give the same plan, so the job grain
/// and every subtask grain compute it independently from the spec.
/// </remarks>
public sealed class JobPlan
{
    private readonly Dictionary<StreamNode, ChainPlan> _chainOf;

    private JobPlan(IReadOnlyList<StreamNode> nodes, IReadOnlyList<ChainPlan> chains, IReadOnlyList<ChannelEdge> edges, Dictionary<StreamNode, ChainPlan> chainOf, int maxParallelism)
    {
        Nodes = nodes;
        Chains = chains;
        Edges = edges;
        _chainOf = chainOf;
        MaxParallelism = maxParallelism;
    }

    /// <summary>All operators in build order.</summary>
    public IReadOnlyList<StreamNode> Nodes { get; }

    /// <summary>Chains in order of their heads.</summary>
    public IReadOnlyList<ChainPlan> Chains { get; }

    /// <summary>Edges between chains.</summary>
    public IReadOnlyList<ChannelEdge> Edges { get; }

    /// <summary>Number of key groups.</summary>
    public int MaxParallelism { get; }

    /// <summary>The chain that runs <paramref name="node"/>.</summary>
    public ChainPlan ChainOf(StreamNode node) => _chainOf[node];

    /// <summary>Total number of subtasks.</summary>
    public int SubtaskCount => Chains.Sum(static c => c.Parallelism);

    /// <summary>Validates the graph and groups it into chains.</summary>
    /// <exception cref="JobValidationException">With every problem found.</exception>
    public static JobPlan Create(IReadOnlyList<StreamNode> nodes, int defaultParallelism, int maxParallelism)
    {
        var errors = new List<string>();
        if (maxParallelism < 1 || maxParallelism > KeyGroups.UpperBound)
        {
            throw new JobValidationException($"Max parallelism must be between 1 and {KeyGroups.UpperBound}, was {maxParallelism}.");
        }

        if (defaultParallelism < 1)
        {
            errors.Add($"Parallelism must be at least 1, was {defaultParallelism}.");
        }
        else if (defaultParallelism > maxParallelism)
        {
            errors.Add($"Parallelism {defaultParallelism} is greater than the max parallelism {maxParallelism}.");
        }

        if (nodes.Count == 0)
        {
            errors.Add("The job defines no operators: start with builder.Source(...).");
        }

        foreach (var group in nodes.Where(static n => n.Uid is not null).GroupBy(static n => n.Uid!, StringComparer.Ordinal).Where(static g => g.Count() > 1))
        {
            errors.Add($"Uid '{group.Key}' is used by {group.Count()} operators ({string.Join(", ", group.Select(static n => $"#{n.Id}:{n.Kind}"))}); every Uid must be unique.");
        }

        foreach (var node in nodes)
        {
            if (node.IsStateful && node.Uid is null)
            {
                errors.Add($"Operator #{node.Id} ({node.Kind}{(node.Name is null ? string.Empty : $" '{node.Name}'")}) keeps state but has no Uid; call .Uid(\"...\") on it so its state can be matched on restore.");
            }

            if (node.Parallelism is { } p && p > maxParallelism)
            {
                errors.Add($"Operator '{node.EffectiveUid}' has parallelism {p}, greater than the max parallelism {maxParallelism}.");
            }
        }

        if (errors.Count > 0)
        {
            throw new JobValidationException(errors);
        }

        var chains = new List<ChainPlan>();
        var chainOf = new Dictionary<StreamNode, ChainPlan>();
        foreach (var node in nodes.OrderBy(static n => n.Id))
        {
            var parallelism = node.Parallelism ?? defaultParallelism;
            if (node.Inputs is [{ Partitioning: Partitioning.Forward } only]
                && chainOf.TryGetValue(only.Source, out var upstream)
                && upstream.Parallelism == parallelism)
            {
                upstream.NodeList.Add(node);
                chainOf[node] = upstream;
                continue;
            }

            var chain = new ChainPlan(chains.Count, node, parallelism);
            chains.Add(chain);
            chainOf[node] = chain;
        }

        var edges = new List<ChannelEdge>();
        foreach (var node in nodes.OrderBy(static n => n.Id))
        {
            foreach (var edge in node.Inputs)
            {
                var source = chainOf[edge.Source];
                var target = chainOf[node];
                if (ReferenceEquals(source, target))
                {
                    continue;
                }

                var partitioning = edge.Partitioning == Partitioning.Forward && source.Parallelism != target.Parallelism
                    ? Partitioning.Rebalance
                    : edge.Partitioning;
                var channelEdge = new ChannelEdge(edges.Count, edge, source, target, partitioning);
                edges.Add(channelEdge);
                source.AddOutput(channelEdge);
                target.AddInput(channelEdge);
            }
        }

        return new JobPlan(nodes, chains, edges, chainOf, maxParallelism);
    }
}
