using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Snapshots;

/// <summary>Who a snapshot belongs to: names the files in storage.</summary>
/// <param name="JobId">The job.</param>
/// <param name="OperatorUid">The operator.</param>
/// <param name="SubtaskIndex">The subtask.</param>
/// <param name="KeyGroups">The key groups of the state.</param>
public sealed record SnapshotOwner(string JobId, string OperatorUid, int SubtaskIndex, KeyGroupRange KeyGroups);

/// <summary>A RocksDB checkpoint on local disk: the result of the synchronous part of a snapshot.</summary>
/// <param name="CheckpointId">The checkpoint.</param>
/// <param name="Directory">The local directory of the RocksDB checkpoint.</param>
/// <param name="Files">Names and lengths of its files.</param>
public sealed record LocalSnapshot(long CheckpointId, string Directory, IReadOnlyList<(string Name, long Length)> Files);

/// <summary>Eager uploads of an instance's SST files (<see cref="EagerSstUploader"/>).</summary>
/// <param name="Interval">Time between two looks for new files when there was nothing to upload.</param>
/// <param name="StagingDirectory">A directory of its own on the instance's file system, for hard links of the files it reads.</param>
/// <param name="Stopped">Stops the uploads early (the subtask is stopping).</param>
public sealed record EagerUploadOptions(TimeSpan Interval, string StagingDirectory, CancellationToken Stopped = default);

/// <summary>The result of the asynchronous part: the handle and what it cost.</summary>
/// <param name="Handle">The state handle for the manifest.</param>
/// <param name="BytesUploaded">Bytes uploaded for this checkpoint.</param>
/// <param name="Duration">Time the uploads took.</param>
public sealed record UploadedSnapshot(KeyedStateHandle Handle, long BytesUploaded, TimeSpan Duration);

/// <summary>
/// Incremental snapshots of one RocksDB instance into checkpoint storage.
/// </summary>
/// <remarks>
/// <para>Two phases. <see cref="TakeLocalSnapshot"/> runs on the subtask's mailbox: it flushes the write-back cache and
/// takes a RocksDB checkpoint (memtables flushed, SST files hard-linked) into a local directory; it is short and does not
/// depend on the state size beyond the flush. <see cref="UploadAsync"/> runs off the mailbox: SST files already in storage
/// (those of the last completed checkpoint, or of the restored one) are referenced again, the others are uploaded as new
/// shared files under unique names; the small non-SST files (MANIFEST, CURRENT, OPTIONS) are private to the checkpoint.</para>
/// <para>Invariants: (1) only files of a completed checkpoint are reused, so a file deleted after an abort is never
/// referenced; (2) every upload gets a new name, so deleting what an aborted checkpoint uploaded cannot remove a file
/// another checkpoint uses; (3) the local copy of the last completed checkpoint is kept (local recovery); older ones are
/// deleted on completion.</para>
/// <para>Threading: <see cref="TakeLocalSnapshot"/>, <see cref="Completed"/> and <see cref="AbortedAsync"/> are called
/// from the mailbox; <see cref="UploadAsync"/> may run concurrently with them on the thread pool.</para>
/// </remarks>
public sealed class IncrementalSnapshotter : IAsyncDisposable
{
    private const int ParallelTransfers = 4;
    private readonly IRocksDbInstance _instance;
    private readonly ICheckpointStorage _storage;
    private readonly SnapshotOwner _owner;
    private readonly string _localRoot;
    private readonly bool _keepLocalCopies;
    private readonly string? _privatePrefix;
    private readonly ConcurrentDictionary<long, ConcurrentBag<string>> _uploads = new();
    private readonly ConcurrentDictionary<long, KeyedStateHandle> _results = new();
    private readonly EagerSstUploader? _eager;
    private ImmutableDictionary<string, StateFile> _confirmed;
    private long _lastCompleted = -1;

