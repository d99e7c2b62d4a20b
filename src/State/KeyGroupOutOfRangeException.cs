namespace StreamGrains.State;

/// <summary>Thrown when a key does not belong to the key groups of the subtask that processes it.</summary>
public sealed class KeyGroupOutOfRangeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public KeyGroupOutOfRangeException(string message)
        : base(message)
    {
    }
}
