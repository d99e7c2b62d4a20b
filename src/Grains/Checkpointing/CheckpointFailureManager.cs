using StreamGrains.Snapshots;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>Counts consecutive checkpoint failures and decides when there were more than tolerated.</summary>
/// <remarks>Failures caused by the attempt ending or by sources having finished are not the checkpoint's fault and do not count.</remarks>
internal sealed class CheckpointFailureManager(int tolerable)
{
    public int ConsecutiveFailures { get; private set; }

    public void OnSuccess() => ConsecutiveFailures = 0;

    /// <summary>Records a failure; true when the consecutive failures now exceed the tolerated number.</summary>
    public bool OnFailure(CheckpointFailureReason reason)
    {
        if (reason is CheckpointFailureReason.AttemptEnded or CheckpointFailureReason.SubtasksFinished)
        {
            return false;
        }

        ConsecutiveFailures++;
        return ConsecutiveFailures > tolerable;
    }
}
