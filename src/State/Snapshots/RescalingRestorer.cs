using System.Globalization;
using System.Runtime.ExceptionServices;
using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// Restores the keyed state of one key-group range from the handles of a snapshot taken with another parallelism, whose
/// key-group ranges cut across it.
/// </summary>
/// <remarks>
/// <para>Two ways, chosen by what the snapshot records. <b>Import</b> (every SST records its column family, level, key
/// groups and sequence numbers, <see cref="SstFileInfo"/>): only the SSTs whose key groups overlap the target are
/// fetched, from every handle at once; one RocksDB import per column family (CreateColumnFamilyWithImport) puts them
/// into a new instance at the levels and with the sequence numbers they had, hard-linked, never rewritten; the keys of
/// other key groups in the files that straddle the target's bounds are then clipped. The old instances' MANIFESTs are
/// not needed. Scaling up fetches about the new subtask's share of the state plus the files that straddle its bounds
/// (level-0 files span every key group of their old subtask, so a snapshot taken under compaction debt costs more);
/// scaling down fetches exactly the old state and rewrites nothing.</para>
/// <para><b>Reopen</b> (snapshots written before SSTs recorded their place): (1) every handle is restored with
/// <see cref="KeyedStateRestorer"/> at the same time — the base (the handle sharing the most key groups with the target)
/// into the target directory, the others into the scratch directory; (2) as each other handle arrives, its keys of the
/// target range are exported by one bounded sequential scan per column family into SST files; (3) the base is opened and
/// clipped to the target range; (4) the exported files are ingested into the base, column family by column family.</para>
/// <para>Clipping drops the files entirely outside the range without reading them (DeleteFilesInRange) and covers the
/// rest with range deletions, flushed. No key is inserted one by one into the target. A failed restore deletes the
/// target directory, so that a half-built instance can never be opened as if it were complete, and always deletes what
/// it created in the scratch directory.</para>
/// <para>The clipped ranges are not compacted. Measured with the <c>rescale</c> benchmark (2 GiB of values, 1.05 GB of
/// SSTs, parallelism 2 to 3, a 2-core machine): a CompactRange of the clipped ranges, bottommost level included, took
/// 2.9–3.3 s per subtask, where the whole restore of a subtask inside one old range took 0.24–0.44 s without it. The
/// garbage stays hidden by the range deletions until the instance's own compactions rewrite those files; compacting
/// here would hold the restore gate, and with it the whole job, for space that is reclaimed anyway.</para>
/// </remarks>
public static class RescalingRestorer
{
    /// <summary>
    /// Fills <paramref name="targetDirectory"/> with a RocksDB instance holding exactly the keys of
    /// <paramref name="target"/> from <paramref name="handles"/>, in every column family of every handle.
    /// </summary>
    /// <param name="handles">Every handle of the snapshot whose key groups overlap <paramref name="target"/>; they must not overlap each other and must together cover it.</param>
    /// <param name="target">The key groups of the restoring subtask.</param>
    /// <param name="checkpointId">The checkpoint the handles belong to (reported in the progress).</param>
    /// <param name="storage">The checkpoint storage holding the handles' files.</param>
    /// <param name="targetDirectory">Where the instance ends up; replaced if it exists.</param>
    /// <param name="scratchDirectory">Where the other handles are restored temporarily; what is created there is deleted before returning.</param>
    /// <param name="resources">The resources whose options the backend opens instances with.</param>
    /// <param name="progress">Receives the progress over all handles' files as they arrive, lastly with <see cref="RestoreProgress.Completed"/> set.</param>
    /// <param name="cancellationToken">Cancels the restore.</param>
    /// <returns>The final progress. When it returns, no RocksDB handle on <paramref name="targetDirectory"/> is open.</returns>
    /// <exception cref="ArgumentException">When the handles are empty, do not overlap the target, overlap each other or leave key groups of the target uncovered.</exception>
    /// <exception cref="CheckpointStorageException">When a file is missing or corrupt in storage.</exception>
    public static Task<RestoreProgress> RestoreAsync(
        IReadOnlyList<KeyedStateHandle> handles,
        KeyGroupRange target,
        long checkpointId,
        ICheckpointStorage storage,
        string targetDirectory,
        string scratchDirectory,
        RocksDbResources resources,
        IProgress<RestoreProgress>? progress,
        CancellationToken cancellationToken) =>
        RestoreAsync(handles, target, checkpointId, storage, targetDirectory, scratchDirectory, resources, progress, shared: null, cancellationToken);

