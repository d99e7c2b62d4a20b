namespace StreamGrains.State.Restore;

/// <summary>
/// Checkpoint storage failed while the state was restored, in a way that says nothing about the snapshot (unreachable,
/// throttled, timed out): the attempt fails like any other and the restart restores the same snapshot, which is kept.
/// </summary>
/// <param name="message">What failed.</param>
/// <param name="innerException">The storage failure.</param>
public sealed class RestoreInterruptedException(string message, Exception innerException) : Exception(message, innerException);
