namespace StreamGrains.Graph;

/// <summary>Thrown when a job definition or spec is invalid; carries every problem found.</summary>
public sealed class JobValidationException : Exception
{
    /// <summary>Creates the exception from a list of problems.</summary>
    public JobValidationException(IReadOnlyList<string> errors)
        : base(errors.Count == 1 ? errors[0] : $"The job is invalid:{Environment.NewLine}- {string.Join(Environment.NewLine + "- ", errors)}")
        => Errors = errors;

    /// <summary>Creates the exception from one problem.</summary>
    public JobValidationException(string error)
        : this([error])
    {
    }

    /// <summary>Creates the exception from one problem and its cause.</summary>
    public JobValidationException(string error, Exception innerException)
        : base(error, innerException) => Errors = [error];

    /// <summary>Every problem found.</summary>
    public IReadOnlyList<string> Errors { get; }
}
