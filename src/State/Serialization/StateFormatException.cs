namespace StreamGrains.State.Serialization;

/// <summary>Thrown when stored state cannot be read.</summary>
public class StateFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StateFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a cause.</summary>
    public StateFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
