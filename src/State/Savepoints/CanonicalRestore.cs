using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Savepoints;

/// <summary>Canonical state files between a subtask and checkpoint storage: write and upload, download and restore.</summary>
public static class CanonicalRestore
{
    /// <summary>
    /// Writes the canonical state file of the RocksDB checkpoint in <paramref name="rocksDbDirectory"/> (a consistent view
    /// taken on the mailbox) for <paramref name="keyGroups"/>, uploads it to <paramref name="path"/> and returns its entry
    /// for the manifest. The local file is deleted afterwards.
    /// </summary>
    public static async Task<StateFile> WriteAsync(string rocksDbDirectory, KeyGroupRange keyGroups, int maxParallelism, ICheckpointStorage storage, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(storage);
        var local = Path.TrimEndingDirectorySeparator(rocksDbDirectory) + ".state";
        try
        {
            await Task.Run(() => CanonicalStateWriter.WriteFromDirectory(rocksDbDirectory, keyGroups, maxParallelism, local, cancellationToken), cancellationToken);
            var stored = await storage.UploadFileAsync(local, path, cancellationToken);
            return new StateFile { Name = Path.GetFileName(path), Path = path, Length = stored.Length, Checksum = stored.Checksum };
        }
        finally
        {
            File.Delete(local);
        }
    }

    /// <summary>
    /// Restores <paramref name="target"/> from the canonical files of <paramref name="handles"/> (written at any
    /// parallelism) into <paramref name="targetDirectory"/>: downloads the files that hold any of its key groups (checksums
    /// verified) into <paramref name="scratchDirectory"/>, reads only those key groups' blocks, writes them with write
    /// batches, and deletes the downloads.
    /// </summary>
    public static async Task<RestoreProgress> RestoreAsync(
        IReadOnlyList<CanonicalStateHandle> handles,
        KeyGroupRange target,
        int maxParallelism,
        long checkpointId,
        ICheckpointStorage storage,
        string targetDirectory,
        string scratchDirectory,
        RocksDbResources resources,
        IProgress<RestoreProgress>? progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handles);
        ArgumentNullException.ThrowIfNull(storage);
        var needed = handles.Where(h => !h.KeyGroups.Intersect(target).IsEmpty).ToArray();
        Directory.CreateDirectory(scratchDirectory);
        try
        {
            var files = new string[needed.Length];
            long downloaded = 0;
            await Parallel.ForEachAsync(Enumerable.Range(0, needed.Length), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, async (i, ct) =>
            {
                var file = needed[i].File;
                files[i] = Path.Combine(scratchDirectory, FormattableString.Invariant($"{i}.state"));
                await storage.DownloadFileAsync(file.Path, files[i], new StoredObject(file.Path, file.Length, file.Checksum), ct);
                Interlocked.Add(ref downloaded, file.Length);
            });
            var request = new CanonicalRestoreRequest { Files = files, KeyGroups = target, MaxParallelism = maxParallelism, TargetDirectory = targetDirectory, CheckpointId = checkpointId };
            var withDownloads = progress is null ? null : new Progress(progress, downloaded);
            var result = await Task.Run(() => CanonicalStateReader.Restore(request, resources, withDownloads, cancellationToken), cancellationToken);
            return result.Progress with { BytesDownloaded = downloaded };
        }
        finally
        {
            Directory.Delete(scratchDirectory, recursive: true);
        }
    }

    private sealed class Progress(IProgress<RestoreProgress> inner, long downloaded) : IProgress<RestoreProgress>
    {
        public void Report(RestoreProgress value) => inner.Report(value with { BytesDownloaded = downloaded });
    }
}
