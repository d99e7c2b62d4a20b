namespace StreamGrains.State.Storage;

/// <summary>An object that should exist in checkpoint storage does not.</summary>
public sealed class CheckpointObjectNotFoundException(string path, string location)
    : CheckpointStorageException($"'{path}' does not exist in checkpoint storage {location}.")
{
    /// <summary>The missing path.</summary>
    public string Path { get; } = path;
}
