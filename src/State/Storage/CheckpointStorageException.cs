namespace StreamGrains.State.Storage;

/// <summary>A checkpoint storage operation failed.</summary>
public class CheckpointStorageException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CheckpointStorageException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a cause.</summary>
    public CheckpointStorageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
