using System.Buffers;
using System.IO.Hashing;
using System.Runtime.CompilerServices;

namespace StreamGrains.State.Storage;

/// <summary>Checkpoint storage in a directory of the local (or a mounted shared) filesystem.</summary>
/// <remarks>
/// <para>Every object that appears under its final name is complete: writes, uploads, downloads and copies go through
/// a temporary file (<c>.tmp-…</c>) in the target directory that is flushed to disk and then renamed into place. A
/// rename within one directory is atomic on POSIX filesystems and NTFS. "Create if absent" (a write without overwrite)
/// hard-links the temporary file to the target name, which fails atomically when the target exists.</para>
/// <para>Copies are hard links where the filesystem allows them (objects are immutable, so a link is as good as a
/// copy and costs no bytes), falling back to a real copy across devices, on Windows, or when linking fails.</para>
/// <para>Names are durable too: after an object is published under its name (rename or link), its directory is
/// fsynced, and so is the parent of every directory created for it (<see cref="DirectorySync"/>; not on Windows, where
/// NTFS journals its metadata). One directory sync per published object, none per temporary file.</para>
/// <para>Checksums of listed objects are null: computing them would read every byte.</para>
/// </remarks>
public sealed partial class FileSystemCheckpointStorage : ICheckpointStorage, ILinkingCheckpointStorage
{
    private const int CopyBufferSize = 1 << 20;
    private const string TemporaryPrefix = ".tmp-";
    private readonly string _root;

