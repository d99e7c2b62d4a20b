using System.Collections.Concurrent;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Snapshots;

/// <summary>Puts the files of a keyed state handle into a directory that RocksDB can open.</summary>
public static class KeyedStateRestorer
{
    private const int ParallelTransfers = 4;

    /// <summary>
    /// Fills <paramref name="targetDirectory"/> with the files of <paramref name="handle"/>: from the local copy
    /// <paramref name="localCopy"/> when it has every file with the right length (SSTs hard-linked, the few other files
    /// copied because RocksDB may rewrite them), otherwise from storage with their checksums verified: downloaded, or, from
    /// storage that can link (<see cref="ILinkingCheckpointStorage"/>: filesystem storage on the same device, also behind
    /// a <see cref="DelegatingCheckpointStorage"/>), SSTs hard-linked (read once to verify, never copied).
    /// </summary>
    /// <returns>The final progress (including the bytes downloaded).</returns>
    /// <exception cref="CheckpointStorageException">When a file is missing or corrupt in storage.</exception>
    public static Task<RestoreProgress> RestoreAsync(
        KeyedStateHandle handle,
        long checkpointId,
        ICheckpointStorage storage,
        string targetDirectory,
        string? localCopy,
        IProgress<RestoreProgress>? progress,
        CancellationToken cancellationToken) =>
        RestoreAsync(handle, checkpointId, storage, targetDirectory, localCopy, progress, shared: null, cancellationToken);

    /// <summary>
    /// <see cref="RestoreAsync(KeyedStateHandle, long, ICheckpointStorage, string, string?, IProgress{RestoreProgress}?, CancellationToken)"/>,
    /// sharing downloads with the other restores of the silo through <paramref name="shared"/>: an SST another restore
    /// is downloading is linked from its copy (and counted as linked) instead of downloaded again.
    /// </summary>
    public static async Task<RestoreProgress> RestoreAsync(
        KeyedStateHandle handle,
        long checkpointId,
        ICheckpointStorage storage,
        string targetDirectory,
        string? localCopy,
        IProgress<RestoreProgress>? progress,
        SharedRestoreDownloads? shared,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentNullException.ThrowIfNull(storage);
        if (Directory.Exists(targetDirectory))
        {
            Directory.Delete(targetDirectory, recursive: true);
        }

        Directory.CreateDirectory(targetDirectory);
        var total = handle.Files.Sum(static f => f.Length);
        var state = new Progress(checkpointId, handle.Files.Count, total, progress);
        state.Begin();
        if (localCopy is not null && HasAllFiles(localCopy, handle))
        {
            foreach (var file in handle.Files)
            {
                var source = Path.Combine(localCopy, file.Name);
                var destination = Path.Combine(targetDirectory, file.Name);
                if (file.Name.EndsWith(".sst", StringComparison.Ordinal))
                {
                    HardLinks.LinkOrCopy(source, destination);
                }
                else
                {
                    File.Copy(source, destination);
                }

                state.FileDone(file.Length, Source.LocalCopy);
            }

            return state.Finish();
        }

        using var gate = new SemaphoreSlim(ParallelTransfers);
        var owned = new ConcurrentBag<SharedRestoreDownloads.Offer>();
        try
        {
            // Largest first: the transfers then end close together, instead of one large file started last holding
            // up the restore (two subtasks restoring 1 GB each finished 1.3 s apart in file order, together this way).
            await Task.WhenAll(handle.Files.OrderByDescending(static f => f.Length).Select(async file =>
            {
                var target = Path.Combine(targetDirectory, file.Name);
                var (offer, owner) = Linkable(file) && shared is not null ? shared.Claim(file, target) : default;
                if (owner)
                {
                    owned.Add(offer!);
                }
                else if (offer is not null && await SharedRestoreDownloads.TryLinkAsync(offer, target, cancellationToken))
                {
                    state.FileDone(file.Length, Source.Linked);
                    return;
                }

                await gate.WaitAsync(cancellationToken);
                try
                {
                    var expected = new StoredObject(file.Path, file.Length, file.Checksum);
                    var source = Source.Downloaded;
                    try
                    {
                        if (Linkable(file) && storage is ILinkingCheckpointStorage linking && await linking.TryLinkFileAsync(file.Path, target, expected, cancellationToken))
                        {
                            source = Source.Linked;
                        }
                        else
                        {
                            await storage.DownloadFileAsync(file.Path, target, expected, cancellationToken);
                        }
                    }
                    catch when (owner)
                    {
                        // Wake the restores waiting for this file now, not when this restore ends: this restore may itself
                        // be waiting for a file one of them owns.
                        offer!.Fail();
                        throw;
                    }

                    if (owner)
                    {
                        offer!.Complete();
                    }

                    state.FileDone(file.Length, source);
                }
                finally
                {
                    gate.Release();
                }
            }));
        }
        finally
        {
            // From here on the caller may move or delete the files: restores still waiting on them link them first,
            // later ones fetch them themselves.
            if (shared is not null)
            {
                await shared.WithdrawAsync(owned);
            }
        }

        return state.Finish();
    }

    /// <summary>SSTs are never written after RocksDB created them, so they may share an inode with storage; other files are copied.</summary>
    private static bool Linkable(StateFile file) => file.IsSst;

    private static bool HasAllFiles(string directory, KeyedStateHandle handle) =>
        Directory.Exists(directory) && handle.Files.All(f =>
        {
            var info = new FileInfo(Path.Combine(directory, f.Name));
            return info.Exists && info.Length == f.Length;
        });

    private sealed class Progress(long checkpointId, int files, long bytes, IProgress<RestoreProgress>? sink)
    {
        private readonly Lock _lock = new();
        private int _filesDone;
        private long _bytesDone;
        private long _downloaded;
        private long _linked;

        /// <summary>Reports the totals before any file is done, so that a long restore shows what it has to do from its start.</summary>
        public void Begin()
        {
            lock (_lock)
            {
                sink?.Report(Current(completed: false));
            }
        }

        public void FileDone(long length, Source source)
        {
            // Reported under the lock, so that the sink receives the counts in the order they grew: files finishing at
            // once would otherwise report out of order, and a combining sink drops a report older than one it has.
            lock (_lock)
            {
                _filesDone++;
                _bytesDone += length;
                _downloaded += source == Source.Downloaded ? length : 0;
                _linked += source == Source.Linked ? length : 0;
                sink?.Report(Current(completed: false));
            }
        }

        public RestoreProgress Finish()
        {
            RestoreProgress final;
            lock (_lock)
            {
                final = Current(completed: true);
            }

            sink?.Report(final);
            return final;
        }

        private RestoreProgress Current(bool completed) => new()
        {
            CheckpointId = checkpointId,
            FilesDone = _filesDone,
            FilesTotal = files,
            BytesDone = _bytesDone,
            BytesTotal = bytes,
            BytesDownloaded = _downloaded,
            BytesLinked = _linked,
            Completed = completed,
        };
    }

    private enum Source
    {
        LocalCopy,
        Downloaded,
        Linked,
    }
}
