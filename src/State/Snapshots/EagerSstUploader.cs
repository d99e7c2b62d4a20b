using RocksDbSharp;
using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// Uploads the SST files a RocksDB instance's compactions write as they appear, so that an incremental checkpoint finds
/// most of its files in storage already and uploads only what the last moments wrote.
/// </summary>
/// <remarks>
/// <para>What it uploads: live SST files of level 1 and below that storage does not have yet, deepest level first (those
/// live longest), a few at a time. Level 0 is left to the checkpoints: its files are the memtable flushes that the next
/// compaction rewrites within seconds. Each file is hard-linked into a staging directory before it is read, so a
/// compaction that deletes it meanwhile does not disturb the upload; a file already gone is skipped.</para>
/// <para>Ownership: an uploaded file belongs to this uploader until a snapshot takes it (<see cref="TryTake"/>). From then
/// on no snapshot's fate lets the uploader delete it, except an abort of every snapshot that took it: a file taken by a
/// checkpoint that completes, or that may still complete, is left to the checkpoints' reference counting, exactly like a
/// file the snapshot uploaded itself. Files nobody took are deleted once RocksDB no longer lists them, and when the
/// uploader is disposed. A crash leaves them to the orphan collection of the next attempt (they are under the job's
/// shared directory and no checkpoint refers to them).</para>
/// <para>Threading: every member may be called from any thread; the scanning loop runs on the thread pool and must be
/// stopped (<see cref="DisposeAsync"/>) before the instance is disposed.</para>
/// </remarks>
internal sealed class EagerSstUploader : IAsyncDisposable
{
    private const int ParallelUploads = 2;
    private readonly IRocksDbInstance _instance;
    private readonly ICheckpointStorage _storage;
    private readonly Func<string> _newPath;
    private readonly Func<string, long, bool> _stored;
    private readonly string _staging;
    private readonly TimeSpan _interval;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _slots = new(ParallelUploads);
    private readonly CancellationTokenSource _stop;
    private readonly List<Task> _uploads = [];
    private Task _loop = Task.CompletedTask;
    private long _bytesUploaded;
    private TaskCompletionSource? _idleWaiter;

    /// <summary>Prepares the uploads; <see cref="Start"/> starts them.</summary>
    /// <param name="instance">The RocksDB instance whose files to upload.</param>
    /// <param name="storage">Checkpoint storage.</param>
    /// <param name="newPath">A new unique shared path in storage for a file.</param>
    /// <param name="stored">Whether storage has a file (name, length) already: a completed checkpoint refers to it.</param>
    /// <param name="staging">A directory of its own, on the instance's file system, for the hard links it reads.</param>
    /// <param name="interval">Time between two looks at the instance's files when there was nothing to upload.</param>
    /// <param name="stopped">Stops the uploads (the subtask is stopping); <see cref="DisposeAsync"/> is still needed.</param>
    public EagerSstUploader(IRocksDbInstance instance, ICheckpointStorage storage, Func<string> newPath, Func<string, long, bool> stored, string staging, TimeSpan interval, CancellationToken stopped = default)
    {
        _instance = instance;
        _storage = storage;
        _newPath = newPath;
        _stored = stored;
        _staging = staging;
        _interval = interval;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(stopped);
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }

        Directory.CreateDirectory(staging);
    }

    /// <summary>
    /// Starts uploading (once; later calls do nothing). A subtask starts when the job runs, not when its restore ends, so
    /// that its uploads do not compete with the restores of the others.
    /// </summary>
    public void Start()
    {
        lock (_lock)
        {
            if (_loop == Task.CompletedTask && !_stop.IsCancellationRequested)
            {
                _loop = Task.Run(RunAsync, CancellationToken.None);
            }
        }
    }

    /// <summary>Bytes uploaded so far (including files that were then compacted away before a checkpoint took them).</summary>
    public long BytesUploaded => Interlocked.Read(ref _bytesUploaded);

    /// <summary>
    /// Completes when, after this call, the uploader looked at the instance and found every live file of level 1 and
    /// below uploaded (or tried), with no upload running.
    /// </summary>
    public Task WhenIdleAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _idleWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _idleWaiter.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>
    /// The upload of SST file <paramref name="name"/> of <paramref name="length"/> bytes, finished or running, for snapshot
    /// <paramref name="checkpointId"/>; null when this uploader has none. The task's result is null when the upload
    /// failed or the file was gone before it could be read: the snapshot then uploads its own copy.
    /// </summary>
    public Task<StateFile?>? TryTake(string name, long length, long checkpointId)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(name, out var entry) || entry.Length != length)
            {
                return null;
            }

            entry.TakenBy.Add(checkpointId);
            return entry.Upload;
        }
    }

    /// <summary>
    /// Checkpoint <paramref name="checkpointId"/> completed: files taken by it, or by any earlier snapshot (which can no
    /// longer complete, but whose abort may not be reported), now belong to the checkpoints.
    /// </summary>
    public void Completed(long checkpointId)
    {
        lock (_lock)
        {
            foreach (var (name, entry) in _entries.ToArray())
            {
                if (entry.TakenBy.Any(id => id <= checkpointId))
                {
                    _entries.Remove(name);
                }
            }
        }
    }

    /// <summary>Checkpoint <paramref name="checkpointId"/> was aborted: the files it took are this uploader's again unless another snapshot took them.</summary>
    public void Aborted(long checkpointId)
    {
        lock (_lock)
        {
            foreach (var entry in _entries.Values)
            {
                entry.TakenBy.Remove(checkpointId);
            }
        }
    }

    /// <summary>
    /// Stops uploading and waits until nothing reads the instance any more: after this the instance may be disposed.
    /// Never throws; may be called more than once.
    /// </summary>
    public async Task StopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }

        // The loop first: it starts the uploads (and is the only one to call into RocksDB).
        Task loop;
        lock (_lock)
        {
            loop = _loop;
        }

        await Quietly(loop);
        Task[] uploads;
        lock (_lock)
        {
            uploads = [.. _uploads];
        }

        await Quietly(Task.WhenAll(uploads));
    }

    /// <summary>Stops uploading (<see cref="StopAsync"/>) and deletes the uploaded files no snapshot took. Never throws.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        List<Entry> untaken;
        lock (_lock)
        {
            untaken = _entries.Values.Where(static e => e.TakenBy.Count == 0).ToList();
            _entries.Clear();
        }

        await DeleteAsync(untaken);
        try
        {
            Directory.Delete(_staging, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        _stop.Dispose();
    }

    private async Task RunAsync()
    {
        var token = _stop.Token;
        try
        {
            while (true)
            {
                await _slots.WaitAsync(token);
                TaskCompletionSource? waiter;
                lock (_lock)
                {
                    // Only a waiter that was there before this look at the files may learn that it found nothing new.
                    waiter = _idleWaiter;
                }

                var (next, garbage) = Next();
                if (garbage.Count > 0)
                {
                    await DeleteAsync(garbage);
                }

                if (next is null)
                {
                    SignalIfIdle(waiter);
                    _slots.Release();
                    await Task.Delay(_interval, token);
                    continue;
                }

                var upload = UploadAsync(next, token);
                var entry = new Entry(next.Size, upload);
                lock (_lock)
                {
                    _entries[next.Name] = entry;
                    _uploads.RemoveAll(static t => t.IsCompleted);
                    _uploads.Add(upload);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    /// <summary>The next file to upload, and the entries to delete: uploaded files RocksDB no longer lists that no snapshot took.</summary>
    private (LiveSstFile? Next, List<Entry> Garbage) Next()
    {
        IReadOnlyList<LiveSstFile> live;
        try
        {
            live = NativeExtensions.LiveFiles(_instance.Database);
        }
        catch (RocksDbException)
        {
            return (null, []);
        }

        var names = live.Select(static f => f.Name).ToHashSet(StringComparer.Ordinal);
        var garbage = new List<Entry>();
        lock (_lock)
        {
            foreach (var (name, entry) in _entries.ToArray())
            {
                if (!names.Contains(name) && entry.TakenBy.Count == 0 && entry.Upload.IsCompleted)
                {
                    _entries.Remove(name);
                    garbage.Add(entry);
                }
            }

            var next = live
                .Where(f => f.Level >= 1 && !_entries.ContainsKey(f.Name) && !_stored(f.Name, f.Size))
                .OrderByDescending(static f => f.Level)
                .ThenBy(static f => f.Name, StringComparer.Ordinal)
                .FirstOrDefault();
            return (next, garbage);
        }
    }

    private static Task Quietly(Task task) => task.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private void SignalIfIdle(TaskCompletionSource? waiter)
    {
        lock (_lock)
        {
            if (waiter is null || waiter != _idleWaiter || _uploads.Any(static t => !t.IsCompleted))
            {
                return;
            }

            _idleWaiter = null;
        }

        waiter.TrySetResult();
    }

    private async Task<StateFile?> UploadAsync(LiveSstFile file, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var link = Path.Combine(_staging, file.Name);
        try
        {
            // A hard link keeps the file readable whatever compactions do meanwhile; a file already gone is skipped.
            HardLinks.LinkOrCopy(Path.Combine(_instance.Directory, file.Name), link);
            var path = _newPath();
            var stored = await _storage.UploadFileAsync(link, path, cancellationToken);
            Interlocked.Add(ref _bytesUploaded, stored.Length);
            return new StateFile { Name = file.Name, Path = path, Length = stored.Length, Checksum = stored.Checksum, Shared = true };
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The snapshot that needs the file uploads it itself, and reports the failure if it persists.
            return null;
        }
        finally
        {
            _slots.Release();
            try
            {
                File.Delete(link);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private async Task DeleteAsync(IEnumerable<Entry> entries)
    {
        foreach (var entry in entries)
        {
            if (await entry.Upload is not { } file)
            {
                continue;
            }

            try
            {
                await _storage.DeleteAsync(file.Path, CancellationToken.None);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Left to the orphan collection of a later restart.
            }
        }
    }

    private sealed class Entry(long length, Task<StateFile?> upload)
    {
        public long Length { get; } = length;

        public Task<StateFile?> Upload { get; } = upload;

        /// <summary>Snapshots that took the file and have neither completed nor been aborted.</summary>
        public HashSet<long> TakenBy { get; } = [];
    }
}
