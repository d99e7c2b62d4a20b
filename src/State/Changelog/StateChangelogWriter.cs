using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Changelog;

/// <summary>Receives every state mutation of a keyed state backend.</summary>
public interface IStateChangeLogger
{
    /// <summary>Logs one change of state (column family) <paramref name="state"/>; the arguments are those of <see cref="IChangeVisitor.Visit"/>.</summary>
    void Log(ChangeKind kind, string state, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value);
}

/// <summary>A sealed segment: its sequence number, its size and its upload (retried when a checkpoint needs it after a failure).</summary>
public sealed class SealedSegment
{
    private readonly Func<ReadOnlyMemory<byte>, Task<StateFile>> _upload;
    private ReadOnlyMemory<byte>? _content;

    private Action? _release;

    internal SealedSegment(long sequence, ReadOnlyMemory<byte> content, Func<ReadOnlyMemory<byte>, Task<StateFile>> upload, Action? release = null)
    {
        Sequence = sequence;
        Length = content.Length;
        _content = content;
        _upload = upload;
        _release = release;
        Upload = Start();
    }

    /// <summary>Sequence number (consecutive per subtask).</summary>
    public long Sequence { get; }

    /// <summary>Bytes of the segment.</summary>
    public long Length { get; }

    /// <summary>Completes with the stored file.</summary>
    public Task<StateFile> Upload { get; private set; }

    /// <summary>The upload, started again when the last one failed (the content is kept until an upload succeeds).</summary>
    public Task<StateFile> Uploaded()
    {
        if (Upload.IsFaulted || Upload.IsCanceled)
        {
            Upload = Start();
        }

        return Upload;
    }

    private async Task<StateFile> Start()
    {
        var content = _content ?? throw new InvalidOperationException($"Changelog segment {Sequence} was uploaded already.");

        // On the thread pool, and completing there: sealed on a grain's mailbox, the upload would otherwise run its
        // continuations (and a filesystem's fsync) on the grain's scheduler, between the mailbox's turns, and a checkpoint
        // waiting for it would wait for the mailbox.
        var file = await Task.Run(() => _upload(content)).ConfigureAwait(false);
        _content = null;

        // Nothing reads the content after a successful upload: its buffer goes back to the pool.
        Interlocked.Exchange(ref _release, null)?.Invoke();
        return file;
    }
}

/// <summary>
/// The changelog of one subtask's keyed state: every mutation is appended to an in-memory segment, which is sealed when
/// it reaches a size or an age and uploaded in the background to checkpoint storage under a unique name.
/// </summary>
/// <remarks>
/// <para>Threading: <see cref="Log"/>, <see cref="Seal"/>, <see cref="SegmentsAfter"/> and <see cref="Forget"/> are called
/// from the subtask's mailbox; uploads run on the thread pool, at most eight at a time per process.</para>
/// <para>A failed upload is retried by the storage's own policy; if it still fails, the checkpoints that need the segment
/// fail (and are aborted), the job keeps running and a later checkpoint uploads the segment again.</para>
/// </remarks>
public sealed class StateChangelogWriter : IStateChangeLogger
{
    private readonly ICheckpointStorage _storage;
    private readonly CancellationToken _stopped;
    private readonly string _prefix;
    private readonly KeyGroupRange _keyGroups;
    private readonly int _segmentBytes;
    private readonly long _segmentTicks;
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    private readonly List<SealedSegment> _sealed = [];
    /// <summary>Segment uploads in flight in this process, over all subtasks (a silo's share of the storage's bandwidth).</summary>
    private static readonly SemaphoreSlim Uploads = new(8);
    private readonly ArrayPool<byte> _pool;
    private SegmentBuffer _buffer;
    private long _pendingUploadBytes;
    private int _entries;
    private long _openedAt;
    private long _nextSequence;

    /// <summary>Creates the writer.</summary>
    /// <param name="storage">Checkpoint storage.</param>
    /// <param name="prefix">Storage prefix of the segments (one per subtask and operator).</param>
    /// <param name="keyGroups">Key groups of the subtask.</param>
    /// <param name="segmentBytes">A segment is sealed at this size.</param>
    /// <param name="segmentInterval">A segment with changes is sealed after this time at most (checked on each change).</param>
    /// <param name="firstSequence">Sequence number of the first segment.</param>
    /// <param name="stopped">
    /// Stops the uploads (waiting or running): the subtask stopped, so a new attempt will not use its segments, and they
    /// must not compete with that attempt's restore for the storage's bandwidth.
    /// </param>
    public StateChangelogWriter(ICheckpointStorage storage, string prefix, KeyGroupRange keyGroups, int segmentBytes, TimeSpan segmentInterval, long firstSequence, CancellationToken stopped = default)
        : this(storage, prefix, keyGroups, segmentBytes, segmentInterval, firstSequence, ArrayPool<byte>.Shared, stopped)
    {
    }

    /// <summary>Creates the writer with the pool its segment buffers come from (tests).</summary>
    internal StateChangelogWriter(ICheckpointStorage storage, string prefix, KeyGroupRange keyGroups, int segmentBytes, TimeSpan segmentInterval, long firstSequence, ArrayPool<byte> pool, CancellationToken stopped = default)
    {
        _pool = pool;
        _buffer = new SegmentBuffer(pool, 64 * 1024);
        _storage = storage;
        _stopped = stopped;
        _prefix = prefix;
        _keyGroups = keyGroups;
        _segmentBytes = segmentBytes;
        _segmentTicks = (long)(segmentInterval.TotalSeconds * Stopwatch.Frequency);
        _nextSequence = firstSequence;
    }

