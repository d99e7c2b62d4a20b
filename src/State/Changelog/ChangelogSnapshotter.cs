using System.Diagnostics;
using System.Globalization;
using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Changelog;

/// <summary>Settings of changelog mode.</summary>
/// <param name="MaterializationInterval">Time from one background materialization's start until the next is due (it starts after the next completed checkpoint).</param>
/// <param name="SegmentBytes">A segment is sealed at this size; the cache is written back often enough that a write-back logs about this much.</param>
/// <param name="SegmentInterval">The cache is written back and a segment with changes sealed after this time at most.</param>
public sealed record ChangelogOptions(TimeSpan MaterializationInterval, int SegmentBytes, TimeSpan SegmentInterval);

/// <summary>A materialization: an incremental snapshot of the whole instance and the changelog position it covers.</summary>
/// <param name="Id">Increasing per subtask.</param>
/// <param name="Files">The files of the RocksDB checkpoint in storage.</param>
/// <param name="UpTo">Sequence number of the last segment whose changes the materialization contains.</param>
/// <param name="Inherited">Segments of a restored checkpoint after <see cref="UpTo"/> (already in storage), replayed before this writer's segments.</param>
/// <param name="Duration">Local snapshot and upload.</param>
/// <param name="BytesUploaded">Bytes the upload took.</param>
public sealed record Materialization(long Id, IReadOnlyList<StateFile> Files, long UpTo, IReadOnlyList<StateFile> Inherited, TimeSpan Duration, long BytesUploaded)
{
    /// <summary>Bytes of the materialized files.</summary>
    public long Size => Files.Sum(static f => f.Length);
}

/// <summary>What a changelog checkpoint of one subtask amounts to.</summary>
/// <param name="Handle">The state handle: materialization files and changelog segments.</param>
/// <param name="ChangelogBytes">Changelog bytes written since the subtask's previous checkpoint.</param>
/// <param name="BytesUploaded">
/// Bytes this checkpoint added to storage: the segments sealed since the previous checkpoint (most of them uploaded before
/// the barrier: the cache is written back every segment interval), and the materialization when it had to wait for one.
/// </param>
/// <param name="Materialization">The materialization it refers to.</param>
public sealed record ChangelogSnapshot(KeyedStateHandle Handle, long ChangelogBytes, long BytesUploaded, Materialization Materialization);

/// <summary>
/// Changelog mode for one RocksDB instance: every mutation goes to a <see cref="StateChangelogWriter"/>; in the
/// background the instance is materialized by an <see cref="IncrementalSnapshotter"/>, at most every
/// <see cref="ChangelogOptions.MaterializationInterval"/> and right after a checkpoint completes (see <see cref="Tick"/>);
/// a checkpoint seals the changelog's tail and refers to the latest uploaded materialization plus the segments written
/// after it.
/// </summary>
/// <remarks>
/// <para>Invariants: (1) a materialization covers exactly the segments up to its <see cref="Materialization.UpTo"/>: the
/// cache is flushed (which logs), the open segment sealed, then the RocksDB checkpoint taken, all on the mailbox; (2) a
/// checkpoint's handle = materialization + every segment after it, so restore = files + replay; (3) segments a
/// confirmed materialization covers are forgotten; those no completed checkpoint referred to are deleted here, the
/// others by the coordinator once no retained checkpoint refers to them (they are shared files); (4) materialization
/// files are reused only from a confirmed one (one a completed checkpoint referred to), as in incremental mode; (5) a
/// materialization starts only once the latest finished one is confirmed. Without (5) a materialization could reuse the
/// files of an older confirmed one while checkpoints refer to an intermediate one that did not reuse them (it started
/// before the older one was confirmed): once those checkpoints subsume the last one referring to the older
/// materialization, the coordinator deletes its files, which the new materialization still refers to.</para>
/// <para>Threading: everything but the uploads runs on the subtask's mailbox.</para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The materializer uploads no files eagerly, so disposing it would do nothing.")]
public sealed class ChangelogSnapshotter
{
    private static readonly TimeSpan MaxFlushWait = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MinWriteBackInterval = TimeSpan.FromMilliseconds(50);
    private readonly IRocksDbInstance _instance;
    private readonly ICheckpointStorage _storage;
    private readonly ChangelogOptions _options;
    private readonly TimeProvider _time;
    private readonly CancellationToken _stopped;
    private readonly IncrementalSnapshotter _materializer;
    private readonly StateChangelogWriter _writer;
    private readonly Dictionary<long, (Task<Materialization> Materialization, long UpTo)> _pending = [];
    private Materialization? _latest;
    private Task<Materialization>? _inFlight;
    private long _lastMaterializationStarted;
    private long _nextMaterializationId;
    private long _confirmedMaterialization = -1;
    private long _publishedUpTo;
    private long _lastCheckpointUpTo;
    private long _flushStarted;
    private long _lastSeal;
    private long _lastCompletion;
    private TimeSpan _writeBackEvery;
    private long _rateSince;
    private long _rateBytes;
    private double _bytesPerSecond;

