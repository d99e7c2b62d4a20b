namespace StreamGrains.Client;

/// <summary>A savepoint failed (the job keeps running unless it was already ending); <see cref="Exception.Message"/> says why.</summary>
public sealed class SavepointFailedException(JobId jobId, Snapshots.SavepointStatus status)
    : Exception($"The savepoint of job '{jobId}' failed: {status.FailureMessage}")
{
    /// <summary>The job.</summary>
    public JobId JobId { get; } = jobId;

    /// <summary>The savepoint's final status.</summary>
    public Snapshots.SavepointStatus Status { get; } = status;
}
