using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>What a job grain does with a subtask's heartbeat.</summary>
internal enum HeartbeatAction
{
    /// <summary>Nothing: the subtask is alive and its state needs nothing.</summary>
    None,

    /// <summary>Stop the subtask: its job ended (or is unknown to this job grain).</summary>
    StopJobEnded,

    /// <summary>Stop the subtask: it belongs to an older attempt whose stop did not reach it.</summary>
    StopOldAttempt,

    /// <summary>The subtask failed; its one-way report may have been lost (failures are handled once).</summary>
    Failed,

    /// <summary>The subtask finished; its one-way report may have been lost (finishes are counted once).</summary>
    Finished,
}

/// <summary>Decides what a subtask's heartbeat asks of the job grain.</summary>
internal static class HeartbeatTriage
{
    /// <param name="record">The job's record; null when there is none.</param>
    /// <param name="recordUnknown">Whether the record could not be read (yet): then nothing is stopped on a guess.</param>
    /// <param name="subtask">The subtask that sent it.</param>
    /// <param name="heartbeat">Its state.</param>
    /// <param name="heard">Records the heartbeat of a subtask of the current attempt; false when the roster does not know the subtask.</param>
    public static HeartbeatAction Of(JobRecord? record, bool recordUnknown, SubtaskId subtask, SubtaskHeartbeat heartbeat, Func<bool> heard)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        ArgumentNullException.ThrowIfNull(heard);
        if (recordUnknown)
        {
            return HeartbeatAction.None;
        }

        if (record is null || subtask.Attempt < record.Attempt || record.State.IsTerminal())
        {
            return record is null || record.State.IsTerminal() ? HeartbeatAction.StopJobEnded : HeartbeatAction.StopOldAttempt;
        }

        return subtask.Attempt != record.Attempt || !heard() || record.State != JobState.Running ? HeartbeatAction.None
            : heartbeat.State == SubtaskState.Failed ? HeartbeatAction.Failed
            : heartbeat.State == SubtaskState.Finished ? HeartbeatAction.Finished
            : HeartbeatAction.None;
    }
}
