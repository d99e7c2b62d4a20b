using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

public sealed class AttemptDeployerTests
{
    private static readonly SiloAddress SiloA = RecordingSubtaskGateway.Silo(11111);
    private static readonly SiloAddress SiloB = RecordingSubtaskGateway.Silo(22222);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    [Fact]
    public async Task Nothing_starts_before_every_subtask_is_deployed_and_the_coordinator_starts_after_the_subtasks()
    {
        var gateway = new RecordingSubtaskGateway { HoldDeploys = true };
        var coordinator = new RecordingCoordinator();
        var (deployer, roster) = Create(gateway, coordinator);
        var request = Request(attempt: 1, checkpointing: true);

        var deploying = deployer.DeployAsync(request, static () => true);
        var ids = request.Plan.Chains.SelectMany(c => Enumerable.Range(0, c.Parallelism).Select(i => new SubtaskId(request.JobId, c.Index, i, 1))).ToArray();
        foreach (var id in ids.Skip(1))
        {
            gateway.CompleteDeploy(id, RecordingSubtaskGateway.Ready(SiloB));
        }

        Assert.False(deploying.IsCompleted);
        Assert.DoesNotContain(gateway.Calls, static c => c.StartsWith("start", StringComparison.Ordinal));
        Assert.Empty(coordinator.Starts);
        gateway.CompleteDeploy(ids[0], RecordingSubtaskGateway.Ready(SiloA));
        var (outcome, failure) = await deploying;

        Assert.Equal(DeployOutcome.Started, outcome);
        Assert.Null(failure);
        var calls = gateway.Calls.ToArray();
        Assert.Equal(ids.Length, calls.Count(static c => c.StartsWith("start", StringComparison.Ordinal)));
        Assert.True(Array.FindLastIndex(calls, static c => c.StartsWith("deploy", StringComparison.Ordinal)) < Array.FindIndex(calls, static c => c.StartsWith("start", StringComparison.Ordinal)));
        var start = Assert.Single(coordinator.Starts);
        Assert.Equal(1, start.Attempt);
        Assert.Equal(ids, start.Subtasks);
        Assert.Equal(ids.Where(id => request.Plan.Chains[id.Chain].IsSource), start.Sources);
        Assert.Null(start.RestoredCheckpointId);
        Assert.All(ids, id => Assert.Equal(SubtaskState.Ready, roster[id].State));
        Assert.Equal(SiloA.ToString(), request.Placement[JobRecord.PlacementKey(ids[0])]);
        Assert.Equal(SiloB.ToString(), request.Placement[JobRecord.PlacementKey(ids[1])]);
    }

