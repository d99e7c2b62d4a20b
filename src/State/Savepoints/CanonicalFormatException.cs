namespace StreamGrains.State.Savepoints;

/// <summary>Why a canonical state file cannot be used.</summary>
public enum CanonicalFormatError : byte
{
    /// <summary>The file does not start with the magic bytes: it is not a canonical state file.</summary>
    BadMagic = 0,

    /// <summary>The file was written in a format version (or with flags) this reader does not know.</summary>
    UnsupportedVersion = 1,

    /// <summary>The file ends before its footer: it is truncated or was not completely written.</summary>
    Truncated = 2,

    /// <summary>The header, the index, a block or a chunk does not have the checksum it was written with.</summary>
    ChecksumMismatch = 3,

    /// <summary>The bytes have the right checksums but do not follow the format (a writer defect).</summary>
    Malformed = 4,

    /// <summary>The file was written for another number of key groups than the restore asks for.</summary>
    MaxParallelismMismatch = 5,
}

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
