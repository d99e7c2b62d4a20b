using StreamGrains.Connectors;
using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Tests;

public sealed class SourceRecordCounterTests
{
    private static readonly JobId Job = new("planner");

    [Fact]
    public void Without_a_restore_an_attempt_starts_from_zero()
    {
        Assert.Equal(0, SourceRecordCounter.ReadUpTo(null, new Dictionary<int, long> { [1] = 500 }, Job));
    }

    [Fact]
    public void A_restore_starts_from_the_count_of_the_attempt_that_took_the_checkpoint_plus_what_its_sources_read_up_to_the_barrier()
    {
        var checkpoint = Checkpoint(attempt: 2, 300, 450);

        Assert.Equal(1_000 + 750, SourceRecordCounter.ReadUpTo(checkpoint, new Dictionary<int, long> { [1] = 0, [2] = 1_000, [3] = 1_750 }, Job));
    }

    [Fact]
    public void A_snapshot_of_another_job_or_without_counts_adds_only_what_it_records()
    {
        var other = Checkpoint(attempt: 2, 300, 450) with { Manifest = Checkpoint(attempt: 2, 300, 450).Manifest with { JobId = "other" } };
        var old = Checkpoint(attempt: 2, null, null);

        Assert.Equal(750, SourceRecordCounter.ReadUpTo(other, new Dictionary<int, long> { [2] = 1_000 }, Job));
        Assert.Equal(1_000, SourceRecordCounter.ReadUpTo(old, new Dictionary<int, long> { [2] = 1_000 }, Job));
    }

    /// <summary>A checkpoint of the planner job taken by <paramref name="attempt"/> whose two sources had read the given records.</summary>
    private static CompletedCheckpoint Checkpoint(int attempt, long? first, long? second)
    {
        var manifest = PlannerJobs.Manifest(2, 2, checkpointId: 5);
        var sources = manifest.Operators[0] with
        {
            Subtasks =
            [
                new OperatorSubtaskState { SubtaskIndex = 0, SourceSplits = [new SourceSplit("a", 1)], RecordsRead = first },
                new OperatorSubtaskState { SubtaskIndex = 1, SourceSplits = [new SourceSplit("b", 1)], RecordsRead = second },
            ],
        };
        return PlannerJobs.Completed(manifest with { Attempt = attempt, Operators = [sources, .. manifest.Operators.Skip(1)] });
    }
}
