using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.Grains.Jobs;
using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

public sealed class FailoverHandlerTests : IDisposable
{
    private static readonly JobFailure Boom = JobFailure.Of(JobFailureKind.UserCode, "boom");
    private readonly TempStorage _storage = new();

    public void Dispose() => _storage.Dispose();

    [Fact]
    public async Task A_failure_restarts_the_job_from_its_latest_checkpoint_which_the_job_owns()
    {
        var (older, latest) = await StoreTwoCheckpointsAsync();
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [latest, older] };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1);

        Assert.Equal(["stop checkpointing a1", "state Restarting", "release a1 Failover", "deploy a2 from 9 owned"], job.Log.Where(static l => !l.StartsWith("persist", StringComparison.Ordinal)));
        Assert.Equal(1, job.Record.Restarts);
        Assert.Equal(2, job.Record.Attempt);
        Assert.Contains(job.Record.Warnings, static w => w.StartsWith("Attempt 1 failed and the job restarts (1 of 3 restarts): user code: boom", StringComparison.Ordinal));
        Assert.True(job.Persisted >= 2, "the restart and the new attempt are persisted");
    }

    [Fact]
    public async Task An_activation_whose_record_write_is_refused_as_another_activations_stops_and_deploys_nothing()
    {
        var (older, latest) = await StoreTwoCheckpointsAsync();
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [latest, older], RefusePersist = true };
        var handler = Handler(job);

        await handler.FailoverAsync(Boom, failedAttempt: 1);
        await handler.FailoverAsync(Boom, failedAttempt: 1);

        // The other activation owns the attempt now: its subtasks are neither released nor replaced by this one.
        Assert.Equal(["stop checkpointing a1", "state Restarting", "persist"], job.Log);
        Assert.True(job.Superseded);
        Assert.False(handler.IsRestarting);
    }

    [Fact]
    public async Task When_the_restart_strategy_allows_no_more_restarts_the_job_fails_for_good_with_the_failure()
    {
        var job = new FakeJob(Spec(maxRestarts: 2)) { Checkpoints = [] };
        job.Record.Restarts = 2;

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1);

        Assert.Same(Boom, job.Record.Failure);
        Assert.Equal(JobState.Failed, job.Record.State);
        Assert.DoesNotContain(job.Log, static l => l.StartsWith("deploy", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_checkpoint_with_a_missing_file_is_discarded_with_a_warning_and_the_one_before_it_is_restored()
    {
        var (older, latest) = await StoreTwoCheckpointsAsync();
        var missing = latest.Manifest.Files().First().Path;
        await _storage.Storage.DeleteAsync(missing, CancellationToken.None);
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [latest, older] };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1);

        Assert.Contains($"discard 9: its file '{missing}' is missing from checkpoint storage", job.Log);
        Assert.Contains("deploy a2 from 7 owned", job.Log);
        Assert.Contains(job.Record.Warnings, w => w.StartsWith("Checkpoint 9 ", StringComparison.Ordinal) && w.Contains(missing, StringComparison.Ordinal));
    }

    [Fact]
    public async Task When_no_checkpoint_can_be_restored_the_job_fails_with_kind_restore_failed()
    {
        var (older, latest) = await StoreTwoCheckpointsAsync();
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [latest, older] };
        job.Outcomes.Enqueue((DeployOutcome.RestoreFailed, JobFailure.Of(JobFailureKind.RestoreFailed, "corrupt 9")));
        job.Outcomes.Enqueue((DeployOutcome.RestoreFailed, null));

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1);

        Assert.Equal(["discard 9: corrupt 9", "discard 7: its state could not be read"], job.Log.Where(static l => l.StartsWith("discard", StringComparison.Ordinal)));
        Assert.Equal(3, job.Record.Attempt);
        Assert.Equal(JobState.Failed, job.Record.State);
        Assert.Equal(JobFailureKind.RestoreFailed, job.Record.Failure!.Kind);
    }

    [Fact]
    public async Task An_attempt_that_fails_to_deploy_is_another_failure_and_the_job_restarts_again()
    {
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [] };
        var deployFailure = JobFailure.Of(JobFailureKind.Runtime, "deploy failed");
        job.Outcomes.Enqueue((DeployOutcome.Failed, deployFailure));

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1);

        Assert.Equal(["deploy a2 from nothing", "deploy a3 from nothing"], job.Log.Where(static l => l.StartsWith("deploy", StringComparison.Ordinal)));
        Assert.Equal(2, job.Record.Restarts);
        Assert.Contains(job.Record.Warnings, static w => w.StartsWith("Attempt 2 failed", StringComparison.Ordinal) && w.Contains("deploy failed", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(RestoreMode.Claim, true)]
    [InlineData(RestoreMode.NoClaim, false)]
    public async Task Without_checkpoints_the_job_restarts_from_the_snapshot_it_was_submitted_with(RestoreMode mode, bool owned)
    {
        var savepoint = PlannerJobs.Manifest(2, 2, checkpointId: 3) with { Kind = SnapshotKind.Savepoint };
        await _storage.PutAsync("savepoints/sp-1/_manifest.json", System.Text.Encoding.UTF8.GetString(State.Snapshots.ManifestJson.Serialize(savepoint)));
        foreach (var file in savepoint.Files())
        {
            await _storage.PutAsync($"savepoints/sp-1/{file.Path}");
        }

        var job = new FakeJob(Spec(maxRestarts: 3) with { RestoreFrom = "savepoints/sp-1", RestoreMode = mode }) { Checkpoints = [] };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1);

        Assert.Contains($"deploy a2 from 3 {(owned ? "owned" : "not owned")}", job.Log);
        Assert.Equal("savepoints/sp-1/planner/shared/counts-0-3.sst", job.Restored!.Manifest.Operators.Single(static o => o.Uid == "counts").Subtasks[0].KeyedState!.Files[0].Path);
    }

    [Fact]
    public async Task A_snapshot_to_restart_from_that_is_gone_fails_the_job_with_kind_restore_failed()
    {
        var job = new FakeJob(Spec(maxRestarts: 3) with { RestoreFrom = "savepoints/gone" }) { Checkpoints = [] };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1);

        Assert.Equal(JobFailureKind.RestoreFailed, job.Record.Failure!.Kind);
        Assert.Contains("savepoints/gone", job.Record.Failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(job.Log, static l => l.StartsWith("deploy", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Storage_that_cannot_tell_whether_files_exist_keeps_the_checkpoint_and_fails_the_restart_with_kind_storage()
    {
        var latest = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 9));
        await _storage.PutAsync(latest);
        var job = new FakeJob(Spec(maxRestarts: 2)) { Checkpoints = [latest] };
        var unreachable = new UnreachableStorage(_storage.Storage);

        await new FailoverHandler(job, new CheckpointCleaner(unreachable, NullLogger.Instance), new RestorePointReader(unreachable), unreachable, TimeProvider.System, NullLogger.Instance).FailoverAsync(Boom, failedAttempt: 1);

        Assert.DoesNotContain(job.Log, static l => l.StartsWith("discard", StringComparison.Ordinal) || l.StartsWith("deploy", StringComparison.Ordinal));
        Assert.Equal(JobState.Failed, job.Record.State);
        Assert.Equal(JobFailureKind.Storage, job.Record.Failure!.Kind);
        Assert.Equal(typeof(CheckpointStorageException).FullName, job.Record.Failure.ExceptionType);
        Assert.StartsWith("Checking the files of checkpoint 9 failed", job.Record.Failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failure_of_the_new_attempt_reported_during_the_restart_is_handled_after_it()
    {
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [] };
        var handler = Handler(job);
        var second = JobFailure.Of(JobFailureKind.UserCode, "second");
        job.OnDeploy = attempt => attempt == 2 ? handler.FailoverAsync(second, 2) : Task.CompletedTask;

        await handler.FailoverAsync(Boom, failedAttempt: 1);
        await job.Deployed(3);

        Assert.Equal(["deploy a2 from nothing", "deploy a3 from nothing"], job.Log.Where(static l => l.StartsWith("deploy", StringComparison.Ordinal)));
        Assert.Contains(job.Record.Warnings, static w => w.StartsWith("Attempt 2 failed", StringComparison.Ordinal) && w.Contains("second", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failure_of_the_replaced_attempt_reported_during_the_restart_is_dropped()
    {
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [] };
        var handler = Handler(job);
        job.OnRelease = () => handler.FailoverAsync(JobFailure.Of(JobFailureKind.SiloLost, "late"), 1);

        await handler.FailoverAsync(Boom, failedAttempt: 1);

        Assert.False(handler.IsRestarting);
        Assert.Equal(["deploy a2 from nothing"], job.Log.Where(static l => l.StartsWith("deploy", StringComparison.Ordinal)));
        Assert.Equal(1, job.Record.Restarts);
    }

    [Fact]
    public async Task Failures_of_an_ended_or_cancelling_job_or_of_an_older_attempt_change_nothing()
    {
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [] };
        var handler = Handler(job);

        await handler.FailoverAsync(Boom, failedAttempt: 0);
        job.Record.State = JobState.Cancelling;
        await handler.FailoverAsync(Boom, failedAttempt: 1);
        job.Record.State = JobState.Canceled;
        await handler.FailoverAsync(Boom, failedAttempt: 1);

        Assert.Empty(job.Log);
    }

    [Fact]
    public async Task A_listing_that_fails_fails_each_restart_with_kind_storage_until_the_strategy_gives_up_never_leaving_the_job_restarting()
    {
        await StoreTwoCheckpointsAsync();
        var listing = new FailingListStorage(_storage.Storage) { Failures = int.MaxValue };
        var job = new FakeJob(Spec(maxRestarts: 3)) { Load = () => LoadAsync(listing) };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(JobState.Failed, job.Record.State);
        Assert.Equal(JobFailureKind.Storage, job.Record.Failure!.Kind);
        Assert.Contains(FailingListStorage.Message, job.Record.Failure.Message, StringComparison.Ordinal);
        Assert.StartsWith("Reading the job's completed checkpoints from checkpoint storage failed", job.Record.Failure.Message, StringComparison.Ordinal);
        Assert.Equal(3, job.Record.Restarts);
        Assert.Equal(2, job.Record.Warnings.Count(static w => w.Contains(FailingListStorage.Message, StringComparison.Ordinal)));
        Assert.DoesNotContain(job.Log, static l => l.StartsWith("deploy", StringComparison.Ordinal) || l.StartsWith("discard", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_listing_that_fails_once_fails_that_restart_and_the_next_one_restores_the_latest_checkpoint()
    {
        await StoreTwoCheckpointsAsync();
        var listing = new FailingListStorage(_storage.Storage) { Failures = 1 };
        var job = new FakeJob(Spec(maxRestarts: 3)) { Load = () => LoadAsync(listing) };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(["deploy a2 from 9 owned"], job.Log.Where(static l => l.StartsWith("deploy", StringComparison.Ordinal)));
        Assert.Equal(JobState.Running, job.Record.State);
        Assert.Equal(2, job.Record.Restarts);
        Assert.Contains(job.Record.Warnings, static w => w.StartsWith("Attempt 1 failed and the job restarts (2 of 3 restarts): checkpoint storage: ", StringComparison.Ordinal) && w.Contains("Reading the job's completed checkpoints", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("impossible key groups", "\"start\": 0,", "\"start\": -1,", "keyGroups.start")]
    [InlineData("a null uid", "\"uid\": \"counts\"", "\"uid\": null", "operators[1].uid")]
    [InlineData("null files", "\"files\": [", "\"files\": null, \"x\": [", "keyedState.files")]
    public async Task A_latest_checkpoint_whose_manifest_is_corrupt_is_skipped_and_the_one_before_it_is_restored(string what, string from, string to, string field)
    {
        var (_, latest) = await StoreTwoCheckpointsAsync();
        var json = System.Text.Encoding.UTF8.GetString(State.Snapshots.ManifestJson.Serialize(latest.Manifest));
        Assert.Contains(from, json, StringComparison.Ordinal);
        await _storage.PutAsync(latest.ManifestPath, ReplaceFirst(json, from, to));
        var error = Assert.Throws<State.Snapshots.CorruptManifestException>(() => State.Snapshots.ManifestJson.Deserialize(System.Text.Encoding.UTF8.GetBytes(ReplaceFirst(json, from, to)), latest.ManifestPath));
        var job = new FakeJob(Spec(maxRestarts: 3)) { Load = () => LoadAsync(_storage.Storage) };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.True(error.Field.EndsWith(field, StringComparison.Ordinal), $"{what}: {error.Field}");
        Assert.Equal(["deploy a2 from 7 owned"], job.Log.Where(static l => l.StartsWith("deploy", StringComparison.Ordinal)));
        Assert.Equal(JobState.Running, job.Record.State);
    }

    [Fact]
    public async Task A_deploy_that_throws_is_a_failed_restart_and_the_next_one_deploys_again()
    {
        var job = new FakeJob(Spec(maxRestarts: 3)) { Checkpoints = [] };
        job.OnDeploy = attempt => attempt == 2 ? throw new InvalidOperationException("the deploy threw") : Task.CompletedTask;

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(["deploy a2 from nothing", "deploy a3 from nothing"], job.Log.Where(static l => l.StartsWith("deploy", StringComparison.Ordinal)));
        Assert.Equal(JobState.Running, job.Record.State);
        Assert.Contains(job.Record.Warnings, static w => w.StartsWith("Attempt 2 failed", StringComparison.Ordinal) && w.Contains("the deploy threw", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_snapshot_to_restart_from_that_storage_cannot_read_now_fails_the_restart_not_the_job()
    {
        var unreachable = new UnreachableStorage(_storage.Storage);
        var job = new FakeJob(Spec(maxRestarts: 2) with { RestoreFrom = "savepoints/sp-1" }) { Checkpoints = [] };

        await new FailoverHandler(job, new CheckpointCleaner(unreachable, NullLogger.Instance), new RestorePointReader(unreachable), unreachable, TimeProvider.System, NullLogger.Instance).FailoverAsync(Boom, failedAttempt: 1).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(2, job.Record.Restarts);
        Assert.Equal(JobState.Failed, job.Record.State);
        Assert.Equal(JobFailureKind.Storage, job.Record.Failure!.Kind);
        Assert.Contains("unreachable", job.Record.Failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_snapshot_to_restart_from_whose_manifest_is_corrupt_fails_the_job_with_kind_restore_failed_naming_the_field()
    {
        var savepoint = PlannerJobs.Manifest(2, 2, checkpointId: 3) with { Kind = SnapshotKind.Savepoint };
        var json = System.Text.Encoding.UTF8.GetString(State.Snapshots.ManifestJson.Serialize(savepoint));
        await _storage.PutAsync("savepoints/sp-1/_manifest.json", ReplaceFirst(json, "\"end\": 7", "\"end\": 600"));
        var job = new FakeJob(Spec(maxRestarts: 3) with { RestoreFrom = "savepoints/sp-1" }) { Checkpoints = [] };

        await Handler(job).FailoverAsync(Boom, failedAttempt: 1).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(JobState.Failed, job.Record.State);
        Assert.Equal(JobFailureKind.RestoreFailed, job.Record.Failure!.Kind);
        Assert.Contains("operators[1].subtasks[0].keyedState.keyGroups.end", job.Record.Failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(job.Log, static l => l.StartsWith("deploy", StringComparison.Ordinal));
    }

    private static string ReplaceFirst(string text, string from, string to)
    {
        var at = text.IndexOf(from, StringComparison.Ordinal);
        return string.Concat(text.AsSpan(0, at), to, text.AsSpan(at + from.Length));
    }

    /// <summary>The planner job's checkpoints as the coordinator loads them from <paramref name="storage"/>, newest first.</summary>
    private static async Task<IReadOnlyList<CompletedCheckpoint>> LoadAsync(ICheckpointStorage storage) =>
        (await CompletedCheckpointStore.LoadAsync(storage, "planner", NullLogger.Instance, CancellationToken.None)).Checkpoints.Reverse().ToArray();

    /// <summary>Checkpoints 7 and 9 of the planner job, with every file, in storage.</summary>
    private async Task<(CompletedCheckpoint Older, CompletedCheckpoint Latest)> StoreTwoCheckpointsAsync()
    {
        var older = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 7));
        var latest = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 9));
        await _storage.PutAsync(older);
        await _storage.PutAsync(latest);
        return (older, latest);
    }

    private static JobSpec Spec(int maxRestarts) => PlannerJobs.Spec() with
    {
        Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromMinutes(1) },
        Restart = RestartStrategy.FixedDelay(maxRestarts, TimeSpan.FromMilliseconds(1)),
    };

    private FailoverHandler Handler(FakeJob job) =>
        new(job, new CheckpointCleaner(_storage.Storage, NullLogger.Instance), new RestorePointReader(_storage.Storage), _storage.Storage, TimeProvider.System, NullLogger.Instance);

    /// <summary>Storage whose next <see cref="Failures"/> listings fail, as an unreachable storage's do.</summary>
    private sealed class FailingListStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public const string Message = "listing: the endpoint is unreachable (test)";

        public int Failures { get; set; }

        public override IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken)
        {
            if (Failures > 0)
            {
                Failures--;
                throw new CheckpointStorageException(Message);
            }

            return Inner.ListAsync(prefix, cancellationToken);
        }
    }

    private sealed class UnreachableStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public override Task<byte[]?> ReadAsync(string path, CancellationToken cancellationToken) => throw new CheckpointStorageException($"'{path}': the endpoint is unreachable (test).");

        public override Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => throw new CheckpointStorageException($"'{path}': the endpoint is unreachable (test).");

        public override async IAsyncEnumerable<StoredObject> ListAsync(string prefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await Task.Yield();
            throw new CheckpointStorageException("listing: the endpoint is unreachable (test).");
#pragma warning disable CS0162 // An iterator needs a yield.
            yield break;
#pragma warning restore CS0162
        }
    }

    /// <summary>A job that records what the handler does to it; deploys succeed unless the test queued other outcomes.</summary>
    private sealed class FakeJob(JobSpec spec) : IRestartableJob
    {
        private readonly Dictionary<int, TaskCompletionSource> _deployed = [];

        public List<string> Log { get; } = [];

        public Queue<(DeployOutcome Outcome, JobFailure? Failure)> Outcomes { get; } = new();

        public IReadOnlyList<CompletedCheckpoint> Checkpoints { get; set; } = [];

        public CompletedCheckpoint? Restored { get; private set; }

        public int Persisted { get; private set; }

        public Func<int, Task>? OnDeploy { get; set; }

        public Func<Task>? OnRelease { get; set; }

        /// <summary>When set, the checkpoints come from here (as the coordinator loads them) instead of <see cref="Checkpoints"/>.</summary>
        public Func<Task<IReadOnlyList<CompletedCheckpoint>>>? Load { get; set; }

        public JobId Id => spec.JobId!.Value;

        public JobRecord Record { get; } = new() { Spec = spec, State = JobState.Running, Attempt = 1 };

        JobRecord? IRestartableJob.Record => Record;

        public JobPlan Plan { get; } = PlannerJobs.Plan(spec);

        public void SetState(JobState state)
        {
            if (state != Record.State)
            {
                Log.Add($"state {state}");
            }

            Record.State = state;
        }

        /// <summary>When set, every write of the record is refused as another activation's (it then is <see cref="Superseded"/>).</summary>
        public bool RefusePersist { get; set; }

        public bool Superseded { get; private set; }

        public Task<bool> PersistAsync()
        {
            Persisted++;
            Log.Add("persist");
            Superseded |= RefusePersist;
            return Task.FromResult(!RefusePersist);
        }

        public Task StopCheckpointingAsync(int attempt)
        {
            Log.Add($"stop checkpointing a{attempt}");
            return Task.CompletedTask;
        }

        public Task ReleaseSubtasksAsync(int attempt, StopReason reason)
        {
            Log.Add($"release a{attempt} {reason}");
            return OnRelease?.Invoke() ?? Task.CompletedTask;
        }

        public Task FailForGoodAsync(JobFailure failure)
        {
            Record.Failure = failure;
            Record.State = JobState.Failed;
            return Task.CompletedTask;
        }

        public async Task<(DeployOutcome Outcome, JobFailure? Failure)> DeployAttemptAsync(int attempt, CompletedCheckpoint? restore, bool ownsFiles)
        {
            Log.Add($"deploy a{attempt} from {(restore is null ? "nothing" : $"{restore.CheckpointId} {(ownsFiles ? "owned" : "not owned")}")}");
            Restored = restore;
            if (OnDeploy is { } onDeploy)
            {
                await onDeploy(attempt);
            }

            var result = Outcomes.TryDequeue(out var queued) ? queued : (DeployOutcome.Started, null);
            if (result.Outcome == DeployOutcome.Started)
            {
                Record.State = JobState.Running;
            }

            Signal(attempt);
            return result;
        }

        public Task<IReadOnlyList<CompletedCheckpoint>> GetCompletedCheckpointsAsync() => Load?.Invoke() ?? Task.FromResult(Checkpoints);

        public Task DiscardCheckpointAsync(long checkpointId, string reason)
        {
            Log.Add($"discard {checkpointId}: {reason}");
            Checkpoints = Checkpoints.Where(c => c.CheckpointId != checkpointId).ToArray();
            return Task.CompletedTask;
        }

        /// <summary>Completes when <paramref name="attempt"/> was deployed.</summary>
        public Task Deployed(int attempt) => Completion(attempt).Task;

        private void Signal(int attempt) => Completion(attempt).TrySetResult();

        private TaskCompletionSource Completion(int attempt)
        {
            lock (_deployed)
            {
                if (!_deployed.TryGetValue(attempt, out var completion))
                {
                    _deployed[attempt] = completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                return completion;
            }
        }
    }
}
