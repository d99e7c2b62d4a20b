namespace StreamGrains.State.Restore;

/// <summary>
/// The state to restore cannot be read (missing or corrupt files, a format that cannot be read, or state that does not
/// fit the subtask): the job discards the snapshot and falls back to an older one.
/// </summary>
public sealed class RestoreException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RestoreException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a cause.</summary>
    public RestoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
