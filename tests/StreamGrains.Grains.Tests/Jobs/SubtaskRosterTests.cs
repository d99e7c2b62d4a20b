using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

public sealed class SubtaskRosterTests
{
    private static readonly JobId Job = new("roster");

    [Fact]
    public async Task A_refresh_takes_the_answers_of_the_attempt_and_keeps_the_last_status_of_subtasks_that_do_not_answer()
    {
        var gateway = new RecordingSubtaskGateway();
        var roster = new SubtaskRoster(gateway);
        var answering = new SubtaskId(Job, 0, 0, 2);
        var silent = new SubtaskId(Job, 0, 1, 2);
        var notYetDeployed = new SubtaskId(Job, 1, 0, 2);
        var older = new SubtaskId(Job, 0, 0, 1);
        roster.Set(answering, Status(0, 2, 0));
        roster.Set(silent, Status(1, 2, 5));
        roster.Set(notYetDeployed, Status(0, 2, 7));
        roster.Set(older, Status(0, 1, 9));
        gateway.Statuses[answering] = Status(0, 2, 100) with { State = SubtaskState.Running };
        gateway.Statuses[notYetDeployed] = Status(0, 2, 0) with { State = SubtaskState.Created };

        await roster.RefreshAsync(attempt: 2);

        Assert.Equal(100, roster[answering].RecordsIn);
        Assert.Equal(5, roster[silent].RecordsIn);
        Assert.Equal(7, roster[notYetDeployed].RecordsIn);
        Assert.Equal(9, roster[older].RecordsIn);
        Assert.DoesNotContain(gateway.Calls, static c => c.EndsWith("/a1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_release_collects_the_final_counters_then_stops_every_subtask_of_the_attempt_and_no_other()
    {
        var gateway = new RecordingSubtaskGateway();
        var roster = new SubtaskRoster(gateway);
        roster.Set(new SubtaskId(Job, 0, 0, 3), Status(0, 3, 0));
        roster.Set(new SubtaskId(Job, 0, 1, 3), Status(1, 3, 0));
        roster.Set(new SubtaskId(Job, 0, 0, 2), Status(0, 2, 0));

        await roster.ReleaseAsync(attempt: 3, StopReason.JobEnded);

        var calls = gateway.Calls.ToArray();
        Assert.Equal(["cancel 0/0/a3 JobEnded", "cancel 0/1/a3 JobEnded"], calls.Where(static c => c.StartsWith("cancel", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        Assert.True(Array.FindLastIndex(calls, static c => c.StartsWith("status", StringComparison.Ordinal)) < Array.FindIndex(calls, static c => c.StartsWith("cancel", StringComparison.Ordinal)));
    }

    [Fact]
    public void Finished_subtasks_are_counted_once_and_forgotten_with_the_deployment()
    {
        var roster = new SubtaskRoster(new RecordingSubtaskGateway());
        var id = new SubtaskId(Job, 0, 0, 1);
        roster.Set(id, Status(0, 1, 0));

        Assert.True(roster.MarkFinished(id));
        Assert.False(roster.MarkFinished(id));
        Assert.Equal(1, roster.FinishedCount);
        roster.Clear();
        Assert.Equal(0, roster.FinishedCount);
        Assert.Empty(roster.Ordered);
    }

    [Fact]
    public async Task A_refresh_takes_the_status_of_a_subtask_still_opening_with_its_restore_progress()
    {
        var gateway = new RecordingSubtaskGateway();
        var roster = new SubtaskRoster(gateway);
        var opening = new SubtaskId(Job, 0, 0, 1);
        roster.Set(opening, Status(0, 1, 0) with { State = SubtaskState.Created });
        var progress = new RestoreProgress { CheckpointId = 3, BytesDone = 10, BytesTotal = 90 };
        gateway.Statuses[opening] = Status(0, 1, 0) with { State = SubtaskState.Created, OpenedAt = DateTimeOffset.UnixEpoch, Restore = progress };

        await roster.RefreshAsync(attempt: 1);

        Assert.Equal(progress, roster[opening].Restore);
    }

    [Fact]
    public async Task A_silent_subtask_whose_grain_holds_no_deployment_is_lost_and_only_silent_subtasks_of_the_attempt_are_asked()
    {
        var gateway = new RecordingSubtaskGateway();
        var roster = new SubtaskRoster(gateway);
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var timeout = TimeSpan.FromSeconds(15);
        var beating = new SubtaskId(Job, 0, 0, 2);
        var silent = new SubtaskId(Job, 0, 1, 2);
        roster.Set(beating, Status(0, 2, 0) with { Silo = "silo-a" });
        roster.Set(silent, Status(1, 2, 0) with { Silo = "silo-b" });
        roster.Heard([beating, silent], start);
        gateway.DeployStates[silent] = new SubtaskDeployState { Phase = SubtaskDeployPhase.None, Silo = "silo-c" };

        Assert.False(roster.Heard(new SubtaskId(Job, 1, 0, 2), start));
        Assert.True(roster.Heard(beating, start + TimeSpan.FromSeconds(10)));
        Assert.Null(await roster.FindLostAsync(2, start + timeout, timeout));
        Assert.Empty(gateway.Calls);
        var failure = await roster.FindLostAsync(2, start + timeout + TimeSpan.FromSeconds(1), timeout);
        Assert.Null(await roster.FindLostAsync(3, start + TimeSpan.FromMinutes(1), timeout));

        Assert.NotNull(failure);
        Assert.Equal((JobFailureKind.Runtime, silent.Index), (failure.Kind, failure.SubtaskIndex));
        Assert.Contains(silent.ToString(), failure.Message, StringComparison.Ordinal);
        Assert.Contains("holds no deployment", failure.Message, StringComparison.Ordinal);
        Assert.Equal(["poll 0/1/a2"], gateway.Calls);
        roster.Clear();
        Assert.Null(await roster.FindLostAsync(2, start + TimeSpan.FromMinutes(1), timeout));
    }

    [Fact]
    public async Task A_silent_subtask_that_answers_as_deployed_counts_as_heard_and_one_that_answers_nothing_is_lost_only_after_four_timeouts()
    {
        var gateway = new RecordingSubtaskGateway();
        var roster = new SubtaskRoster(gateway);
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var timeout = TimeSpan.FromSeconds(15);
        var alive = new SubtaskId(Job, 0, 0, 1);
        var unreachable = new SubtaskId(Job, 0, 1, 1);
        roster.Set(alive, Status(0, 1, 0));
        roster.Set(unreachable, Status(1, 1, 0));
        roster.Heard([alive, unreachable], start);
        gateway.DeployStates[alive] = RecordingSubtaskGateway.Done(RecordingSubtaskGateway.Ready(RecordingSubtaskGateway.Silo(11111)));

        Assert.Null(await roster.FindLostAsync(1, start + (2 * timeout), timeout));
        Assert.Null(await roster.FindLostAsync(1, start + (4 * timeout), timeout));
        var failure = await roster.FindLostAsync(1, start + (4 * timeout) + TimeSpan.FromSeconds(1), timeout);

        Assert.NotNull(failure);
        Assert.Equal(unreachable.Index, failure.SubtaskIndex);
        Assert.Contains("answered nothing", failure.Message, StringComparison.Ordinal);
        Assert.Equal(2, gateway.Calls.Count(static c => c == "poll 0/0/a1"));
    }

    private static SubtaskStatus Status(int index, int attempt, long recordsIn) => new() { Chain = "c", Index = index, Attempt = attempt, RecordsIn = recordsIn, State = SubtaskState.Ready };
}
