using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Operators;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Subtasks;

/// <summary>
/// The state of one subtask (Created → Ready → Running → Finished, or Failed or Canceled on the way) and the report of
/// its outcome.
/// </summary>
/// <remarks>
/// Shared by the <see cref="SubtaskRunner"/>, which opens, starts and stops the subtask, and the
/// <see cref="SubtaskMailbox"/>, which finishes it when all input has ended and fails it when processing throws.
/// Finishing and failing are reported to the listener, at most one of them once. Used on the grain's scheduler only.
/// </remarks>
internal sealed class SubtaskLifecycle(SubtaskId subtask, ISubtaskListener listener, ILogger logger)
{
    public SubtaskState State { get; private set; } = SubtaskState.Created;

    /// <summary>Why the subtask failed, once it has (repeated in its heartbeats).</summary>
    public JobFailure? Failure { get; private set; }

    /// <summary>Every operator is open and its state restored.</summary>
    public void Opened() => State = SubtaskState.Ready;

    /// <summary>The mailbox loop starts.</summary>
    public void Started() => State = SubtaskState.Running;

    /// <summary>The subtask is being stopped: unless it already finished or failed, it is canceled.</summary>
    public void Cancel()
    {
        if (State is SubtaskState.Created or SubtaskState.Ready or SubtaskState.Running)
        {
            State = SubtaskState.Canceled;
        }
    }

    /// <summary>All input was processed and delivered: a running subtask finishes and reports it.</summary>
    public void Finish()
    {
        if (State == SubtaskState.Running)
        {
            State = SubtaskState.Finished;
            listener.OnFinished(subtask);
        }
    }

    /// <summary>The subtask fails with <paramref name="exception"/> and reports it, unless it already failed or was canceled.</summary>
    public void Fail(Exception exception)
    {
        if (State is SubtaskState.Failed or SubtaskState.Canceled)
        {
            return;
        }

        State = SubtaskState.Failed;
        var failure = exception is OperatorException op
            ? JobFailure.FromException(op.InnerException!, JobFailureKind.UserCode, op.OperatorUid, subtask.Index)
            : JobFailure.FromException(exception, JobFailureKind.Runtime, operatorUid: null, subtask.Index);
        Failure = failure;
        logger.LogWarning(exception, "Subtask {Subtask} failed: {Failure}", subtask, failure);
        listener.OnFailed(subtask, failure);
    }
}
