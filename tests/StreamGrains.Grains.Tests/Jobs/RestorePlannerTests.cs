using StreamGrains.Connectors;
using StreamGrains.Grains.Jobs;
using StreamGrains.Graph;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Tests;

public sealed class RestorePlannerTests
{
    [Fact]
    public void Without_a_snapshot_the_enumerated_splits_are_dealt_round_robin()
    {
        var spec = PlannerJobs.Spec(JobParameters.Empty.With("splits", 5).With("sourceParallelism", 2));
        var plan = PlannerJobs.Plan(spec);
        var source = PlannerJobs.ChainHeadedBy(plan, "numbers");

        var splits = RestorePlanner.AssignSplits(plan, spec, restore: null);

        var perSubtask = Assert.Single(splits, p => p.Key == source.Index).Value;
        Assert.Equal(2, perSubtask.Length);
        Assert.Equal(3, perSubtask[0].Count);
        Assert.Equal(2, perSubtask[1].Count);
        Assert.Equal(5, perSubtask.SelectMany(static s => s).Select(static s => s.Id).Distinct().Count());
        Assert.DoesNotContain(splits, p => p.Key != source.Index);
    }

    [Fact]
    public void With_the_same_parallelism_each_subtask_keeps_its_restored_splits_and_positions()
    {
        var spec = PlannerJobs.Spec(JobParameters.Empty.With("sourceParallelism", 2));
        var plan = PlannerJobs.Plan(spec);
        var source = PlannerJobs.ChainHeadedBy(plan, "numbers");

        var splits = RestorePlanner.AssignSplits(plan, spec, PlannerJobs.Manifest(sourceParallelism: 2, countParallelism: 2))[source.Index];

        Assert.Equal([new SourceSplit("s0-a", 0), new SourceSplit("s0-b", 1)], splits[0]);
        Assert.Equal([new SourceSplit("s1-a", 10), new SourceSplit("s1-b", 11)], splits[1]);
    }

    [Fact]
    public void With_another_parallelism_every_restored_split_goes_to_exactly_one_new_subtask()
    {
        var spec = PlannerJobs.Spec(JobParameters.Empty.With("sourceParallelism", 3));
        var plan = PlannerJobs.Plan(spec);
        var source = PlannerJobs.ChainHeadedBy(plan, "numbers");

        var splits = RestorePlanner.AssignSplits(plan, spec, PlannerJobs.Manifest(sourceParallelism: 2, countParallelism: 2))[source.Index];

        Assert.Equal(3, splits.Length);
        var all = splits.SelectMany(static s => s).ToArray();
        Assert.Equal(["s0-a", "s0-b", "s1-a", "s1-b"], all.Select(static s => s.Id).Order(StringComparer.Ordinal));
        Assert.Contains(new SourceSplit("s1-b", 11), all);
        Assert.All(splits, static s => Assert.InRange(s.Count, 1, 2));
    }

