using StreamGrains.Connectors;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// Decides what each subtask of an attempt starts from: the source splits it reads (with their positions) and the state
/// it restores, and whether a snapshot can be restored into a job at all. Pure functions of the plan, the spec and the
/// manifest; nothing here calls a grain or storage.
/// </summary>
internal static class RestorePlanner
{
    /// <summary>
    /// The splits of every source subtask, by chain index then subtask index. Without a snapshot the sources enumerate
    /// their splits and they are dealt round robin; with one, the restored splits (and their positions) stay with the
    /// subtask of the same index when the parallelism is unchanged, and are dealt round robin otherwise.
    /// </summary>
    /// <exception cref="JobValidationException">A source could not enumerate its splits.</exception>
    public static Dictionary<int, IReadOnlyList<SourceSplit>[]> AssignSplits(JobPlan plan, JobSpec spec, CheckpointManifest? restore)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(spec);
        var result = new Dictionary<int, IReadOnlyList<SourceSplit>[]>();
        foreach (var chain in plan.Chains.Where(static c => c.IsSource))
        {
            var perSubtask = new IReadOnlyList<SourceSplit>[chain.Parallelism];
            var restored = restore?.Operators.FirstOrDefault(o => o.Uid == chain.Head.Uid);
            if (restored is not null && restored.Parallelism == chain.Parallelism)
            {
                for (var i = 0; i < chain.Parallelism; i++)
                {
                    perSubtask[i] = restored.Subtasks.FirstOrDefault(s => s.SubtaskIndex == i)?.SourceSplits ?? [];
                }
            }
            else
            {
                // Another parallelism: every restored split (with its position) goes to one of the new subtasks.
                var all = restored is not null
                    ? restored.Subtasks.OrderBy(static s => s.SubtaskIndex).SelectMany(static s => s.SourceSplits ?? []).ToArray()
                    : Enumerate(chain, plan, spec);
                for (var i = 0; i < chain.Parallelism; i++)
                {
                    perSubtask[i] = all.Where((_, k) => k % chain.Parallelism == i).ToArray();
                }
            }

            result[chain.Index] = perSubtask;
        }

        return result;
    }

    /// <summary>The problems that keep <paramref name="manifest"/> from being restored into <paramref name="plan"/>; empty when it can be.</summary>
    public static List<string> Validate(CheckpointManifest manifest, JobPlan plan, JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(spec);
        var errors = new List<string>();
        if (manifest.MaxParallelism != plan.MaxParallelism)
        {
            errors.Add($"Checkpoint {manifest.CheckpointId} was taken with max parallelism {manifest.MaxParallelism} but the job has {plan.MaxParallelism}; the max parallelism is fixed for a job's life.");
        }

        var nodes = plan.Nodes.Where(static n => n.Uid is not null).ToDictionary(static n => n.Uid!, StringComparer.Ordinal);
        foreach (var state in manifest.Operators)
        {
            if (!nodes.TryGetValue(state.Uid, out var node))
            {
                if (!spec.AllowNonRestoredState)
                {
                    errors.Add($"Checkpoint {manifest.CheckpointId} has state of operator '{state.Uid}', which the job no longer has; set AllowNonRestoredState to drop that state.");
                }

                continue;
            }

            var keyedState = state.Subtasks.Any(static s => s.KeyGroups is not null);
            var splits = state.Subtasks.Any(static s => s.SourceSplits is not null);
            var isSource = plan.ChainOf(node).IsSource && plan.ChainOf(node).Head == node;
            if ((keyedState && !node.IsStateful) || (keyedState && isSource) || (splits && !isSource))
            {
                errors.Add($"Operator '{state.Uid}' has {(keyedState ? "keyed state" : "source positions")} in snapshot {manifest.CheckpointId}, but in the job it is a {node.Name} operator that cannot take them; give the new operator another Uid (and set AllowNonRestoredState to drop the old state).");
            }
        }

        return errors;
    }

    /// <summary>
    /// What subtask <paramref name="index"/> of <paramref name="chain"/> restores from <paramref name="restore"/>, or null
    /// when it restores nothing. State follows the Uid and the key groups, not the position: with the same parallelism
    /// the snapshot's subtask of the same index, otherwise every old subtask whose key groups overlap this subtask's.
    /// </summary>
    public static SubtaskRestore? SubtaskRestoreOf(CompletedCheckpoint? restore, ChainPlan chain, int index, bool ownsFiles)
    {
        ArgumentNullException.ThrowIfNull(chain);
        if (restore is null)
        {
            return null;
        }

        var operators = new Dictionary<string, IReadOnlyList<OperatorSubtaskState>>(StringComparer.Ordinal);
        var keyGroups = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(restore.Manifest.MaxParallelism, chain.Parallelism, index);
        foreach (var node in chain.Nodes.Where(static n => n.Uid is not null))
        {
            if (restore.Manifest.Operators.FirstOrDefault(o => o.Uid == node.Uid) is not { } state)
            {
                continue;
            }

            var parts = state.Parallelism == chain.Parallelism
                ? state.Subtasks.Where(s => s.SubtaskIndex == index && s.KeyGroups is not null).ToArray()
                : state.Subtasks.Where(s => s.KeyGroups is { } range && !range.Intersect(keyGroups).IsEmpty).ToArray();
            if (parts.Length > 0)
            {
                operators[node.Uid!] = parts;
            }
        }

        return operators.Count == 0 ? null : new SubtaskRestore { CheckpointId = restore.CheckpointId, ManifestPath = restore.ManifestPath, Operators = operators, OwnsFiles = ownsFiles };
    }

    private static IReadOnlyList<SourceSplit> Enumerate(ChainPlan chain, JobPlan plan, JobSpec spec)
    {
        try
        {
            return chain.Head.Accept(new SplitEnumerator(new SplitEnumerationContext(chain.Parallelism, plan.MaxParallelism, spec.Parameters)));
        }
        catch (Exception ex)
        {
            throw new JobValidationException($"Source '{chain.Head.EffectiveUid}' could not enumerate its splits: {ex.Message}", ex);
        }
    }

    private sealed class SplitEnumerator(SplitEnumerationContext context) : IStreamNodeVisitor<IReadOnlyList<SourceSplit>>
    {
        public IReadOnlyList<SourceSplit> VisitSource<T>(SourceNode<T> node) => node.Source.EnumerateSplits(context);

        public IReadOnlyList<SourceSplit> VisitMap<TIn, TOut>(MapNode<TIn, TOut> node) => [];

        public IReadOnlyList<SourceSplit> VisitFilter<T>(FilterNode<T> node) => [];

        public IReadOnlyList<SourceSplit> VisitFlatMap<TIn, TOut>(FlatMapNode<TIn, TOut> node) => [];

        public IReadOnlyList<SourceSplit> VisitKeyedProcess<TKey, TIn, TOut>(KeyedProcessNode<TKey, TIn, TOut> node)
            where TKey : notnull => [];

        public IReadOnlyList<SourceSplit> VisitSink<T>(SinkNode<T> node) => [];
    }
}
