namespace StreamGrains.State.Storage;

/// <summary>A downloaded object does not match the length or checksum recorded when it was stored.</summary>
public sealed class CheckpointStorageCorruptException(string path, string reason)
    : CheckpointStorageException($"'{path}' in checkpoint storage is corrupt: {reason}.")
{
    /// <summary>The corrupt path.</summary>
    public string Path { get; } = path;
}