    /// <summary>Creates storage rooted at <paramref name="rootDirectory"/> (created on first write).</summary>
    public FileSystemCheckpointStorage(string rootDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rootDirectory);
        _root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(rootDirectory));
    }

    /// <inheritdoc />
    public string Location => "file://" + _root;

    /// <summary>
    /// Whether a restore may hard-link a stored file into the working directory instead of copying it (default true).
    /// Stored files and RocksDB's SSTs are immutable, so a link is as good as a copy; where the OS cannot link (another
    /// device, a filesystem without hard links, Windows) the restore copies.
    /// </summary>
    public bool LinkOnRestore { get; init; } = true;

    /// <summary>Whether publishing an object fsyncs its directory (default true; off only to measure what that costs).</summary>
    internal bool SyncDirectories { get; init; } = true;

    /// <summary>Called with every directory this storage synced (tests count them).</summary>
    internal Action<string>? DirectorySynced { get; init; }

    /// <inheritdoc />
    public async Task CheckAccessAsync(CancellationToken cancellationToken)
    {
        var probe = $".probe-{Guid.NewGuid():N}";
        var content = "streamgrains checkpoint storage probe"u8.ToArray();
        try
        {
            Directory.CreateDirectory(_root);
            await WriteAsync(probe, content, overwrite: false, cancellationToken);
            var read = await ReadAsync(probe, cancellationToken);
            await DeleteAsync(probe, cancellationToken);
            if (read is null || !read.AsSpan().SequenceEqual(content))
            {
                throw new CheckpointStorageException($"Checkpoint storage {Location} did not read back what was written to it.");
            }
        }
        catch (CheckpointStorageException ex) when (ex.InnerException is { } cause)
        {
            throw new CheckpointStorageException($"Checkpoint storage {Location} is not usable: {Reason(cause)}", cause);
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw new CheckpointStorageException($"Checkpoint storage {Location} is not usable: {Reason(ex)}", ex);
        }
    }

    private const string MetricsKind = "filesystem";

    /// <inheritdoc />
    public async Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var target = FullPath(path);
        try
        {
            CreateDirectoryOf(target);
            var temporary = TemporaryNextTo(target);
            try
            {
                var (length, checksum) = await CopyHashingAsync(localPath, temporary, cancellationToken);
                File.Move(temporary, target, overwrite: true);
                SyncDirectoryOf(target);
                CheckpointStorageMetrics.Wrote(MetricsKind, length);
                return new StoredObject(path, length, checksum);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("uploading to", path, ex);
        }
    }

    /// <inheritdoc />
    public async Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var source = FullPath(path);
        try
        {
            if (!File.Exists(source))
            {
                ThrowIfUnreachable("downloading", path);
                throw new CheckpointObjectNotFoundException(path, Location);
            }

            var destination = Path.GetFullPath(localPath);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            var temporary = TemporaryNextTo(destination);
            try
            {
                var (length, checksum) = await CopyHashingAsync(source, temporary, cancellationToken);
                CheckpointStorageMetrics.Fetched(MetricsKind, length);
                Checksums.Verify(path, expected, length, checksum);
                File.Move(temporary, destination, overwrite: true);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException && !File.Exists(source))
        {
            // Deleted between the check and the copy.
            ThrowIfUnreachable("downloading", path);
            throw new CheckpointObjectNotFoundException(path, Location);
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("downloading", path, ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>False when <see cref="LinkOnRestore"/> is off, or the OS cannot link the two paths (another device, no hard links, Windows).</remarks>
    public async Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var source = FullPath(path);
        if (!LinkOnRestore)
        {
            return false;
        }

        try
        {
            if (!File.Exists(source))
            {
                ThrowIfUnreachable("linking", path);
                throw new CheckpointObjectNotFoundException(path, Location);
            }

            var destination = Path.GetFullPath(localPath);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            var temporary = TemporaryNextTo(destination);
            try
            {
                if (!HardLinks.TryLink(source, temporary))
                {
                    return false;
                }

                if (expected is not null)
                {
                    // Hash the link (the same inode as the stored object) so what is verified is what is used.
                    var (length, checksum) = await Checksums.OfFileAsync(temporary, cancellationToken);
                    CheckpointStorageMetrics.Fetched(MetricsKind, length);
                    Checksums.Verify(path, expected, length, checksum);
                }

                File.Move(temporary, destination, overwrite: true);
                return true;
            }
            finally
            {
                File.Delete(temporary);
            }
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("linking", path, ex);
        }
    }

    /// <inheritdoc />
    public async Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken)
    {
        var target = FullPath(path);
        try
        {
            CreateDirectoryOf(target);
            var temporary = TemporaryNextTo(target);
            try
            {
                await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
                {
                    await stream.WriteAsync(content, cancellationToken);
                    stream.Flush(flushToDisk: true);
                }

                CheckpointStorageMetrics.Wrote(MetricsKind, content.Length);

                if (overwrite)
                {
                    File.Move(temporary, target, overwrite: true);
                }
                else if (!TryCreateFrom(temporary, target))
                {
                    throw new CheckpointStorageException($"'{path}' already exists in checkpoint storage {Location}.");
                }

                SyncDirectoryOf(target);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("writing", path, ex);
        }
    }

    /// <inheritdoc />
    public async Task<byte[]?> ReadAsync(string path, CancellationToken cancellationToken)
    {
        var source = FullPath(path);
        try
        {
            var content = await File.ReadAllBytesAsync(source, cancellationToken);
            CheckpointStorageMetrics.Fetched(MetricsKind, content.Length);
            return content;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            ThrowIfUnreachable("reading", path);
            return null;
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("reading", path, ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>False only when the storage could have shown the file (see <see cref="ThrowIfUnreachable"/>).</remarks>
    public Task<bool> ExistsAsync(string path, CancellationToken cancellationToken)
    {
        if (File.Exists(FullPath(path)))
        {
            return Task.FromResult(true);
        }

        ThrowIfUnreachable("checking", path);
        return Task.FromResult(false);
    }

    /// <summary>
    /// A file counts as missing only if the storage could have shown it: <see cref="File.Exists(string)"/> also says
    /// false when a directory on the way cannot be read (permissions, a stale mount), and a checkpoint must not be given
    /// up for that. Throws <see cref="CheckpointStorageException"/> when the nearest existing directory above the file
    /// cannot be listed, or lists the next part of the path although that part cannot be accessed.
    /// </summary>
    private void ThrowIfUnreachable(string operation, string path)
    {
        var full = FullPath(path);
        var child = full;
        try
        {
            var directory = Path.GetDirectoryName(child);
            while (directory is not null && !Directory.Exists(directory))
            {
                child = directory;
                directory = Path.GetDirectoryName(directory);
            }

            if (directory is null)
            {
                return;
            }

            var name = Path.GetFileName(child);
            var listed = Directory.EnumerateFileSystemEntries(directory, name, new EnumerationOptions { MatchType = MatchType.Simple, AttributesToSkip = 0 })
                .Any(entry => string.Equals(Path.GetFileName(entry), name, StringComparison.Ordinal));
            if (listed && !(child == full ? File.Exists(child) : Directory.Exists(child)))
            {
                throw new CheckpointStorageException($"Checkpoint storage {Location}: {operation} '{path}' failed: '{child}' exists but cannot be read, so whether the file exists is unknown.");
            }
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure(operation, path, ex);
        }
    }

    /// <inheritdoc />
    public Task DeleteAsync(string path, CancellationToken cancellationToken)
    {
        var target = FullPath(path);
        try
        {
            File.Delete(target);
        }
        catch (DirectoryNotFoundException)
        {
            // Already gone.
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("deleting", path, ex);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        var target = FullPath(prefix);
        try
        {
            Directory.Delete(target, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Already gone.
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("deleting everything under", prefix, ex);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var directory = prefix.Length == 0 ? _root : FullPath(prefix);
        return ListCoreAsync(prefix, directory, cancellationToken);
    }

    /// <inheritdoc />
    public Task CopyAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken)
    {
        var source = FullPath(sourcePath);
        var destination = FullPath(destinationPath);
        try
        {
            if (!File.Exists(source))
            {
                throw new CheckpointObjectNotFoundException(sourcePath, Location);
            }

            CreateDirectoryOf(destination);
            var temporary = TemporaryNextTo(destination);
            try
            {
                if (!HardLinks.TryLink(source, temporary))
                {
                    File.Copy(source, temporary, overwrite: false);
                }

                File.Move(temporary, destination, overwrite: true);
                SyncDirectoryOf(destination);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException && !File.Exists(source))
        {
            throw new CheckpointObjectNotFoundException(sourcePath, Location);
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure($"copying '{sourcePath}' to", destinationPath, ex);
        }

        return Task.CompletedTask;
    }

    /// <summary>Creates the directory of <paramref name="path"/> and syncs the parents of the directories it created.</summary>
    private void CreateDirectoryOf(string path) => DirectorySync.CreateDurably(Path.GetDirectoryName(path)!, SyncDirectory);

    /// <summary>Makes the name of a just published <paramref name="path"/> durable.</summary>
    private void SyncDirectoryOf(string path) => SyncDirectory(Path.GetDirectoryName(path)!);

    private void SyncDirectory(string directory)
    {
        if (SyncDirectories && DirectorySync.IsSupported)
        {
            DirectorySync.Sync(directory);
            DirectorySynced?.Invoke(directory);
        }
    }

    /// <summary>Validates a storage path and maps it below the root.</summary>
    internal string FullPath(string path)
    {
        StoragePaths.Validate(path);
        return Path.Combine(_root, path);
    }

    /// <summary>The length of a listed file, or null when it was deleted since it was listed (a concurrent delete is no error).</summary>
    private static long? LengthOrNull(FileInfo file)
    {
        try
        {
            return file.Length;
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    private async IAsyncEnumerable<StoredObject> ListCoreAsync(string prefix, string directory, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        List<StoredObject> found = [];
        try
        {
            if (Directory.Exists(directory))
            {
                var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = false, AttributesToSkip = 0 };
                foreach (var file in new DirectoryInfo(directory).EnumerateFiles("*", options))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (!file.Name.StartsWith(TemporaryPrefix, StringComparison.Ordinal) && LengthOrNull(file) is { } length)
                    {
                        found.Add(new StoredObject(Path.GetRelativePath(_root, file.FullName).Replace('\\', '/'), length, null));
                    }
                }
            }
        }
        catch (Exception ex) when (IsIoFailure(ex))
        {
            throw Failure("listing", prefix, ex);
        }

        foreach (var stored in found)
        {
            yield return stored;
        }

        await Task.CompletedTask;
    }

    private CheckpointStorageException Failure(string operation, string path, Exception exception) =>
        new($"Checkpoint storage {Location}: {operation} '{path}' failed: {Reason(exception)}", exception);

    /// <summary>The message of an I/O failure with the OS's reason, which .NET keeps in an inner exception or loses.</summary>
    private string Reason(Exception exception)
    {
        if (exception is DirectoryNotFoundException && FileOnTheWay() is { } file)
        {
            // ENOTDIR surfaces as "could not find a part of the path"; say what is actually wrong.
            return $"'{file}' is a file, not a directory ({exception.Message})";
        }

        return exception.InnerException is { } inner && inner.Message != exception.Message
            ? $"{exception.Message} ({inner.Message})"
            : exception.Message;
    }

    /// <summary>The nearest existing ancestor of the root (or the root itself) when it is a file.</summary>
    private string? FileOnTheWay()
    {
        for (var path = _root; !string.IsNullOrEmpty(path); path = Path.GetDirectoryName(path))
        {
            if (File.Exists(path))
            {
                return path;
            }

            if (Directory.Exists(path))
            {
                return null;
            }
        }

        return null;
    }

    private static bool IsIoFailure(Exception exception) => exception is IOException or UnauthorizedAccessException;

    private static string TemporaryNextTo(string path) => Path.Combine(Path.GetDirectoryName(path)!, $"{TemporaryPrefix}{Guid.NewGuid():N}");

    /// <summary>Copies a file to a new file while hashing it, flushes the copy to disk, returns its length and XxHash64.</summary>
    /// <remarks>The copy is written past the page cache where it can be (see <see cref="LocalFileWriter"/>).</remarks>
    private static async Task<(long Length, string Checksum)> CopyHashingAsync(string source, string destination, CancellationToken cancellationToken)
    {
        var hash = new XxHash64();
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
            await using var output = LocalFileWriter.Create(destination);
            int read;
            while ((read = await input.ReadAsync(buffer.AsMemory(0, CopyBufferSize), cancellationToken)) > 0)
            {
                hash.Append(buffer.AsSpan(0, read));
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }

            await output.CompleteAsync(flushToDisk: true, cancellationToken);
            return (output.Length, Checksums.ToHex(hash.GetCurrentHashAsUInt64()));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Gives <paramref name="temporary"/>'s content the name <paramref name="target"/> unless that exists, atomically; false when it exists.</summary>
    /// <remarks>
    /// File.Move without overwrite is not atomic on Unix (.NET checks for the target, then renames over it), so two
    /// writers could both "create" a manifest. <c>link</c> fails with EEXIST atomically; where the filesystem has no hard
    /// links, File.Move is the best left (on Windows, MoveFileEx without REPLACE_EXISTING is atomic).
    /// </remarks>
    private static bool TryCreateFrom(string temporary, string target)
    {
        if (HardLinks.TryLink(temporary, target))
        {
            return true;
        }

        if (File.Exists(target))
        {
            return false;
        }

        try
        {
            File.Move(temporary, target, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(target))
        {
            return false;
        }
    }
}