    [Fact]
    public void A_source_that_cannot_enumerate_its_splits_is_a_validation_error_naming_it()
    {
        var spec = PlannerJobs.Spec(JobParameters.Empty.With("failSplits", 1));
        var plan = PlannerJobs.Plan(spec);

        var error = Assert.Throws<JobValidationException>(() => RestorePlanner.AssignSplits(plan, spec, restore: null));

        Assert.Contains("'numbers'", error.Message, StringComparison.Ordinal);
        Assert.Contains("Count must not be negative", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_snapshot_of_the_same_job_validates()
    {
        var spec = PlannerJobs.Spec();

        Assert.Empty(RestorePlanner.Validate(PlannerJobs.Manifest(2, 3), PlannerJobs.Plan(spec), spec));
    }

    [Fact]
    public void Another_max_parallelism_is_refused()
    {
        var spec = PlannerJobs.Spec();

        var errors = RestorePlanner.Validate(PlannerJobs.Manifest(2, 2, maxParallelism: 32), PlannerJobs.Plan(spec), spec);

        Assert.Contains(errors, static e => e.Contains("max parallelism 32", StringComparison.Ordinal) && e.Contains("has 16", StringComparison.Ordinal));
    }

    [Fact]
    public void State_of_a_removed_operator_is_refused_unless_non_restored_state_is_allowed()
    {
        var gone = new OperatorState { Uid = "gone", Parallelism = 1, Subtasks = [new OperatorSubtaskState { SubtaskIndex = 0, KeyedState = PlannerJobs.Handle(new KeyGroupRange(0, 15), "planner/shared/gone.sst") }] };
        var manifest = PlannerJobs.Manifest(2, 2, extra: gone);
        var strict = PlannerJobs.Spec();
        var lenient = PlannerJobs.Spec(allowNonRestoredState: true);

        var errors = RestorePlanner.Validate(manifest, PlannerJobs.Plan(strict), strict);

        Assert.Contains(errors, static e => e.Contains("'gone'", StringComparison.Ordinal) && e.Contains("AllowNonRestoredState", StringComparison.Ordinal));
        Assert.Empty(RestorePlanner.Validate(manifest, PlannerJobs.Plan(lenient), lenient));
    }

    [Fact]
    public void Keyed_state_for_a_stateless_operator_or_positions_for_a_non_source_are_refused()
    {
        var keyedForMap = new OperatorState { Uid = "doubled", Parallelism = 1, Subtasks = [new OperatorSubtaskState { SubtaskIndex = 0, KeyedState = PlannerJobs.Handle(new KeyGroupRange(0, 15), "planner/shared/x.sst") }] };
        var splitsForCount = new OperatorState { Uid = "out", Parallelism = 1, Subtasks = [new OperatorSubtaskState { SubtaskIndex = 0, SourceSplits = [new SourceSplit("x", 1)] }] };
        var spec = PlannerJobs.Spec(allowNonRestoredState: true);

        var errors = RestorePlanner.Validate(PlannerJobs.Manifest(2, 2, extra: [keyedForMap, splitsForCount]), PlannerJobs.Plan(spec), spec);

        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, static e => e.StartsWith("Operator 'doubled' has keyed state", StringComparison.Ordinal));
        Assert.Contains(errors, static e => e.StartsWith("Operator 'out' has source positions", StringComparison.Ordinal));
    }

    [Fact]
    public void With_the_same_parallelism_a_subtask_restores_the_state_of_its_own_index()
    {
        var spec = PlannerJobs.Spec(JobParameters.Empty.With("countParallelism", 2));
        var counts = PlannerJobs.ChainHeadedBy(PlannerJobs.Plan(spec), "counts");
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2));

        var restore = RestorePlanner.SubtaskRestoreOf(checkpoint, counts, 1, ownsFiles: true);

        Assert.NotNull(restore);
        Assert.Equal(checkpoint.CheckpointId, restore.CheckpointId);
        Assert.Equal(checkpoint.ManifestPath, restore.ManifestPath);
        Assert.True(restore.OwnsFiles);
        var part = Assert.Single(Assert.Single(restore.Operators, static o => o.Key == "counts").Value);
        Assert.Equal(1, part.SubtaskIndex);
        Assert.Equal(new KeyGroupRange(8, 15), part.KeyGroups);
    }

    [Fact]
    public void With_another_parallelism_a_subtask_restores_every_old_subtask_whose_key_groups_overlap_its_own()
    {
        var spec = PlannerJobs.Spec(JobParameters.Empty.With("countParallelism", 3));
        var counts = PlannerJobs.ChainHeadedBy(PlannerJobs.Plan(spec), "counts");
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2));

        // New subtask 1 of 3 owns key groups 6..10 (of 16): old subtask 0 (0..7) and old subtask 1 (8..15).
        var middle = RestorePlanner.SubtaskRestoreOf(checkpoint, counts, 1, ownsFiles: false);
        var first = RestorePlanner.SubtaskRestoreOf(checkpoint, counts, 0, ownsFiles: false);

        Assert.Equal([0, 1], middle!.Operators["counts"].Select(static p => p.SubtaskIndex));
        Assert.False(middle.OwnsFiles);
        Assert.Equal([0], first!.Operators["counts"].Select(static p => p.SubtaskIndex));
    }

    [Fact]
    public void A_subtask_restores_nothing_without_a_snapshot_or_without_keyed_state_of_its_operators()
    {
        var spec = PlannerJobs.Spec();
        var plan = PlannerJobs.Plan(spec);
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2));

        Assert.Null(RestorePlanner.SubtaskRestoreOf(null, PlannerJobs.ChainHeadedBy(plan, "counts"), 0, ownsFiles: true));

        // The source's entry has positions only; they travel as splits, not as state to restore.
        Assert.Null(RestorePlanner.SubtaskRestoreOf(checkpoint, PlannerJobs.ChainHeadedBy(plan, "numbers"), 0, ownsFiles: true));
    }
}
