namespace StreamGrains.State.Savepoints;

/// <summary>Thrown when a canonical state file cannot be read; the message names the file and what is wrong.</summary>
public sealed class CanonicalFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CanonicalFormatException(string path, CanonicalFormatError error, string problem, int? keyGroup = null, Exception? innerException = null)
        : base($"Canonical state file '{path}' cannot be used: {problem}", innerException)
    {
        Path = path;
        Error = error;
        KeyGroup = keyGroup;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>What is wrong.</summary>
    public CanonicalFormatError Error { get; }

    /// <summary>The key group whose block is affected, when the problem is in one block.</summary>
    public int? KeyGroup { get; }
}
