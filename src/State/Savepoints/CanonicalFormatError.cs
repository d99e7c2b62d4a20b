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
