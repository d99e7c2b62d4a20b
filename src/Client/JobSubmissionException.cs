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
