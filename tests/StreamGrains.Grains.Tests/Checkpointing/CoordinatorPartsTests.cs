using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Connectors;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Tests;

/// <summary>The checkpoint coordinator's parts, each alone.</summary>
public sealed class CoordinatorPartsTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly TempStorage _storage = new();

    public void Dispose() => _storage.Dispose();

    [Fact]
    public void Failures_count_until_one_more_than_tolerated_and_a_success_resets_them_while_attempt_ends_do_not_count()
    {
        var failures = new CheckpointFailureManager(tolerable: 2);

        Assert.False(failures.OnFailure(CheckpointFailureReason.Timeout));
        Assert.False(failures.OnFailure(CheckpointFailureReason.Declined));
        Assert.False(failures.OnFailure(CheckpointFailureReason.AttemptEnded));
        Assert.False(failures.OnFailure(CheckpointFailureReason.SubtasksFinished));
        Assert.Equal(2, failures.ConsecutiveFailures);
        failures.OnSuccess();
        Assert.False(failures.OnFailure(CheckpointFailureReason.ManifestWriteFailed));
        Assert.False(failures.OnFailure(CheckpointFailureReason.TriggerFailed));
        Assert.True(failures.OnFailure(CheckpointFailureReason.Timeout));
    }

    [Fact]
    public void The_stats_tracker_keeps_the_ten_most_recent_newest_first_replacing_a_reported_checkpoint_and_the_latest_completed()
    {
        var tracker = new CheckpointStatsTracker();
        for (var id = 1; id <= 12; id++)
        {
            tracker.Report(new CheckpointStats { CheckpointId = id, Outcome = CheckpointOutcome.InProgress });
        }

        tracker.Report(new CheckpointStats { CheckpointId = 11, Outcome = CheckpointOutcome.Completed });
        tracker.Report(new CheckpointStats { CheckpointId = 12, Outcome = CheckpointOutcome.Aborted });

        Assert.Equal([12, 11, 10, 9, 8, 7, 6, 5, 4, 3], tracker.Recent.Select(static s => s.CheckpointId));
        Assert.Equal(11, tracker.LatestCompleted!.CheckpointId);
        Assert.Equal(CheckpointOutcome.Aborted, tracker.Find(12)!.Outcome);
        Assert.Null(tracker.Find(1));
    }

    [Fact]
    public void A_pending_checkpoint_takes_each_expected_acknowledgement_once_and_builds_a_manifest_of_the_stateful_operators()
    {
        var spec = PlannerJobs.Spec();
        var plan = PlannerJobs.Plan(spec);
        var counts = PlannerJobs.ChainHeadedBy(plan, "counts");
        var source = PlannerJobs.ChainHeadedBy(plan, "numbers");
        var expected = new[] { new SubtaskId(spec.JobId!.Value, source.Index, 0, 1), new SubtaskId(spec.JobId!.Value, counts.Index, 0, 1) };
        var pending = new PendingCheckpoint(5, 1, T0, expected);

        Assert.False(pending.Acknowledge(Ack(4, expected[0], "numbers", new OperatorSubtaskState { SubtaskIndex = 0, SourceSplits = [] }), T0));
        Assert.True(pending.Acknowledge(Ack(5, expected[0], "numbers", new OperatorSubtaskState { SubtaskIndex = 0, SourceSplits = [new SourceSplit("s", 3)] }), T0.AddSeconds(1)));
        Assert.False(pending.Acknowledge(Ack(5, expected[0], "numbers", new OperatorSubtaskState { SubtaskIndex = 0, SourceSplits = [] }), T0));
        Assert.False(pending.Acknowledge(Ack(5, expected[1] with { Attempt = 2 }, "counts", new OperatorSubtaskState { SubtaskIndex = 0 }), T0));
        Assert.False(pending.IsFullyAcknowledged);
        Assert.True(pending.Acknowledge(Ack(5, expected[1], "counts", new OperatorSubtaskState { SubtaskIndex = 0, KeyedState = PlannerJobs.Handle(new KeyGroupRange(0, 15), "planner/shared/a.sst") }, uploaded: 100), T0.AddSeconds(2)));
        Assert.True(pending.IsFullyAcknowledged);

        var manifest = pending.BuildManifest(spec, plan, T0.AddSeconds(3));
        var stats = pending.Stats(CheckpointOutcome.Completed, T0.AddSeconds(3));

        Assert.Equal(["numbers", "counts"], manifest.Operators.Select(static o => o.Uid));
        Assert.Equal(5, manifest.CheckpointId);
        Assert.Equal(PlannerJobs.MaxParallelism, manifest.MaxParallelism);
        Assert.Equal(new SourceSplit("s", 3), manifest.Operators[0].Subtasks[0].SourceSplits![0]);
        Assert.Equal(TimeSpan.FromSeconds(3), stats.Duration);
        Assert.Equal(100, stats.BytesUploaded);
        Assert.Equal(T0.AddSeconds(2), stats.Subtasks.Single(static s => s.BytesUploaded == 100).AcknowledgedAt);
    }

    [Fact]
    public async Task The_completed_store_loads_readable_manifests_in_order_retains_the_newest_and_names_the_shared_files_nothing_refers_to()
    {
        var first = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 1));
        var second = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 2));
        await _storage.PutAsync(second);
        await _storage.PutAsync(first);
        await _storage.PutAsync("planner/chk-3/_manifest.json", "not a manifest");

        var store = await CompletedCheckpointStore.LoadAsync(_storage.Storage, "planner", NullLogger.Instance, CancellationToken.None);
        var third = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 4) with { Operators = second.Manifest.Operators });
        var (subsumed, unreferenced) = store.Add(third, retained: 2);

        Assert.Equal([first.CheckpointId], subsumed.Select(static c => c.CheckpointId));
        Assert.Equal(first.Manifest.Files().Where(static f => f.Shared).Select(static f => f.Path).Order(StringComparer.Ordinal), unreferenced.Order(StringComparer.Ordinal));
        Assert.Equal([2, 4], store.Checkpoints.Select(static c => c.CheckpointId));
        Assert.Empty(store.Remove(2));
        Assert.Equal(second.Manifest.Files().Select(static f => f.Path).Order(StringComparer.Ordinal), store.Remove(4).Order(StringComparer.Ordinal));
        Assert.Null(store.Latest);
    }

    private static SubtaskCheckpointAck Ack(long checkpointId, SubtaskId subtask, string uid, OperatorSubtaskState state, long uploaded = 0) => new()
    {
        CheckpointId = checkpointId,
        Subtask = subtask,
        Operators = new Dictionary<string, OperatorSubtaskState> { [uid] = state },
        Stats = new SubtaskCheckpointStats { SubtaskIndex = subtask.Index, BytesUploaded = uploaded },
    };
}
