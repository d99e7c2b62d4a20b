namespace StreamGrains.State.Storage;

/// <summary>Conditional writes on the filesystem: a compare-and-swap under an exclusive lock file next to the object.</summary>
/// <remarks>
/// The version of an object is the XxHash64 of its content. The lock (<c>.tmp-lock-{name}</c>, opened with
/// <see cref="FileShare.None"/>, an advisory lock held by every writer that goes through here, in this or another
/// process) makes the read of the current version and the atomic rename of the new content one step. It stays after the
/// write (deleting it would let two writers lock two different files); its name starts like a temporary file, so
/// listings skip it. On a network filesystem the lock is as good as that filesystem's lock support.
/// </remarks>
public sealed partial class FileSystemCheckpointStorage : IConditionalCheckpointStorage
{
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(10);

    /// <inheritdoc />
    public async Task<VersionedObject?> ReadVersionedAsync(string path, CancellationToken cancellationToken) =>
        await ReadAsync(path, cancellationToken) is { } content ? new VersionedObject(content, Checksums.Of(content)) : null;

    /// <inheritdoc />
    public async Task<string> WriteIfAsync(string path, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellationToken)
    {
        var target = FullPath(path);
        var lockPath = Path.Combine(Path.GetDirectoryName(target)!, $"{TemporaryPrefix}lock-{Path.GetFileName(target)}");
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            await using var held = await LockAsync(lockPath, path, cancellationToken);
            var current = await ReadVersionedAsync(path, cancellationToken);
            if (current?.Version != expectedVersion)
            {
                throw new CheckpointWriteConflictException($"'{path}' in checkpoint storage {Location} is at version {current?.Version ?? "(none)"}, not {expectedVersion ?? "(none)"}: another writer changed it.");
            }

            await WriteAsync(path, content, overwrite: expectedVersion is not null, cancellationToken);
            return Checksums.Of(content.Span);
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("writing", path, ex);
        }
    }

    /// <summary>Opens the lock file exclusively, retrying while another writer holds it.</summary>
    private async Task<FileStream> LockAsync(string lockPath, string path, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + LockWait;
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline && File.Exists(lockPath))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
            }
            catch (IOException ex) when (File.Exists(lockPath))
            {
                throw new CheckpointStorageException($"Checkpoint storage {Location}: '{path}' stayed locked by another writer for {LockWait}.", ex);
            }
        }
    }
}