    /// <summary>Creates the snapshotter and installs its changelog on <paramref name="instance"/>.</summary>
    /// <param name="instance">The backend.</param>
    /// <param name="storage">Checkpoint storage.</param>
    /// <param name="owner">Whose state this is.</param>
    /// <param name="localRoot">Local directory for the materializations' RocksDB checkpoints.</param>
    /// <param name="restored">The handle the instance was restored from, when the job owns its files and it has these key groups.</param>
    /// <param name="keepLocalCopies">Whether to keep the last confirmed materialization locally (local recovery).</param>
    /// <param name="options">Changelog settings.</param>
    /// <param name="time">The clock of the intervals (default: the system's).</param>
    /// <param name="stopped">
    /// Stops the background uploads (segments and materializations) when the subtask stops: a failed attempt's uploads
    /// would compete with the next attempt's restore for the storage's bandwidth, and nothing would use them.
    /// </param>
    public ChangelogSnapshotter(IRocksDbInstance instance, ICheckpointStorage storage, SnapshotOwner owner, string localRoot, KeyedStateHandle? restored, bool keepLocalCopies, ChangelogOptions options, TimeProvider? time = null, CancellationToken stopped = default)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(options);
        _instance = instance;
        _storage = storage;
        _options = options;
        _stopped = stopped;
        _time = time ?? TimeProvider.System;
        var prefix = ChangelogPrefix(owner);
        _materializer = new IncrementalSnapshotter(instance, storage, owner, localRoot, restored, keepLocalCopies, privatePrefix: $"{prefix}/mat");
        long lastSequence = -1;
        if (restored is { MaterializationId: { } materialized, Changelog: { } segments })
        {
            // The restored checkpoint's materialization and segments stay valid (the job owns them): they are the base
            // until the first materialization here.
            lastSequence = segments.Count == 0 ? -1 : segments.Max(ChangelogSegment.SequenceOf);
            _latest = new Materialization(materialized, restored.Files, lastSequence, segments, TimeSpan.Zero, 0);
            _confirmedMaterialization = materialized;
            _nextMaterializationId = materialized + 1;
        }