    /// <summary>
    /// <see cref="RestoreAsync(IReadOnlyList{KeyedStateHandle}, KeyGroupRange, long, ICheckpointStorage, string, string, RocksDbResources, IProgress{RestoreProgress}?, CancellationToken)"/>,
    /// sharing SST downloads with the other restores of the silo through <paramref name="shared"/>.
    /// </summary>
    public static async Task<RestoreProgress> RestoreAsync(
        IReadOnlyList<KeyedStateHandle> handles,
        KeyGroupRange target,
        long checkpointId,
        ICheckpointStorage storage,
        string targetDirectory,
        string scratchDirectory,
        RocksDbResources resources,
        IProgress<RestoreProgress>? progress,
        SharedRestoreDownloads? shared,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handles);
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentException.ThrowIfNullOrEmpty(targetDirectory);
        ArgumentException.ThrowIfNullOrEmpty(scratchDirectory);
        ArgumentNullException.ThrowIfNull(resources);
        Validate(handles, target);
        if (handles.Count == 1 && handles[0].KeyGroups == target)
        {
            return await KeyedStateRestorer.RestoreAsync(handles[0], checkpointId, storage, targetDirectory, localCopy: null, progress, cancellationToken);
        }

        if (Importable(handles))
        {
            return await ImportAsync(handles, target, checkpointId, storage, targetDirectory, scratchDirectory, resources, progress, shared, cancellationToken);
        }

        var baseIndex = 0;
        for (var i = 1; i < handles.Count; i++)
        {
            if (handles[i].KeyGroups.Intersect(target).Count > handles[baseIndex].KeyGroups.Intersect(target).Count)
            {
                baseIndex = i;
            }
        }

        var combined = new CombinedProgress(checkpointId, handles, progress);
        var scratch = new Scratch(scratchDirectory);
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var baseRestore = KeyedStateRestorer.RestoreAsync(handles[baseIndex], checkpointId, storage, targetDirectory, localCopy: null, combined.Part(baseIndex), shared, failed.Token);
        var exports = new List<Task<HandleExport>>(handles.Count - 1);
        for (var i = 0; i < handles.Count; i++)
        {
            if (i != baseIndex)
            {
                exports.Add(CancelOthersOnFailureAsync(RestoreAndExportAsync(handles[i], i, target, checkpointId, storage, scratch.Of(i), resources, combined, shared, failed.Token), failed));
            }
        }

        try
        {
            combined.Done(baseIndex, await baseRestore);
            var dbOptions = resources.CreateDbOptions();
            var columnFamilyOptions = resources.CreateColumnFamilyOptions();
            var columnFamilies = KeyGroupRangeOperations.ListColumnFamilies(dbOptions, targetDirectory);
            using (var db = KeyGroupRangeOperations.Open(dbOptions, columnFamilyOptions, targetDirectory, columnFamilies, readOnly: false))
            {
                KeyGroupRangeOperations.Clip(db, columnFamilies, target, handles[baseIndex].KeyGroups);
                var exported = await Task.WhenAll(exports);
                foreach (var export in exported)
                {
                    combined.Done(export.Index, export.Restored);
                }

                KeyGroupRangeOperations.Ingest(db, exported.SelectMany(static e => e.ColumnFamilies), columnFamilyOptions);
            }

            GC.KeepAlive(dbOptions);
            GC.KeepAlive(columnFamilyOptions);
        }
        catch (Exception ex)
        {
            await FailAsync(ex, exports.Append<Task>(baseRestore).ToArray(), failed, targetDirectory, cancellationToken);
            throw;
        }
        finally
        {
            scratch.Delete();
        }

