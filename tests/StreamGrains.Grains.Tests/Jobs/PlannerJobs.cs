using StreamGrains.Connectors;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Tests;

/// <summary>
/// A job for the unit tests of the job grain's parts: a generator source "numbers" (parameters splits, sourceParallelism),
/// a keyed count "counts" (countParallelism), a map "doubled" and a discard sink "out". With failSplits the source
/// cannot enumerate its splits.
/// </summary>
public sealed class PlannerJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        var source = parameters.GetInt32("failSplits", 0) == 1
            ? new GeneratorSource<long>(static i => i) { Count = -1 }
            : new GeneratorSource<long>(static i => i) { Count = 1_000, Splits = parameters.GetInt32("splits", 4) };
        builder.Source(source).Uid("numbers").Parallelism(parameters.GetInt32("sourceParallelism", 2))
            .KeyBy(static i => i % 10)
            .Process(new LongCountPerKey()).Uid("counts").Parallelism(parameters.GetInt32("countParallelism", 2))
            .Map(static c => c * 2).Uid("doubled")
            .Sink(new DiscardSink<long>()).Uid("out");
    }
}

/// <summary>Specs, plans and manifests of <see cref="PlannerJob"/>.</summary>
internal static class PlannerJobs
{
    public const int MaxParallelism = 16;

    public static JobSpec Spec(JobParameters? parameters = null, bool allowNonRestoredState = false) => new()
    {
        JobType = typeof(PlannerJob).AssemblyQualifiedName!,
        JobId = new JobId("planner"),
        MaxParallelism = MaxParallelism,
        Parameters = parameters ?? JobParameters.Empty,
        AllowNonRestoredState = allowNonRestoredState,
    };

    public static JobPlan Plan(JobSpec spec) => JobDefinitions.Plan(spec);

    public static ChainPlan ChainHeadedBy(JobPlan plan, string uid) => plan.Chains.Single(c => c.Head.Uid == uid);

    /// <summary>A manifest of the job taken with <paramref name="sourceParallelism"/> and <paramref name="countParallelism"/>: source subtask i holds splits "s{i}-a" and "s{i}-b"; count subtask i holds one file named after it and the checkpoint.</summary>
    public static CheckpointManifest Manifest(int sourceParallelism, int countParallelism, long checkpointId = 7, int maxParallelism = MaxParallelism, params OperatorState[] extra) => new()
    {
        JobId = "planner",
        JobType = typeof(PlannerJob).FullName!,
        CheckpointId = checkpointId,
        MaxParallelism = maxParallelism,
        Operators =
        [
            new OperatorState
            {
                Uid = "numbers",
                Parallelism = sourceParallelism,
                Subtasks = Enumerable.Range(0, sourceParallelism).Select(i => new OperatorSubtaskState { SubtaskIndex = i, SourceSplits = [new SourceSplit($"s{i}-a", i * 10), new SourceSplit($"s{i}-b", (i * 10) + 1)] }).ToArray(),
            },
            new OperatorState
            {
                Uid = "counts",
                Parallelism = countParallelism,
                Subtasks = Enumerable.Range(0, countParallelism).Select(i => new OperatorSubtaskState { SubtaskIndex = i, KeyedState = Handle(KeyGroups.ComputeKeyGroupRangeForOperatorIndex(maxParallelism, countParallelism, i), $"planner/shared/counts-{i}-{checkpointId}.sst") }).ToArray(),
            },
            .. extra,
        ],
    };

    public static KeyedStateHandle Handle(KeyGroupRange keyGroups, params string[] paths) => new()
    {
        KeyGroups = keyGroups,
        Files = paths.Select(static p => new StateFile { Name = Path.GetFileName(p), Path = p, Length = 1, Shared = true }).ToArray(),
    };

    public static CompletedCheckpoint Completed(CheckpointManifest manifest) => new()
    {
        CheckpointId = manifest.CheckpointId,
        ManifestPath = $"planner/chk-{manifest.CheckpointId}/_manifest.json",
        Manifest = manifest,
    };
}
