using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

public sealed class HeartbeatTriageTests
{
    private static readonly JobId Job = new("triage");

    private static JobRecord Record(JobState state, int attempt) => new() { Spec = new JobSpec { JobType = "t" }, State = state, Attempt = attempt };

    private static SubtaskHeartbeat Beat(SubtaskState state) => new() { State = state };

    [Fact]
    public void Nothing_is_stopped_while_the_record_is_unknown()
    {
        Assert.Equal(HeartbeatAction.None, HeartbeatTriage.Of(null, recordUnknown: true, new SubtaskId(Job, 0, 0, 1), Beat(SubtaskState.Running), () => true));
    }

    [Fact]
    public void A_subtask_of_an_ended_or_unknown_job_is_stopped_as_ended_and_one_of_an_older_attempt_as_failed_over()
    {
        Assert.Equal(HeartbeatAction.StopJobEnded, HeartbeatTriage.Of(null, recordUnknown: false, new SubtaskId(Job, 0, 0, 1), Beat(SubtaskState.Running), () => true));
        Assert.Equal(HeartbeatAction.StopJobEnded, HeartbeatTriage.Of(Record(JobState.Canceled, 2), false, new SubtaskId(Job, 0, 0, 2), Beat(SubtaskState.Running), () => true));
        Assert.Equal(HeartbeatAction.StopOldAttempt, HeartbeatTriage.Of(Record(JobState.Running, 3), false, new SubtaskId(Job, 0, 0, 2), Beat(SubtaskState.Running), () => true));
    }

    [Fact]
    public void A_failed_or_finished_state_of_a_known_subtask_of_the_running_attempt_is_acted_on()
    {
        var running = Record(JobState.Running, 2);
        var subtask = new SubtaskId(Job, 0, 1, 2);
        Assert.Equal(HeartbeatAction.Failed, HeartbeatTriage.Of(running, false, subtask, Beat(SubtaskState.Failed), () => true));
        Assert.Equal(HeartbeatAction.Finished, HeartbeatTriage.Of(running, false, subtask, Beat(SubtaskState.Finished), () => true));
        Assert.Equal(HeartbeatAction.None, HeartbeatTriage.Of(running, false, subtask, Beat(SubtaskState.Running), () => true));
        Assert.Equal(HeartbeatAction.None, HeartbeatTriage.Of(running, false, subtask, Beat(SubtaskState.Failed), () => false));
        Assert.Equal(HeartbeatAction.None, HeartbeatTriage.Of(Record(JobState.Restarting, 2), false, subtask, Beat(SubtaskState.Failed), () => true));
    }
}