        _publishedUpTo = lastSequence;
        _lastCheckpointUpTo = lastSequence;
        _writer = new StateChangelogWriter(storage, $"{prefix}/log", owner.KeyGroups, options.SegmentBytes, options.SegmentInterval, lastSequence + 1, stopped);
        _lastMaterializationStarted = _time.GetTimestamp();
        _lastSeal = _lastMaterializationStarted;
        _rateSince = _lastMaterializationStarted;
        _writeBackEvery = options.SegmentInterval;
        instance.ChangeLogger = _writer;
    }

    /// <summary>How often <see cref="Tick"/> writes the cache back and seals now (see <see cref="Tick"/>).</summary>
    public TimeSpan WriteBackInterval => _writeBackEvery;

    /// <summary>The writer (for statistics and tests).</summary>
    public StateChangelogWriter Writer => _writer;

    /// <summary>The latest uploaded materialization, if any.</summary>
    public Materialization? Latest => _latest;

    /// <summary>The materialization running now, if any.</summary>
    public Task<Materialization>? Running => _inFlight;

    /// <summary>Why the last materialization failed, if it did.</summary>
    public Exception? LastMaterializationError { get; private set; }

    /// <summary>Storage prefix of an operator subtask's changelog and materializations.</summary>
    public static string ChangelogPrefix(SnapshotOwner owner)
    {
        ArgumentNullException.ThrowIfNull(owner);
        return string.Create(CultureInfo.InvariantCulture, $"{SnapshotLayout.ChangelogDirectory(owner.JobId)}/{owner.OperatorUid}/{owner.SubtaskIndex}");
    }

    /// <summary>The local directory of materialization <paramref name="materializationId"/> under <paramref name="localRoot"/>.</summary>
    public static string LocalMaterializationDirectory(string localRoot, long materializationId) => IncrementalSnapshotter.LocalCheckpointDirectory(localRoot, materializationId);

    /// <summary>
    /// Streams the changes and runs materializations (called on the mailbox after each batch).
    /// </summary>
    /// <remarks>
    /// <para>Every <see cref="ChangelogOptions.SegmentInterval"/> the backend's write-back cache is written back (which
    /// logs its changes) and the open segment is sealed, so changes reach storage continuously. Otherwise a cache that
    /// holds a checkpoint interval's changes (64 Ki entries is seconds of updates) would log them all at the barrier, and
    /// the checkpoint would wait for their upload; and writing it back only when full would hold the mailbox for one
    /// large batch (seconds under a RocksDB write stall) instead of a small one each interval.</para>
    /// <para>The interval adapts to the rate of changes: a subtask that logs more than
    /// <see cref="ChangelogOptions.SegmentBytes"/> per <see cref="ChangelogOptions.SegmentInterval"/> writes back and
    /// seals that much more often (down to every 50 ms), so that a barrier finds about one segment's worth of changes at
    /// most to log and to upload before it can acknowledge: the tail's upload (an fsync on a filesystem) is what a
    /// changelog checkpoint waits for, and it grows with the tail. A subtask with few changes keeps the full interval
    /// (fewer, larger segments: fewer requests).</para>
    /// <para>It adopts a finished materialization and starts the next one when it is due and a checkpoint has completed
    /// since: the materialization then runs in the quiet time between checkpoints. Started at any other moment, its pause
    /// of the mailbox (the RocksDB checkpoint below) could hold the next barrier, and its burst of writes (flush, upload)
    /// could slow the next checkpoint's fsyncs: those were the slowest checkpoints of the benchmark. The cost: a
    /// materialization starts up to one checkpoint interval after it is due, so the tail a restore replays, and the
    /// changelog kept in storage, can be that much longer.</para>
    /// <para>A due materialization first has RocksDB flush its memtables in the background, and takes its RocksDB
    /// checkpoint (which flushes what was written since, on the mailbox) only once that flush is done, so the mailbox
    /// pauses for a small flush rather than a full one.</para>
    /// </remarks>
    public void Tick()
    {
        Adopt();
        if (_time.GetElapsedTime(_lastSeal) >= _writeBackEvery)
        {
            WriteBackAndSeal();
            AdaptWriteBackInterval();
        }

        if (_inFlight is not null || _time.GetElapsedTime(_lastMaterializationStarted) < _options.MaterializationInterval)
        {
            return;
        }

        if (_latest is { } latest && latest.Id > _confirmedMaterialization)
        {
            // Invariant (5): the next materialization reuses the files of the latest one, so it waits until a completed
            // checkpoint refers to that one.
            return;
        }

        if (_flushStarted == 0)
        {
            if (_time.GetElapsedTime(_lastMaterializationStarted, _lastCompletion) < _options.MaterializationInterval)
            {
                // Due, but no checkpoint has completed since: wait for the next one, so the materialization's pause of the
                // mailbox and its burst of I/O fall right after a checkpoint rather than on the next barrier.
                return;
            }

            _instance.StartMemTableFlush();
            _flushStarted = _time.GetTimestamp();
            return;
        }

        if (_instance.MemTableFlushInProgress && _time.GetElapsedTime(_flushStarted) < MaxFlushWait)
        {
            return;
        }

        StartMaterialization();
    }

    /// <summary>Starts a materialization now unless one is running; returns it.</summary>
    public Task<Materialization> MaterializeNow()
    {
        Adopt();
        return _inFlight ?? StartMaterialization();
    }

    /// <summary>
    /// The synchronous part of a checkpoint: logs the cache's changes not logged yet, without writing them back into
    /// RocksDB (so a write stall does not hold the barrier), and seals the changelog's tail. Without an uploaded
    /// materialization (the first checkpoint of a fresh or rescaled subtask), one is started now and the checkpoint waits
    /// for it.
    /// </summary>
    public Func<CancellationToken, Task<ChangelogSnapshot>> Snapshot(long checkpointId, KeyGroupRange keyGroups)
    {
        Adopt();
        var upTo = LogAndSeal();
        Task<Materialization> materialization;
        if (_latest is { } latest)
        {
            materialization = Task.FromResult(latest);
        }
        else
        {
            materialization = _inFlight ?? StartMaterialization();
        }

        var segments = _writer.SegmentsAfter(-1);
        var since = _lastCheckpointUpTo;
        var changelogBytes = segments.Where(s => s.Sequence > since && s.Sequence <= upTo).Sum(static s => s.Length);
        _lastCheckpointUpTo = upTo;
        _pending[checkpointId] = (materialization, upTo);
        var waited = _latest is null;
        return async cancellationToken =>
        {
            var materialized = await materialization.WaitAsync(cancellationToken);
            var tail = segments.Where(s => s.Sequence > materialized.UpTo && s.Sequence <= upTo).ToArray();
            var files = await Task.WhenAll(tail.Select(static s => s.Uploaded())).WaitAsync(cancellationToken);
            var uploadedAfterBarrier = tail.Where(s => s.Sequence > since).Sum(static s => s.Length) + (waited ? materialized.BytesUploaded : 0);
            var handle = new KeyedStateHandle
            {
                KeyGroups = keyGroups,
                Files = materialized.Files,
                MaterializationId = materialized.Id,
                Changelog = [.. materialized.Inherited, .. files],
            };
            return new ChangelogSnapshot(handle, changelogBytes, uploadedAfterBarrier, materialized);
        };
    }

    /// <summary>
    /// Checkpoint <paramref name="checkpointId"/> completed: its materialization is confirmed and the segments it covers
    /// are forgotten (on the mailbox); returns the deletion of what nobody refers to any more (off the mailbox).
    /// </summary>
    public Task Completed(long checkpointId)
    {
        if (!_pending.Remove(checkpointId, out var entry))
        {
            return Task.CompletedTask;
        }

        _lastCompletion = _time.GetTimestamp();
        if (!entry.Materialization.IsCompletedSuccessfully)
        {
            return Task.CompletedTask;
        }

        // An older checkpoint still pending here may have completed without this subtask hearing of it (notifications
        // are not guaranteed): its segments count as published, so they are left to the coordinator's reference counting
        // rather than deleted here while a retained checkpoint may refer to them.
        var published = _publishedUpTo;
        foreach (var older in _pending.Where(p => p.Key < checkpointId).ToArray())
        {
            published = Math.Max(published, older.Value.UpTo);
            _pending.Remove(older.Key);
        }

        var materialization = entry.Materialization.Result;
        _publishedUpTo = Math.Max(_publishedUpTo, entry.UpTo);
        if (materialization.Id <= _confirmedMaterialization)
        {
            return Task.CompletedTask;
        }

        // Older materializations that no completed checkpoint referred to are garbage now.
        var deletions = new List<Task>();
        for (var id = _confirmedMaterialization + 1; id < materialization.Id; id++)
        {
            deletions.Add(_materializer.AbortedAsync(id, CancellationToken.None));
        }

        _confirmedMaterialization = materialization.Id;
        _materializer.Completed(materialization.Id);
        foreach (var segment in _writer.Forget(materialization.UpTo))
        {
            if (segment.Sequence > published && segment.Upload.IsCompletedSuccessfully)
            {
                // Never part of a completed checkpoint: nobody else will delete it.
                deletions.Add(_storage.DeleteAsync(segment.Upload.Result.Path, CancellationToken.None));
            }
        }

        return Task.WhenAll(deletions);
    }

    /// <summary>Checkpoint <paramref name="checkpointId"/> was aborted: its segments and materialization stay for the next one.</summary>
    public void Aborted(long checkpointId) => _pending.Remove(checkpointId);

    /// <summary>A consistent local view of the instance (a RocksDB checkpoint) for canonical savepoints; the caller deletes it.</summary>
    public LocalSnapshot TakeLocalView(long checkpointId, string directoryRoot)
    {
        var view = new IncrementalSnapshotter(_instance, _storage, new SnapshotOwner(string.Empty, string.Empty, 0, default), directoryRoot, restored: null, keepLocalCopies: false);
        return view.TakeLocalSnapshot(checkpointId);
    }

    /// <summary>Logs the cache's changes not logged yet and seals the open segment; returns the last sealed sequence number.</summary>
    private long LogAndSeal()
    {
        _instance.LogCachedChanges();
        _lastSeal = _time.GetTimestamp();
        return _writer.Seal();
    }

    /// <summary>Writes the cache back (which logs what is not logged yet) and seals the open segment; returns the last sealed sequence number.</summary>
    private long WriteBackAndSeal()
    {
        _instance.Flush();
        return LogAndSeal();
    }

    /// <summary>
    /// After a write-back: the next one is due when about <see cref="ChangelogOptions.SegmentBytes"/> of changes will have
    /// been logged at the recent rate, within [50 ms, <see cref="ChangelogOptions.SegmentInterval"/>].
    /// </summary>
    private void AdaptWriteBackInterval()
    {
        var now = _time.GetTimestamp();
        var elapsed = _time.GetElapsedTime(_rateSince, now).TotalSeconds;
        var bytes = _writer.BytesSealed - _rateBytes;
        _rateSince = now;
        _rateBytes = _writer.BytesSealed;
        if (elapsed <= 0)
        {
            return;
        }

        // Smoothed over the last few write-backs, so one burst (a materialization's write-back, say) does not decide alone.
        var rate = bytes / elapsed;
        _bytesPerSecond = _bytesPerSecond == 0 ? rate : (0.5 * _bytesPerSecond) + (0.5 * rate);
        var seconds = _bytesPerSecond <= 0 ? _options.SegmentInterval.TotalSeconds : _options.SegmentBytes / _bytesPerSecond;
        var floor = Math.Min(MinWriteBackInterval.TotalSeconds, _options.SegmentInterval.TotalSeconds);
        _writeBackEvery = TimeSpan.FromSeconds(Math.Clamp(seconds, floor, _options.SegmentInterval.TotalSeconds));
    }

    private void Adopt()
    {
        if (_inFlight is not { IsCompleted: true } done)
        {
            return;
        }

        _inFlight = null;
        if (done.IsCompletedSuccessfully)
        {
            _latest = done.Result;
            LastMaterializationError = null;
        }
        else
        {
            LastMaterializationError = done.Exception?.GetBaseException();
        }
    }

    private Task<Materialization> StartMaterialization()
    {
        _lastMaterializationStarted = _time.GetTimestamp();
        _flushStarted = 0;
        var watch = Stopwatch.StartNew();
        var upTo = WriteBackAndSeal();
        var local = _materializer.TakeLocalSnapshot(_nextMaterializationId++);
        var materializer = _materializer;
        var stopped = _stopped;
        var task = Task.Run(async () =>
        {
            var uploaded = await materializer.UploadAsync(local, stopped);
            return new Materialization(local.CheckpointId, uploaded.Handle.Files, upTo, [], watch.Elapsed, uploaded.BytesUploaded);
        });
        _inFlight = task;
        return task;
    }
}