    /// <summary>Sequence number of the last sealed segment (first sequence − 1 when none was).</summary>
    public long LastSealed => _nextSequence - 1;

    /// <summary>Bytes of changelog sealed so far.</summary>
    public long BytesSealed { get; private set; }

    /// <summary>Bytes of sealed segments not uploaded yet (held in memory).</summary>
    public long PendingUploadBytes => Interlocked.Read(ref _pendingUploadBytes);

    /// <summary>
    /// Backpressure: completes once at most <paramref name="limit"/> bytes of sealed segments wait for their upload (the
    /// mailbox awaits it, so a subtask cannot write changes faster than storage takes them). A failed upload is started
    /// again here.
    /// </summary>
    public async Task WaitForUploadsAsync(long limit, CancellationToken cancellationToken)
    {
        while (PendingUploadBytes > limit && _sealed.FirstOrDefault(static s => !s.Upload.IsCompletedSuccessfully) is { } oldest)
        {
            try
            {
                await oldest.Uploaded().WaitAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Storage failed even after its retries: wait a moment and try that segment again.
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    /// <inheritdoc />
    public void Log(ChangeKind kind, string state, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        if (_entries == 0 && _buffer.WrittenCount == 0)
        {
            ChangelogSegment.WriteHeader(_buffer, _nextSequence, _keyGroups);
            _openedAt = Stopwatch.GetTimestamp();
        }

        if (!_ids.TryGetValue(state, out var id))
        {
            id = _ids.Count;
            _ids[state] = id;
            ChangelogSegment.WriteDefine(_buffer, id, state);
            _entries++;
        }

        ChangelogSegment.WriteChange(_buffer, kind, id, key, value);
        _entries++;
        if (_buffer.WrittenCount >= _segmentBytes || Stopwatch.GetTimestamp() - _openedAt >= _segmentTicks)
        {
            Seal();
        }
    }

    /// <summary>Seals the open segment when it has changes and starts its upload; returns <see cref="LastSealed"/>.</summary>
    public long Seal()
    {
        if (_entries == 0)
        {
            return LastSealed;
        }

        // Room for the trailer first: the trailer's checksum reads the written bytes, which must not move meanwhile.
        _buffer.GetSpan(ChangelogSegment.TrailerLength);
        ChangelogSegment.WriteTrailer(_buffer, _buffer.WrittenSpan, _entries);
        var buffer = _buffer;
        var content = buffer.WrittenMemory;
        var sequence = _nextSequence++;
        Interlocked.Add(ref _pendingUploadBytes, content.Length);
        var path = string.Create(CultureInfo.InvariantCulture, $"{_prefix}/{sequence:D10}-{Guid.NewGuid():N}.log");
        _sealed.Add(new SealedSegment(sequence, content, bytes => UploadAsync(sequence, path, bytes), buffer.Return));
        BytesSealed += content.Length;
        _buffer = new SegmentBuffer(_pool, Math.Min(_segmentBytes + (64 * 1024), Math.Max(64 * 1024, content.Length)));
        _ids.Clear();
        _entries = 0;
        return sequence;
    }

    /// <summary>The sealed segments after <paramref name="sequence"/>, in order.</summary>
    public IReadOnlyList<SealedSegment> SegmentsAfter(long sequence) => _sealed.Where(s => s.Sequence > sequence).ToArray();

    /// <summary>Stops tracking the segments up to <paramref name="sequence"/> (a materialization covers them); returns them.</summary>
    public IReadOnlyList<SealedSegment> Forget(long sequence)
    {
        var forgotten = _sealed.Where(s => s.Sequence <= sequence).ToArray();
        _sealed.RemoveAll(s => s.Sequence <= sequence);
        return forgotten;
    }

    private async Task<StateFile> UploadAsync(long sequence, string path, ReadOnlyMemory<byte> content)
    {
        await Uploads.WaitAsync(_stopped);
        try
        {
            await _storage.WriteAsync(path, content, overwrite: true, _stopped);
            Interlocked.Add(ref _pendingUploadBytes, -content.Length);
            return new StateFile { Name = string.Create(CultureInfo.InvariantCulture, $"{sequence:D10}.log"), Path = path, Length = content.Length, Shared = true };
        }
        finally
        {
            Uploads.Release();
        }
    }
}

/// <summary>
/// The open segment's bytes, in an array rented from a pool (the shared one but in tests): segments are sealed several
/// times a second and most are larger than the large object threshold, so fresh arrays cost gen 2 collections.
/// </summary>
internal sealed class SegmentBuffer(ArrayPool<byte> pool, int initialCapacity) : IBufferWriter<byte>
{
    private byte[] _array = pool.Rent(initialCapacity);
    private int _written;

    public int WrittenCount => _written;

    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, _written);

    public ReadOnlyMemory<byte> WrittenMemory => _array.AsMemory(0, _written);

    public void Advance(int count)
    {
        if (count < 0 || _written + count > _array.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(count));
        }

        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsSpan(_written);
    }

    /// <summary>Gives the array back to the pool; the buffer must not be used afterwards (nor any memory it handed out).</summary>
    public void Return()
    {
        var array = Interlocked.Exchange(ref _array, []);
        if (array.Length > 0)
        {
            pool.Return(array);
        }
    }

    private void Ensure(int sizeHint)
    {
        var needed = Math.Max(sizeHint, 1);
        if (_array.Length - _written >= needed)
        {
            return;
        }

        var grown = pool.Rent((int)Math.Min(Array.MaxLength, Math.Max((long)_array.Length * 2, (long)_written + needed)));
        _array.AsSpan(0, _written).CopyTo(grown);
        var old = _array;
        _array = grown;
        if (old.Length > 0)
        {
            pool.Return(old);
        }
    }
}
