namespace StreamGrains.State.Storage;

/// <summary>A small object read together with its version, for a later <see cref="IConditionalCheckpointStorage.WriteIfAsync"/>.</summary>
/// <param name="Content">The object's bytes.</param>
/// <param name="Version">An opaque version: the blob's ETag, or the content's XxHash64 on a filesystem.</param>
public sealed record VersionedObject(byte[] Content, string Version);

/// <summary>
/// Optional capability of a checkpoint storage: compare-and-swap writes of small objects, for records that more than one
/// writer may update (a job's record, written by whichever activation of its job grain runs). A writer that read an old
/// version fails instead of overwriting what another writer wrote since.
/// </summary>
public interface IConditionalCheckpointStorage
{
    /// <summary>Reads a small object and its version; null when it does not exist.</summary>
    Task<VersionedObject?> ReadVersionedAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// Atomically writes a small object if its current version is <paramref name="expectedVersion"/>, or, when that is
    /// null, if it does not exist; returns the new version.
    /// </summary>
    /// <exception cref="CheckpointWriteConflictException">The object changed (or appeared, or vanished) since that version.</exception>
    Task<string> WriteIfAsync(string path, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellationToken);
}

/// <summary>A conditional write found another version of the object than the writer expected.</summary>
public sealed class CheckpointWriteConflictException(string message) : CheckpointStorageException(message);
