using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

public sealed class AttemptDeployerTests
{
    private static readonly SiloAddress SiloA = RecordingSubtaskGateway.Silo(11111);
    private static readonly SiloAddress SiloB = RecordingSubtaskGateway.Silo(22222);

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

    private static (AttemptDeployer Deployer, SubtaskRoster Roster) Create(RecordingSubtaskGateway gateway, RecordingCoordinator coordinator)
    {
        var roster = new SubtaskRoster(gateway);
        return (new AttemptDeployer(gateway, roster, coordinator, NullLogger.Instance), roster);
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