    [Fact]
    public async Task A_subtask_that_cannot_be_deployed_starts_nothing_and_the_attempt_is_released_for_a_failover()
    {
        var failure = JobFailure.Of(JobFailureKind.UserCode, "open threw");
        var gateway = new RecordingSubtaskGateway { Answer = d => d.Subtask.Index == 1 ? new DeployResult { Silo = SiloA.ToString(), Failure = failure } : null };
        var coordinator = new RecordingCoordinator();
        var (deployer, _) = Create(gateway, coordinator);

        var (outcome, reported) = await deployer.DeployAsync(Request(attempt: 3, checkpointing: true), static () => true);

        Assert.Equal(DeployOutcome.Failed, outcome);
        Assert.Same(failure, reported);
        Assert.DoesNotContain(gateway.Calls, static c => c.StartsWith("start", StringComparison.Ordinal));
        Assert.Empty(coordinator.Starts);
        Assert.Equal(gateway.Deployed.Count, gateway.Calls.Count(static c => c.StartsWith("cancel", StringComparison.Ordinal) && c.EndsWith("/a3 Failover", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_subtask_that_cannot_read_its_state_makes_the_outcome_restore_failed()
    {
        var gateway = new RecordingSubtaskGateway { Answer = static d => d.Subtask.Index == 0 ? new DeployResult { Silo = SiloA.ToString(), Failure = JobFailure.Of(JobFailureKind.RestoreFailed, "corrupt"), RestoreFailed = true } : null };
        var (deployer, _) = Create(gateway, new RecordingCoordinator());

        var (outcome, failure) = await deployer.DeployAsync(Request(attempt: 1, checkpointing: true), static () => true);

        Assert.Equal(DeployOutcome.RestoreFailed, outcome);
        Assert.Equal("corrupt", failure!.Message);
    }

    [Fact]
    public async Task A_job_that_moved_on_while_its_subtasks_deployed_starts_nothing()
    {
        var gateway = new RecordingSubtaskGateway();
        var coordinator = new RecordingCoordinator();
        var (deployer, _) = Create(gateway, coordinator);

        var (outcome, failure) = await deployer.DeployAsync(Request(attempt: 1, checkpointing: true), static () => false);

        Assert.Equal(DeployOutcome.Superseded, outcome);
        Assert.Null(failure);
        Assert.DoesNotContain(gateway.Calls, static c => c.StartsWith("start", StringComparison.Ordinal));
        Assert.Empty(coordinator.Starts);
    }

    [Fact]
    public async Task A_job_that_moved_on_while_the_coordinator_started_stops_it_again()
    {
        var current = true;
        var coordinator = new RecordingCoordinator { OnStart = () => current = false };
        var (deployer, _) = Create(new RecordingSubtaskGateway(), coordinator);

        var (outcome, _) = await deployer.DeployAsync(Request(attempt: 4, checkpointing: true), () => current);

        Assert.Equal(DeployOutcome.Superseded, outcome);
        Assert.Equal([4], coordinator.Stops);
    }

    [Fact]
    public async Task Without_checkpointing_the_coordinator_is_not_started()
    {
        var coordinator = new RecordingCoordinator();
        var (deployer, _) = Create(new RecordingSubtaskGateway(), coordinator);

        var (outcome, _) = await deployer.DeployAsync(Request(attempt: 1, checkpointing: false), static () => true);

        Assert.Equal(DeployOutcome.Started, outcome);
        Assert.Empty(coordinator.Starts);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Restoring_subtasks_get_their_state_and_the_coordinator_continues_after_the_restored_id_only_when_the_job_owns_the_files(bool owns)
    {
        var gateway = new RecordingSubtaskGateway();
        var coordinator = new RecordingCoordinator();
        var (deployer, _) = Create(gateway, coordinator);
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 42));

        var (outcome, _) = await deployer.DeployAsync(Request(attempt: 2, checkpointing: true) with { Restore = checkpoint, OwnsFiles = owns }, static () => true);

        Assert.Equal(DeployOutcome.Started, outcome);
        Assert.Equal(owns ? 42 : null, Assert.Single(coordinator.Starts).RestoredCheckpointId);
        var restored = gateway.Deployed.Values.Where(static d => d.Restore is not null).ToArray();
        Assert.Equal(2, restored.Length);
        Assert.All(restored, r => Assert.Equal(owns, r.Restore!.OwnsFiles));
        Assert.Equal(4, gateway.Deployed.Values.Sum(static d => d.Splits.Count));
    }

    [Fact]
    public async Task A_subtask_goes_back_to_the_silo_it_ran_on_while_that_silo_is_active()
    {
        var gateway = new RecordingSubtaskGateway();
        var (deployer, _) = Create(gateway, new RecordingCoordinator());
        var request = Request(attempt: 2, checkpointing: false);
        var first = new SubtaskId(request.JobId, 0, 0, 2);
        var second = new SubtaskId(request.JobId, 0, 1, 2);
        request.Placement[JobRecord.PlacementKey(first)] = SiloB.ToString();
        request.Placement[JobRecord.PlacementKey(second)] = RecordingSubtaskGateway.Silo(33333).ToString();

        await deployer.DeployAsync(request, static () => true);

        Assert.Equal(SiloB, gateway.Hints[first]);
        Assert.Contains(gateway.Hints[second], new[] { SiloA, SiloB });
    }

    [Fact]
    public async Task Without_an_active_silo_the_attempt_fails_as_a_runtime_failure()
    {
        var (deployer, _) = Create(new RecordingSubtaskGateway(), new RecordingCoordinator());

        var (outcome, failure) = await deployer.DeployAsync(Request(attempt: 1, checkpointing: false) with { ActiveSilos = [] }, static () => true);

        Assert.Equal(DeployOutcome.Failed, outcome);
        Assert.Equal(JobFailureKind.Runtime, failure!.Kind);
        Assert.Equal(typeof(InvalidOperationException).FullName, failure.ExceptionType);
    }

    [Fact]
    public async Task Subtasks_that_report_ready_start_while_their_polls_still_answer_opening_and_reports_of_other_attempts_do_not_count()
    {
        var gateway = new RecordingSubtaskGateway { HoldDeploys = true };
        var (deployer, roster) = Create(gateway, new RecordingCoordinator());
        var request = Request(attempt: 2, checkpointing: true);
        var ids = Ids(request);

        var deploying = deployer.DeployAsync(request, static () => true);
        await deployer.OnSubtaskReady(ids[0] with { Attempt = 1 }, RecordingSubtaskGateway.Ready(SiloA));
        foreach (var id in ids.Skip(1))
        {
            await deployer.OnSubtaskReady(id, RecordingSubtaskGateway.Ready(SiloB));
        }

        await WaitForPollsAsync(gateway, ids.Length);
        Assert.False(deploying.IsCompleted);
        Assert.DoesNotContain(gateway.Calls, static c => c.StartsWith("start", StringComparison.Ordinal));
        await deployer.OnSubtaskReady(ids[0], RecordingSubtaskGateway.Ready(SiloA));
        var (outcome, failure) = await deploying;

        Assert.Equal(DeployOutcome.Started, outcome);
        Assert.Null(failure);
        Assert.All(gateway.DeployStates.Values, static s => Assert.Equal(SubtaskDeployPhase.Opening, s!.Phase));
        Assert.Equal(ids.Length, gateway.Calls.Count(static c => c.StartsWith("start", StringComparison.Ordinal)));
        Assert.All(ids, id => Assert.Equal(SubtaskState.Ready, roster[id].State));
    }

    [Fact]
    public async Task A_lost_ready_report_is_found_by_the_poll_which_also_brings_the_restore_progress_into_the_roster()
    {
        var gateway = new RecordingSubtaskGateway { HoldDeploys = true };
        var (deployer, roster) = Create(gateway, new RecordingCoordinator());
        var request = Request(attempt: 1, checkpointing: false);
        var ids = Ids(request);
        var progress = new RestoreProgress { CheckpointId = 7, FilesDone = 1, FilesTotal = 4, BytesDone = 100, BytesTotal = 400 };

        var deploying = deployer.DeployAsync(request, static () => true);
        gateway.DeployStates[ids[0]] = new SubtaskDeployState { Phase = SubtaskDeployPhase.Opening, Restore = progress, Silo = SiloB.ToString() };

        // Two rounds of polls: the first one that saw the progress has been taken in when the second begins.
        await WaitForPollsAsync(gateway, 2 * ids.Length);
        foreach (var id in ids)
        {
            gateway.CompleteDeploy(id, RecordingSubtaskGateway.Ready(SiloB));
        }

        var (outcome, _) = await deploying;

        Assert.Equal(DeployOutcome.Started, outcome);
        Assert.Equal(progress, roster[ids[0]].Restore);
        Assert.All(ids, id => Assert.Equal(SubtaskState.Ready, roster[id].State));
    }

    [Fact]
    public async Task The_first_failed_subtask_fails_the_attempt_without_waiting_for_the_others_and_every_subtask_is_stopped()
    {
        var gateway = new RecordingSubtaskGateway { HoldDeploys = true };
        var coordinator = new RecordingCoordinator();
        var (deployer, _) = Create(gateway, coordinator);
        var request = Request(attempt: 5, checkpointing: true);
        var ids = Ids(request);
        var failure = JobFailure.Of(JobFailureKind.Storage, "storage unreachable", 1);

        var deploying = deployer.DeployAsync(request, static () => true);
        gateway.CompleteDeploy(ids[1], new DeployResult { Silo = SiloA.ToString(), Failure = failure });
        var (outcome, reported) = await deploying;

        Assert.Equal(DeployOutcome.Failed, outcome);
        Assert.Same(failure, reported);
        Assert.DoesNotContain(gateway.Calls, static c => c.StartsWith("start", StringComparison.Ordinal));
        Assert.Empty(coordinator.Starts);
        Assert.Equal(ids.Length, gateway.Calls.Count(static c => c.StartsWith("cancel", StringComparison.Ordinal) && c.EndsWith("/a5 Failover", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_subtask_whose_grain_holds_no_deployment_or_refused_it_fails_the_attempt_as_a_runtime_failure()
    {
        var lostGateway = new RecordingSubtaskGateway { HoldDeploys = true };
        var (lostDeployer, _) = Create(lostGateway, new RecordingCoordinator());
        var request = Request(attempt: 1, checkpointing: false);
        var lostId = Ids(request)[1];
        var lostDeploying = lostDeployer.DeployAsync(request, static () => true);
        lostGateway.DeployStates[lostId] = new SubtaskDeployState { Phase = SubtaskDeployPhase.None, Silo = SiloB.ToString() };
        var (lostOutcome, lost) = await lostDeploying;

        var refusingGateway = new RecordingSubtaskGateway { Refuse = static d => d.Subtask.Index == 0 ? new TimeoutException("no answer") : null };
        var (refusingDeployer, _) = Create(refusingGateway, new RecordingCoordinator());
        var (refusedOutcome, refused) = await refusingDeployer.DeployAsync(Request(attempt: 1, checkpointing: false), static () => true);

        Assert.Equal((DeployOutcome.Failed, JobFailureKind.Runtime, lostId.Index), (lostOutcome, lost!.Kind, lost.SubtaskIndex));
        Assert.Contains("lost its deployment", lost.Message, StringComparison.Ordinal);
        Assert.Equal((DeployOutcome.Failed, JobFailureKind.Runtime, typeof(TimeoutException).FullName), (refusedOutcome, refused!.Kind, refused.ExceptionType));
    }

    [Fact]
    public async Task A_silo_a_deploy_call_could_not_reach_is_left_out_of_the_next_placements_unless_it_is_the_only_one()
    {
        var gateway = new RecordingSubtaskGateway { Refuse = static d => d.Subtask is { Chain: 0, Index: 0 } ? new TimeoutException("unreachable") : null };
        var (deployer, _) = Create(gateway, new RecordingCoordinator());
        Assert.Equal([SiloA, SiloB], deployer.Reachable([SiloA, SiloB]));

        var (outcome, _) = await deployer.DeployAsync(Request(attempt: 1, checkpointing: false), static () => true);
        var left = deployer.Reachable([SiloA, SiloB]);
        var unreachable = Assert.Single(new[] { SiloA, SiloB }.Except(left));

        Assert.Equal(DeployOutcome.Failed, outcome);
        Assert.Single(left);
        Assert.Equal([unreachable], deployer.Reachable([unreachable]));
    }

    [Fact]
    public async Task A_subtask_that_answers_no_poll_for_the_limit_fails_the_attempt()
    {
        var gateway = new RecordingSubtaskGateway { HoldDeploys = true };
        var roster = new SubtaskRoster(gateway);
        var deployer = new AttemptDeployer(gateway, roster, new RecordingCoordinator(), NullLogger.Instance, TimeProvider.System, PollInterval, unansweredLimit: TimeSpan.FromMilliseconds(200));
        var request = Request(attempt: 1, checkpointing: false);
        var silent = Ids(request)[0];

        var deploying = deployer.DeployAsync(request, static () => true);
        gateway.DeployStates[silent] = null;
        var (outcome, failure) = await deploying;

        Assert.Equal(DeployOutcome.Failed, outcome);
        Assert.Equal(silent.Index, failure!.SubtaskIndex);
        Assert.Contains("answered no poll", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_attempt_superseded_while_its_subtasks_restore_stops_waiting_and_starts_nothing()
    {
        var gateway = new RecordingSubtaskGateway { HoldDeploys = true };
        var coordinator = new RecordingCoordinator();
        var (deployer, _) = Create(gateway, coordinator);
        var request = Request(attempt: 3, checkpointing: true);
        var current = true;

        var deploying = deployer.DeployAsync(request, () => Volatile.Read(ref current));
        await WaitForPollsAsync(gateway, Ids(request).Length);
        Volatile.Write(ref current, false);
        var (outcome, failure) = await deploying;
        await deployer.OnSubtaskReady(Ids(request)[0], RecordingSubtaskGateway.Ready(SiloA));

        Assert.Equal(DeployOutcome.Superseded, outcome);
        Assert.Null(failure);
        Assert.DoesNotContain(gateway.Calls, static c => c.StartsWith("start", StringComparison.Ordinal));
        Assert.Empty(coordinator.Starts);
    }

    private static SubtaskId[] Ids(AttemptRequest request) =>
        request.Plan.Chains.SelectMany(c => Enumerable.Range(0, c.Parallelism).Select(i => new SubtaskId(request.JobId, c.Index, i, request.Attempt))).ToArray();

    private static async Task WaitForPollsAsync(RecordingSubtaskGateway gateway, int polls)
    {
        for (var i = 0; i < polls; i++)
        {
            Assert.True(await gateway.Polls.WaitAsync(TimeSpan.FromSeconds(30)), "the deployer stopped polling");
        }
    }

    private static (AttemptDeployer Deployer, SubtaskRoster Roster) Create(RecordingSubtaskGateway gateway, RecordingCoordinator coordinator)
    {
        var roster = new SubtaskRoster(gateway);
        return (new AttemptDeployer(gateway, roster, coordinator, NullLogger.Instance, TimeProvider.System, PollInterval), roster);
    }

    private static AttemptRequest Request(int attempt, bool checkpointing)
    {
        var spec = PlannerJobs.Spec() with { Checkpointing = checkpointing ? new CheckpointSettings { Interval = TimeSpan.FromMinutes(1) } : CheckpointSettings.Disabled };
        return new AttemptRequest
        {
            JobId = spec.JobId!.Value,
            Attempt = attempt,
            Plan = PlannerJobs.Plan(spec),
            Spec = spec,
            ActiveSilos = [SiloA, SiloB],
            Placement = [],
        };
    }
}
