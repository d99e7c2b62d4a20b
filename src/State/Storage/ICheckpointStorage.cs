namespace StreamGrains.State.Storage;

/// <summary>An object in checkpoint storage: its path, length and content checksum.</summary>
/// <param name="Path">Path relative to the storage root, '/'-separated.</param>
/// <param name="Length">Length in bytes.</param>
/// <param name="Checksum">XxHash64 of the content as 16 lowercase hex digits, when known.</param>
public sealed record StoredObject(string Path, long Length, string? Checksum);

/// <summary>
/// Where checkpoints and savepoints are kept: the local filesystem (the embedded default) or Azure Blob Storage.
/// </summary>
/// <remarks>
/// <para>Paths are relative to the storage root, '/'-separated, without a leading '/', without "." or ".." segments.</para>
/// <para>Contract, for every implementation (one test suite runs against all): <see cref="WriteAsync"/> is atomic —
/// a reader sees the whole new content or nothing (or the old content) — which is what makes a manifest written last
/// the commit point of a checkpoint. Uploads record the content checksum; downloads verify length and checksum when the
/// caller gives the expected <see cref="StoredObject"/> and throw <see cref="CheckpointStorageCorruptException"/> on a
/// mismatch. A missing object is <see cref="CheckpointObjectNotFoundException"/> (or null / false where documented).
/// Deletes are idempotent. Implementations are thread-safe; transient failures are retried inside, and a failure that
/// outlasts the retries surfaces as <see cref="CheckpointStorageException"/>.</para>
/// </remarks>
public interface ICheckpointStorage
{
    /// <summary>A description of the location for messages, e.g. <c>file:///var/checkpoints</c>.</summary>
    string Location { get; }

    /// <summary>Writes, reads back and deletes a probe object; throws a clear <see cref="CheckpointStorageException"/> when the storage is unreachable or misconfigured.</summary>
    Task CheckAccessAsync(CancellationToken cancellationToken);

    /// <summary>Uploads a local file to <paramref name="path"/> (replacing any object there) and returns what was stored.</summary>
    Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken);

    /// <summary>Downloads <paramref name="path"/> to <paramref name="localPath"/>, verifying it against <paramref name="expected"/> when given.</summary>
    Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken);

    /// <summary>Atomically writes a small object; when <paramref name="overwrite"/> is false and the object exists, throws <see cref="CheckpointStorageException"/>.</summary>
    Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken);

    /// <summary>Reads a small object; null when it does not exist.</summary>
    Task<byte[]?> ReadAsync(string path, CancellationToken cancellationToken);

    /// <summary>Whether an object exists at <paramref name="path"/>.</summary>
    Task<bool> ExistsAsync(string path, CancellationToken cancellationToken);

    /// <summary>Deletes an object; nothing happens when it does not exist.</summary>
    Task DeleteAsync(string path, CancellationToken cancellationToken);

    /// <summary>Deletes every object whose path starts with <paramref name="prefix"/> followed by '/'.</summary>
    Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Lists every object under <paramref name="prefix"/> (recursively, any order); empty prefix lists everything.</summary>
    IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>
    /// Copies an object inside the storage without moving its bytes through this process where the storage can: a
    /// server-side copy on Blob Storage, a hard link on a filesystem (falling back to a copy).
    /// </summary>
    Task CopyAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken);
}
