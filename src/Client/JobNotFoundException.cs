namespace StreamGrains.Client;

/// <summary>No job with the given id exists.</summary>
public sealed class JobNotFoundException(JobId jobId) : Exception($"No job with id '{jobId}' exists on this cluster.")
{
    /// <summary>The id that was not found.</summary>
    public JobId JobId { get; } = jobId;
}
