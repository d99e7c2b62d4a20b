using StreamGrains.Runtime;
using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Subtasks;

/// <summary>Receives what a subtask reports.</summary>
/// <remarks>
/// <see cref="OnFinished"/> and <see cref="OnFailed"/> are called on the grain's scheduler, and so is a decline by the
/// synchronous part of a snapshot. An acknowledgement, and a decline because storing the state failed, come from the
/// asynchronous part and may be called from the thread pool, off the grain's turn (see <see cref="SubtaskCheckpointing"/>).
/// </remarks>
internal interface ISubtaskListener
{
    void OnFinished(SubtaskId subtask);

    void OnFailed(SubtaskId subtask, JobFailure failure);

    void OnCheckpointAcknowledged(SubtaskCheckpointAck ack);

    void OnCheckpointDeclined(SubtaskId subtask, long checkpointId, CheckpointDeclineReason reason, string message);
}