    /// <summary>Creates the snapshotter.</summary>
    /// <param name="instance">The RocksDB instance.</param>
    /// <param name="storage">Checkpoint storage.</param>
    /// <param name="owner">Whose state this is.</param>
    /// <param name="localRoot">Directory for local RocksDB checkpoints (kept across restarts for local recovery).</param>
    /// <param name="restored">The handle the instance was restored from: its shared files are in storage already.</param>
    /// <param name="keepLocalCopies">Whether to keep the last completed local checkpoint for local recovery.</param>
    /// <param name="privatePrefix">
    /// Null: the non-SST files go to the checkpoint's directory and are private to it. Otherwise (materializations, which
    /// several checkpoints refer to): they go under this prefix and are marked shared, so they are reference-counted.
    /// </param>
    /// <param name="eager">
    /// Null: SST files are uploaded by the snapshots that need them. Otherwise the files compactions write are uploaded in
    /// the background as they appear (<see cref="EagerSstUploader"/>); the snapshotter must then be stopped
    /// (<see cref="StopEagerUploadsAsync"/>) before the instance is disposed, and disposed after.
    /// </param>
    public IncrementalSnapshotter(IRocksDbInstance instance, ICheckpointStorage storage, SnapshotOwner owner, string localRoot, KeyedStateHandle? restored, bool keepLocalCopies, string? privatePrefix = null, EagerUploadOptions? eager = null)
    {
        _privatePrefix = privatePrefix;
        _instance = instance;
        _storage = storage;
        _owner = owner;
        _localRoot = localRoot;
        _keepLocalCopies = keepLocalCopies;
        _confirmed = (restored?.Files ?? []).Where(static f => f.Shared).ToImmutableDictionary(static f => f.Name, StringComparer.Ordinal);
        if (eager is not null)
        {
            _eager = new EagerSstUploader(instance, storage, SharedPath, IsStored, eager.StagingDirectory, eager.Interval, eager.Stopped);
        }
    }

    /// <summary>Completes when the eager uploads have caught up with the instance (at once without them).</summary>
    internal Task EagerUploadsIdleAsync(CancellationToken cancellationToken) => _eager?.WhenIdleAsync(cancellationToken) ?? Task.CompletedTask;

    /// <summary>Bytes uploaded ahead of the snapshots (zero without eager uploads).</summary>
    public long EagerBytesUploaded => _eager?.BytesUploaded ?? 0;

    /// <summary>The local directory of checkpoint <paramref name="checkpointId"/> under <paramref name="localRoot"/>.</summary>
    public static string LocalCheckpointDirectory(string localRoot, long checkpointId) => Path.Combine(localRoot, string.Create(CultureInfo.InvariantCulture, $"chk-{checkpointId}"));

    /// <summary>The synchronous part: flush and a RocksDB checkpoint into a local directory.</summary>
    public LocalSnapshot TakeLocalSnapshot(long checkpointId)
    {
        _instance.Flush();
        var directory = LocalCheckpointDirectory(_localRoot, checkpointId);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        Directory.CreateDirectory(_localRoot);
        using (var checkpoint = _instance.Database.Checkpoint())
        {
            // log_size_for_flush 0: memtables are always flushed, which the checkpoint needs because the WAL is off.
            checkpoint.Save(directory, 0);
        }

        var files = new DirectoryInfo(directory).EnumerateFiles().Select(static f => (f.Name, f.Length)).OrderBy(static f => f.Name, StringComparer.Ordinal).ToArray();
        return new LocalSnapshot(checkpointId, directory, files);
    }

