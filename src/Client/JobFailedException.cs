namespace StreamGrains.Client;

/// <summary>A job ended in <see cref="JobState.Failed"/>.</summary>
public sealed class JobFailedException(JobStatus status)
    : Exception($"Job '{status.JobId}' failed: {status.Failure?.ToString() ?? "no reason recorded"}")
{
    /// <summary>The job's final status.</summary>
    public JobStatus Status { get; } = status;
}
