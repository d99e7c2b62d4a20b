namespace StreamGrains.State.Storage;

/// <summary>
/// An optional capability of checkpoint storage: giving a local path an object's content by a hard link instead of a
/// copy (filesystem storage on the same device). A restore asks for it with a type test and downloads when the storage
/// does not have it or declines; wrappers (<see cref="DelegatingCheckpointStorage"/>) pass it through.
/// </summary>
public interface ILinkingCheckpointStorage
{
    /// <summary>
    /// Gives <paramref name="localPath"/> the content of <paramref name="path"/> by a hard link, after verifying its length
    /// and checksum against <paramref name="expected"/> when given (which reads the object once, but writes nothing).
    /// Returns false, leaving nothing behind, when the storage cannot or may not link the two paths: then download.
    /// </summary>
    /// <exception cref="CheckpointObjectNotFoundException">The object does not exist.</exception>
    /// <exception cref="CheckpointStorageCorruptException">Its length or checksum differs from <paramref name="expected"/>.</exception>
    Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken);
}