    /// <summary>The asynchronous part: uploads what storage does not have yet and returns the handle.</summary>
    public async Task<UploadedSnapshot> UploadAsync(LocalSnapshot snapshot, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var confirmed = _confirmed;
        var uploads = _uploads.GetOrAdd(snapshot.CheckpointId, static _ => []);
        var files = new StateFile[snapshot.Files.Count];
        long uploaded = 0;
        var privateSuffix = Guid.NewGuid().ToString("N")[..8];

        // Where each SST sits in this snapshot (a file reused from an earlier one may have moved to another level since).
        var catalog = SstFileCatalog.Read(snapshot.Directory);
        using var gate = new SemaphoreSlim(ParallelTransfers);
        var tasks = snapshot.Files.Select(async (file, i) =>
        {
            var shared = file.Name.EndsWith(".sst", StringComparison.Ordinal);
            var sst = shared ? catalog.GetValueOrDefault(file.Name) : null;
            if (shared && confirmed.TryGetValue(file.Name, out var known) && known.Length == file.Length)
            {
                files[i] = known with { Sst = sst };
                return;
            }

            if (shared && _eager?.TryTake(file.Name, file.Length, snapshot.CheckpointId) is { } early && await early.WaitAsync(cancellationToken) is { } ahead)
            {
                files[i] = ahead with { Sst = sst };
                return;
            }

            var path = shared
                ? SharedPath()
                : _privatePrefix is { } prefix
                    ? string.Create(CultureInfo.InvariantCulture, $"{prefix}/{snapshot.CheckpointId}-{privateSuffix}/{file.Name}")
                    : string.Create(CultureInfo.InvariantCulture, $"{SnapshotLayout.CheckpointDirectory(_owner.JobId, snapshot.CheckpointId)}/{_owner.OperatorUid}/{_owner.SubtaskIndex}/{file.Name}");
            await gate.WaitAsync(cancellationToken);
            try
            {
                uploads.Add(path);
                var stored = await _storage.UploadFileAsync(Path.Combine(snapshot.Directory, file.Name), path, cancellationToken);
                files[i] = new StateFile { Name = file.Name, Path = path, Length = stored.Length, Checksum = stored.Checksum, Shared = shared || _privatePrefix is not null, Sst = sst };
                Interlocked.Add(ref uploaded, stored.Length);
            }
            finally
            {
                gate.Release();
            }
        }).ToArray();
        await Task.WhenAll(tasks);
        var handle = new KeyedStateHandle { KeyGroups = _owner.KeyGroups, Files = files };
        _results[snapshot.CheckpointId] = handle;
        return new UploadedSnapshot(handle, uploaded, watch.Elapsed);
    }

    /// <summary>Checkpoint <paramref name="checkpointId"/> completed: its files become the ones to reuse; older local copies go.</summary>
    public void Completed(long checkpointId)
    {
        if (checkpointId <= _lastCompleted || !_results.TryGetValue(checkpointId, out var handle))
        {
            _eager?.Completed(checkpointId);
            return;
        }

        _lastCompleted = checkpointId;
        _confirmed = handle.Files.Where(static f => f.Shared).ToImmutableDictionary(static f => f.Name, StringComparer.Ordinal);

        // After the files are known as stored, so the eager uploads do not take them for new ones in between.
        _eager?.Completed(checkpointId);
        foreach (var id in _results.Keys.Where(id => id <= checkpointId))
        {
            _results.TryRemove(id, out _);
            _uploads.TryRemove(id, out _);
        }

        DeleteLocalCopies(keep: _keepLocalCopies ? checkpointId : null, olderThan: checkpointId + 1);
    }

    /// <summary>Checkpoint <paramref name="checkpointId"/> was aborted: deletes what it uploaded and its local copy.</summary>
    public async Task AbortedAsync(long checkpointId, CancellationToken cancellationToken)
    {
        _eager?.Aborted(checkpointId);
        _results.TryRemove(checkpointId, out _);
        var local = LocalCheckpointDirectory(_localRoot, checkpointId);
        if (Directory.Exists(local))
        {
            Directory.Delete(local, recursive: true);
        }

        if (_uploads.TryRemove(checkpointId, out var paths))
        {
            foreach (var path in paths)
            {
                await _storage.DeleteAsync(path, cancellationToken);
            }
        }
    }

    /// <summary>Starts the eager uploads (if any).</summary>
    public void StartEagerUploads() => _eager?.Start();

    /// <summary>Stops the eager uploads (if any): once this completes nothing reads the instance. Never throws.</summary>
    public Task StopEagerUploadsAsync() => _eager?.StopAsync() ?? Task.CompletedTask;

    /// <summary>Stops the eager uploads (if any) and deletes what they uploaded that no snapshot took. Never throws.</summary>
    public ValueTask DisposeAsync() => _eager?.DisposeAsync() ?? ValueTask.CompletedTask;

    private string SharedPath() => $"{SnapshotLayout.SharedDirectory(_owner.JobId)}/{_owner.OperatorUid}/{_owner.SubtaskIndex}-{Guid.NewGuid():N}.sst";

    private bool IsStored(string name, long length) => _confirmed.TryGetValue(name, out var known) && known.Length == length;

    private void DeleteLocalCopies(long? keep, long olderThan)
    {
        if (!Directory.Exists(_localRoot))
        {
            return;
        }

        foreach (var directory in Directory.EnumerateDirectories(_localRoot, "chk-*"))
        {
            var name = Path.GetFileName(directory);
            if (long.TryParse(name.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id < olderThan && id != keep)
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }
}