        return combined.Finish();
    }

    /// <summary>
    /// Whether the handles' SSTs can be imported side by side: every SST records where it sat in its instance
    /// (snapshots taken since that is recorded), none is in the default column family (which keyed state never writes
    /// and an import cannot create), and none reaches beyond its own handle's key groups.
    /// </summary>
    /// <remarks>
    /// The last condition is what makes one import of several instances' files valid: their key ranges are then
    /// disjoint. An instance that was itself restored by a rescale holds, until its compactions have rewritten them, the
    /// files that straddled its bounds (with keys of key groups it does not own) and the range deletions that hide
    /// those keys, which span everything outside its key groups. Imported next to another instance's files, those
    /// deletions (whose sequence numbers mean nothing against the other instance's) could hide that instance's keys,
    /// and the stale keys could shadow them. Such handles take the reopen path, where each instance is read through its
    /// own deletions.
    /// </remarks>
    private static bool Importable(IReadOnlyList<KeyedStateHandle> handles) =>
        handles.All(static h => h.Files.All(f => !f.IsSst || f.Sst is { } sst
            && sst.ColumnFamily != RocksDbSharp.ColumnFamilies.DefaultName
            && h.KeyGroups.Contains(sst.KeyGroups.Start)
            && h.KeyGroups.Contains(sst.KeyGroups.End)));

    /// <summary>
    /// The restore from SSTs that record their place: only the SSTs holding key groups of the target are fetched (from
    /// every handle at once, checksums verified), imported into a new instance at the levels and with the sequence
    /// numbers they had (one import per column family over all handles, files hard-linked, not rewritten), and the keys
    /// of other key groups in the files that straddle the target's bounds are clipped as in the other path. The old
    /// instances' MANIFESTs are not needed, nor are the SSTs wholly outside the target: scaling up fetches about its
    /// share of the state instead of whole old instances, and scaling down rewrites no key.
    /// </summary>
    private static async Task<RestoreProgress> ImportAsync(
        IReadOnlyList<KeyedStateHandle> handles,
        KeyGroupRange target,
        long checkpointId,
        ICheckpointStorage storage,
        string targetDirectory,
        string scratchDirectory,
        RocksDbResources resources,
        IProgress<RestoreProgress>? progress,
        SharedRestoreDownloads? shared,
        CancellationToken cancellationToken)
    {
        var needed = handles
            .Select(h => h with { Files = h.Files.Where(f => f.IsSst && !f.Sst!.KeyGroups.Intersect(target).IsEmpty).ToArray(), Changelog = null })
            .ToArray();
        var combined = new CombinedProgress(checkpointId, needed, progress);
        var scratch = new Scratch(scratchDirectory);
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var downloads = needed
            .Select((h, i) => CancelOthersOnFailureAsync(
                KeyedStateRestorer.RestoreAsync(h, checkpointId, storage, scratch.Of(i), localCopy: null, combined.Part(i), shared, failed.Token),
                failed))
            .ToArray();
        try
        {
            var restored = await Task.WhenAll(downloads);
            for (var i = 0; i < restored.Length; i++)
            {
                combined.Done(i, restored[i]);
            }

            var present = new KeyGroupRange(handles.Min(static h => h.KeyGroups.Start), handles.Max(static h => h.KeyGroups.End));
            await Task.Run(() => BuildByImport(needed, scratch, target, present, targetDirectory, resources), cancellationToken);
        }
        catch (Exception ex)
        {
            await FailAsync(ex, downloads, failed, targetDirectory, cancellationToken);
            throw;
        }
        finally
        {
            scratch.Delete();
        }

        return combined.Finish();
    }

    private static void BuildByImport(KeyedStateHandle[] needed, Scratch scratch, KeyGroupRange target, KeyGroupRange present, string targetDirectory, RocksDbResources resources)
    {
        DeleteIfExists(targetDirectory);
        var dbOptions = resources.CreateDbOptions();
        var columnFamilyOptions = resources.CreateColumnFamilyOptions();
        var files = needed.SelectMany((h, i) => h.Files.Select(f => (Directory: scratch.Of(i), File: f)));
        var handles = new List<IntPtr>();
        using (var db = RocksDbSharp.RocksDb.Open(dbOptions, targetDirectory, new RocksDbSharp.ColumnFamilies(columnFamilyOptions)))
        {
            try
            {
                foreach (var family in files.GroupBy(static f => f.File.Sst!.ColumnFamily, StringComparer.Ordinal))
                {
                    var imported = family
                        .Select(static f => new ImportedSstFile(f.Directory, f.File.Name, f.File.Sst!.Level, f.File.Length, (ulong)f.File.Sst.SmallestSeqno, (ulong)f.File.Sst.LargestSeqno))
                        .ToArray();
                    handles.Add(NativeExtensions.ImportColumnFamily(db, columnFamilyOptions, family.Key, imported, moveFiles: true));
                }

                KeyGroupRangeOperations.Clip(db, handles, target, present);
            }
            finally
            {
                foreach (var handle in handles)
                {
                    NativeExtensions.DestroyColumnFamilyHandle(handle);
                }
            }
        }

        GC.KeepAlive(dbOptions);
        GC.KeepAlive(columnFamilyOptions);
    }

    /// <summary>
    /// After a failure: cancels and awaits the other transfers, deletes the half-built target, and turns a cancellation
    /// that one handle's failure caused into that failure.
    /// </summary>
    private static async Task FailAsync(Exception ex, Task[] transfers, CancellationTokenSource others, string targetDirectory, CancellationToken cancellationToken)
    {
        await others.CancelAsync();
        await Task.WhenAll(transfers.Select(static t => t.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)));
        DeleteIfExists(targetDirectory);
        if (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested
            && transfers.Select(static t => t.Exception?.InnerException).FirstOrDefault(static e => e is not null and not OperationCanceledException) is { } cause)
        {
            ExceptionDispatchInfo.Throw(cause);
        }
    }

    /// <summary>A directory of its own under the scratch directory, one subdirectory per handle.</summary>
    private sealed class Scratch(string root)
    {
        private readonly bool _createdRoot = !Directory.Exists(root);
        private readonly string _path = Path.Combine(root, $"rescale-{Guid.NewGuid():N}");

        /// <summary>The directory for handle <paramref name="index"/>.</summary>
        public string Of(int index) => Path.Combine(_path, index.ToString(CultureInfo.InvariantCulture));

        /// <summary>Deletes what this restore created, and the scratch directory itself when it created it and left it empty.</summary>
        public void Delete()
        {
            DeleteIfExists(_path);
            if (_createdRoot && Directory.Exists(root) && !Directory.EnumerateFileSystemEntries(root).Any())
            {
                Directory.Delete(root);
            }
        }
    }

    private static async Task<T> CancelOthersOnFailureAsync<T>(Task<T> task, CancellationTokenSource others)
    {
        try
        {
            return await task;
        }
        catch
        {
            await others.CancelAsync();
            throw;
        }
    }

    private static async Task<HandleExport> RestoreAndExportAsync(
        KeyedStateHandle handle,
        int index,
        KeyGroupRange target,
        long checkpointId,
        ICheckpointStorage storage,
        string directory,
        RocksDbResources resources,
        CombinedProgress progress,
        SharedRestoreDownloads? shared,
        CancellationToken cancellationToken)
    {
        var restoredDirectory = Path.Combine(directory, "db");
        var restored = await KeyedStateRestorer.RestoreAsync(handle, checkpointId, storage, restoredDirectory, localCopy: null, progress.Part(index), shared, cancellationToken);
        var columnFamilies = await Task.Run(
            () =>
            {
                var dbOptions = resources.CreateDbOptions();
                var columnFamilyOptions = resources.CreateColumnFamilyOptions();
                var names = KeyGroupRangeOperations.ListColumnFamilies(dbOptions, restoredDirectory);
                using var db = KeyGroupRangeOperations.Open(dbOptions, columnFamilyOptions, restoredDirectory, names, readOnly: true);
                var result = KeyGroupRangeOperations.Export(db, names, handle.KeyGroups.Intersect(target), Path.Combine(directory, "sst"), columnFamilyOptions, cancellationToken);
                GC.KeepAlive(dbOptions);
                return result;
            },
            cancellationToken);

        // Only the exported files are needed from here on: free the disk space of the restored copy now.
        Directory.Delete(restoredDirectory, recursive: true);
        return new HandleExport(index, restored, columnFamilies);
    }

    private static void Validate(IReadOnlyList<KeyedStateHandle> handles, KeyGroupRange target)
    {
        if (target.IsEmpty)
        {
            throw new ArgumentException("The target key-group range is empty; a subtask always owns at least one key group.", nameof(target));
        }

        if (handles.Count == 0)
        {
            throw new ArgumentException($"No state handle was given for key groups {target}; pass every handle of the snapshot that overlaps them.", nameof(handles));
        }

        for (var i = 0; i < handles.Count; i++)
        {
            var handle = handles[i] ?? throw new ArgumentException($"State handle {i} is null.", nameof(handles));
            if (handle.KeyGroups.Intersect(target).IsEmpty)
            {
                throw new ArgumentException($"State handle {i} covers key groups {handle.KeyGroups}, which do not overlap the target {target}.", nameof(handles));
            }
        }

        var sorted = handles.Select(static (h, i) => (h.KeyGroups, Index: i)).OrderBy(static h => h.KeyGroups.Start).ToArray();
        var covered = target.Start;
        for (var i = 0; i < sorted.Length; i++)
        {
            var (range, index) = sorted[i];
            if (i > 0 && !range.Intersect(sorted[i - 1].KeyGroups).IsEmpty)
            {
                throw new ArgumentException(
                    $"State handles {sorted[i - 1].Index} {sorted[i - 1].KeyGroups} and {index} {range} overlap in key groups {range.Intersect(sorted[i - 1].KeyGroups)}; the handles of one operator in one snapshot own disjoint key groups.",
                    nameof(handles));
            }

            if (range.Start > covered)
            {
                throw new ArgumentException($"Key groups {new KeyGroupRange(covered, range.Start - 1)} of the target {target} are in no state handle; their state would be lost.", nameof(handles));
            }

            covered = Math.Max(covered, range.EndExclusive);
        }

        if (covered <= target.End)
        {
            throw new ArgumentException($"Key groups {new KeyGroupRange(covered, target.End)} of the target {target} are in no state handle; their state would be lost.", nameof(handles));
        }
    }

    private static void DeleteIfExists(string directory)
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private sealed record HandleExport(int Index, RestoreProgress Restored, IReadOnlyList<ExportedColumnFamily> ColumnFamilies);

    /// <summary>The progress of all handles' restores as one: totals over every handle, counts summed over the parts.</summary>
    private sealed class CombinedProgress(long checkpointId, IReadOnlyList<KeyedStateHandle> handles, IProgress<RestoreProgress>? sink)
    {
        private readonly Lock _lock = new();
        private readonly RestoreProgress?[] _parts = new RestoreProgress?[handles.Count];
        private readonly int _filesTotal = handles.Sum(static h => h.Files.Count);
        private readonly long _bytesTotal = handles.Sum(static h => h.FullSize);

        public IProgress<RestoreProgress> Part(int index) => new PartSink(this, index);

        /// <summary>Records the final progress of one handle's restore.</summary>
        public void Done(int index, RestoreProgress final) => Update(index, final);

        public RestoreProgress Finish()
        {
            lock (_lock)
            {
                var final = Current(completed: true);
                sink?.Report(final);
                return final;
            }
        }

        private void Update(int index, RestoreProgress part)
        {
            // Reported under the lock, so that the sink sees counts that never go back even when several handles' files
            // arrive at once; a part's reports may themselves arrive out of order, hence the comparison.
            lock (_lock)
            {
                if (_parts[index] is { } known && known.FilesDone > part.FilesDone)
                {
                    return;
                }

                _parts[index] = part with { Completed = false };
                sink?.Report(Current(completed: false));
            }
        }

        private RestoreProgress Current(bool completed)
        {
            int files = 0;
            long bytes = 0, downloaded = 0, linked = 0;
            foreach (var part in _parts)
            {
                files += part?.FilesDone ?? 0;
                bytes += part?.BytesDone ?? 0;
                downloaded += part?.BytesDownloaded ?? 0;
                linked += part?.BytesLinked ?? 0;
            }

            return new RestoreProgress
            {
                CheckpointId = checkpointId,
                FilesDone = files,
                FilesTotal = _filesTotal,
                BytesDone = bytes,
                BytesTotal = _bytesTotal,
                BytesDownloaded = downloaded,
                BytesLinked = linked,
                Completed = completed,
            };
        }

        private sealed class PartSink(CombinedProgress owner, int index) : IProgress<RestoreProgress>
        {
            public void Report(RestoreProgress value) => owner.Update(index, value);
        }
    }
}
