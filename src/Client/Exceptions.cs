namespace StreamGrains.Client;

/// <summary>The cluster rejected a job before anything ran.</summary>
public sealed class JobSubmissionException : Exception
{
    /// <summary>Creates the exception.</summary>
    public JobSubmissionException(JobId jobId, IReadOnlyList<string> errors)
        : base(errors.Count == 1
            ? $"Job '{jobId}' was rejected: {errors[0]}"
            : $"Job '{jobId}' was rejected:{Environment.NewLine}- {string.Join(Environment.NewLine + "- ", errors)}")
    {
        JobId = jobId;
        Errors = errors;
    }

    /// <summary>The rejected job's id.</summary>
    public JobId JobId { get; }

    /// <summary>Every problem found.</summary>
    public IReadOnlyList<string> Errors { get; }
}

/// <summary>No job with the given id exists.</summary>
public sealed class JobNotFoundException(JobId jobId) : Exception($"No job with id '{jobId}' exists on this cluster.")
{
    /// <summary>The id that was not found.</summary>
    public JobId JobId { get; } = jobId;
}

/// <summary>A job ended in <see cref="JobState.Failed"/>.</summary>
public sealed class JobFailedException(JobStatus status)
    : Exception($"Job '{status.JobId}' failed: {status.Failure?.ToString() ?? "no reason recorded"}")
{
    /// <summary>The job's final status.</summary>
    public JobStatus Status { get; } = status;
}

/// <summary>The client could not reach the cluster.</summary>
public sealed class ClusterConnectionException(string message, Exception innerException) : Exception(message, innerException);

/// <summary>A savepoint failed (the job keeps running unless it was already ending); <see cref="Exception.Message"/> says why.</summary>
public sealed class SavepointFailedException(JobId jobId, Snapshots.SavepointStatus status)
    : Exception($"The savepoint of job '{jobId}' failed: {status.FailureMessage}")
{
    /// <summary>The job.</summary>
    public JobId JobId { get; } = jobId;

    /// <summary>The savepoint's final status.</summary>
    public Snapshots.SavepointStatus Status { get; } = status;
}
