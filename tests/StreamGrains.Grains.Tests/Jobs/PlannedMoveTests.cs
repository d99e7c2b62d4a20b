using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.Grains.Jobs;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Tests;

public sealed class PlannedMoveTests : IDisposable
{
    private static readonly SiloAddress Leaving = RecordingSubtaskGateway.Silo(7001);
    private static readonly SiloAddress Staying = RecordingSubtaskGateway.Silo(7002);
    private readonly TempStorage _storage = new();

    public void Dispose() => _storage.Dispose();

    [Fact]
    public async Task A_completed_stopping_checkpoint_moves_the_job_to_a_new_attempt_without_a_failure_or_a_restart()
    {
        var job = new MovingJob();
        var coordinator = new RecordingCoordinator { StopCheckpoint = static _ => Task.FromResult(new CheckpointStats { CheckpointId = 5, Outcome = CheckpointOutcome.Completed }) };
        var (move, _) = Move(job, coordinator, subtaskOn: Leaving);

        var moved = await move.OnSiloLeavingAsync(Leaving.ToString(), TimeSpan.FromSeconds(5), jobGrainLeaves: false);
        await job.Deployed.Task;

        Assert.True(moved);
        Assert.Equal([1], coordinator.StopCheckpoints);
        Assert.True(move.IsLeaving(Leaving));
        Assert.False(move.IsLeaving(Staying));
        Assert.Equal(["stop checkpointing a1", "state Restarting", "release a1 Failover", "deploy a2"], job.Log.Where(static l => l != "persist"));
        Assert.Equal((2, 0, 1), (job.Record.Attempt, job.Record.Restarts, job.Record.PlannedMoves));
        Assert.Null(job.Record.Failure);
        Assert.Contains(job.Record.Warnings, static w => w.Contains("checkpoint 5", StringComparison.Ordinal) && w.Contains("planned move, not a failure", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_silo_without_subtasks_of_the_running_attempt_takes_no_checkpoint_and_moves_nothing()
    {
        var job = new MovingJob();
        var coordinator = new RecordingCoordinator { StopCheckpoint = static _ => throw new InvalidOperationException("no checkpoint expected") };
        var (move, _) = Move(job, coordinator, subtaskOn: Staying);

        var moved = await move.OnSiloLeavingAsync(Leaving.ToString(), TimeSpan.FromSeconds(5), jobGrainLeaves: false);

        Assert.False(moved);
        Assert.Empty(coordinator.StopCheckpoints);
        Assert.Empty(job.Log);
        Assert.True(move.IsLeaving(Leaving), "the next deployment avoids the silo all the same");
    }

    [Theory]
    [InlineData(CheckpointOutcome.InProgress)]
    [InlineData(CheckpointOutcome.Aborted)]
    public async Task A_stopping_checkpoint_that_does_not_complete_in_time_leaves_the_job_to_the_failover(CheckpointOutcome outcome)
    {
        var job = new MovingJob();
        var coordinator = new RecordingCoordinator { StopCheckpoint = _ => Task.FromResult(new CheckpointStats { CheckpointId = 5, Outcome = outcome }) };
        var (move, _) = Move(job, coordinator, subtaskOn: Leaving);

        var moved = await move.OnSiloLeavingAsync(Leaving.ToString(), TimeSpan.FromSeconds(5), jobGrainLeaves: false);

        Assert.False(moved);
        Assert.Empty(job.Log);
        Assert.Equal((JobState.Running, 1, 0), (job.Record.State, job.Record.Attempt, job.Record.PlannedMoves));
    }

    [Fact]
    public async Task When_the_job_grain_leaves_the_move_is_recorded_and_made_by_its_next_activation()
    {
        var job = new MovingJob();
        var coordinator = new RecordingCoordinator { StopCheckpoint = static _ => Task.FromResult(new CheckpointStats { CheckpointId = 8, Outcome = CheckpointOutcome.Completed }) };
        var (move, _) = Move(job, coordinator, subtaskOn: Staying);

        var moved = await move.OnSiloLeavingAsync(Leaving.ToString(), TimeSpan.FromSeconds(5), jobGrainLeaves: true);

        Assert.True(moved);
        Assert.Equal(["stop checkpointing a1", "persist"], job.Log);
        Assert.Equal(Leaving.ToString(), job.Record.LeavingSilo);
        Assert.Contains("checkpoint 8", job.Record.MovePending, StringComparison.Ordinal);

        // The next activation: a new job grain with the record read back.
        job.Log.Clear();
        var (next, _) = Move(job, new RecordingCoordinator(), subtaskOn: null);
        var failedOver = false;
        await next.ResumePendingOrAsync(() =>
        {
            failedOver = true;
            return Task.CompletedTask;
        });
        await job.Deployed.Task;

        Assert.False(failedOver);
        Assert.True(next.IsLeaving(Leaving));
        Assert.Contains("deploy a2", job.Log);
        Assert.Equal((2, 0, 1), (job.Record.Attempt, job.Record.Restarts, job.Record.PlannedMoves));
        Assert.Null(job.Record.MovePending);
        Assert.Null(job.Record.LeavingSilo);
    }

    [Fact]
    public async Task A_reactivated_job_grain_without_a_pending_move_fails_over()
    {
        var job = new MovingJob();
        var (move, _) = Move(job, new RecordingCoordinator(), subtaskOn: null);
        var failedOver = false;

        await move.ResumePendingOrAsync(() =>
        {
            failedOver = true;
            return Task.CompletedTask;
        });

        Assert.True(failedOver);
        Assert.Empty(job.Log);
    }

    [Fact]
    public void The_jobs_of_a_silo_are_those_of_its_job_and_subtask_grains()
    {
        var grains = new[]
        {
            GrainId.Create("streamgrains.job", "job-a"),
            GrainId.Create("streamgrains.subtask", new SubtaskId(new JobId("job-b"), 1, 0, 3).GrainKey),
            GrainId.Create("streamgrains.subtask", new SubtaskId(new JobId("job-a"), 0, 2, 3).GrainKey),
            GrainId.Create("streamgrains.coordinator", "job-c"),
        };

        Assert.Equal(["job-a", "job-b"], SiloDeparture.JobsOf(grains));
    }

    private (PlannedMove Move, FailoverHandler Failover) Move(MovingJob job, RecordingCoordinator coordinator, SiloAddress? subtaskOn)
    {
        var roster = new SubtaskRoster(new RecordingSubtaskGateway());
        if (subtaskOn is not null)
        {
            roster.Set(new SubtaskId(job.Id, 0, 0, job.Record.Attempt), new SubtaskStatus { Chain = "src", Attempt = job.Record.Attempt, Silo = subtaskOn.ToString() });
        }

        var failover = new FailoverHandler(job, new CheckpointCleaner(_storage.Storage, NullLogger.Instance), new RestorePointReader(_storage.Storage), _storage.Storage, TimeProvider.System, NullLogger.Instance);
        return (new PlannedMove(job, failover, roster, () => coordinator, NullLogger.Instance), failover);
    }

    /// <summary>A running, checkpointed job without retained checkpoints that records what is done to it.</summary>
    private sealed class MovingJob : IRestartableJob
    {
        private static readonly JobSpec Spec = PlannerJobs.Spec() with
        {
            JobId = new JobId("moving"),
            Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromMinutes(1) },
            Restart = RestartStrategy.None,
        };

        public List<string> Log { get; } = [];

        public TaskCompletionSource Deployed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public JobId Id => Spec.JobId!.Value;

        public JobRecord Record { get; } = new() { Spec = Spec, State = JobState.Running, Attempt = 1 };

        JobRecord? IRestartableJob.Record => Record;

        public JobPlan Plan { get; } = PlannerJobs.Plan(Spec);

        public void SetState(JobState state)
        {
            Log.Add($"state {state}");
            Record.State = state;
        }

        public bool Superseded => false;

        public Task<bool> PersistAsync()
        {
            Log.Add("persist");
            return Task.FromResult(true);
        }

        public Task StopCheckpointingAsync(int attempt)
        {
            Log.Add($"stop checkpointing a{attempt}");
            return Task.CompletedTask;
        }

        public Task ReleaseSubtasksAsync(int attempt, StopReason reason)
        {
            Log.Add($"release a{attempt} {reason}");
            return Task.CompletedTask;
        }

        public Task FailForGoodAsync(JobFailure failure)
        {
            Log.Add($"failed: {failure}");
            Record.Failure = failure;
            Record.State = JobState.Failed;
            return Task.CompletedTask;
        }

        public Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAttemptAsync(int attempt, CompletedCheckpoint? restore, bool ownsFiles)
        {
            Log.Add($"deploy a{attempt}");
            Record.State = JobState.Running;
            Deployed.TrySetResult();
            return Task.FromResult<(DeployOutcome, JobFailure?)>((DeployOutcome.Started, null));
        }

        public Task<IReadOnlyList<CompletedCheckpoint>> GetCompletedCheckpointsAsync() => Task.FromResult<IReadOnlyList<CompletedCheckpoint>>([]);

        public Task DiscardCheckpointAsync(long checkpointId, string reason) => Task.CompletedTask;
    }
}
