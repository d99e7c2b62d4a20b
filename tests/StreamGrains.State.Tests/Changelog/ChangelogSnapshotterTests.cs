using StreamGrains.Snapshots;
using StreamGrains.State.Changelog;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Changelog;

public sealed class ChangelogSnapshotterTests : IDisposable
{
    private const int MaxParallelism = 128;
    private static readonly KeyGroupRange AllKeyGroups = new(0, MaxParallelism - 1);
    private static readonly ValueStateDescriptor<long> Count = new("count");
    private static readonly MapStateDescriptor<string, long> Seen = new("seen");
    private static readonly ListStateDescriptor<long> History = new("history");
    private static readonly ChangelogOptions Options = new(TimeSpan.FromHours(1), 64 << 10, TimeSpan.FromHours(1));
    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 16 << 20, WriteBufferBytes = 64 << 20, ColumnFamilyWriteBufferBytes = 32 << 20, BackgroundThreads = 1 });
    private readonly FileSystemCheckpointStorage _storage;

    public ChangelogSnapshotterTests() => _storage = new FileSystemCheckpointStorage(_directory.Sub("storage"));

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task Materialization_plus_replayed_tail_restores_value_map_list_state_and_timers_exactly()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = NewSnapshotter(backend, restored: null);
        Mutate(backend, round: 1);
        var first = await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        Mutate(backend, round: 2);
        var second = await changelog.Snapshot(2, AllKeyGroups)(CancellationToken.None);

        Assert.Empty(first.Handle.Changelog!);
        Assert.Equal(first.Handle.MaterializationId, second.Handle.MaterializationId);
        Assert.NotEmpty(second.Handle.Changelog!);
        Assert.True(first.BytesUploaded > first.Handle.Files.Where(static f => f.Name.EndsWith(".sst", StringComparison.Ordinal)).Sum(static f => f.Length), "the first checkpoint must upload its materialization");
        Assert.Equal(second.Handle.ChangelogSize, second.BytesUploaded);
        Assert.Equal(second.Handle.ChangelogSize, second.ChangelogBytes);

        using var restored = await RestoreAsync("restored", AllKeyGroups, [second.Handle]);
        AssertSameState(backend, restored, AllKeyGroups);
        Assert.Equal(backend.NextTimerTimestamp, restored.NextTimerTimestamp);
        Assert.Equal(backend.TimerCount, restored.TimerCount);
    }

    [Fact]
    public async Task A_due_materialization_starts_after_the_next_completed_checkpoint_flushing_memtables_in_the_background_first()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var clock = new SteppedClock();
        var changelog = new ChangelogSnapshotter(backend, _storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local"), null, keepLocalCopies: true, Options with { MaterializationInterval = TimeSpan.FromMinutes(1) }, time: clock);
        Mutate(backend, round: 1);
        var first = await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        Mutate(backend, round: 2);
        clock.Advance(TimeSpan.FromMinutes(1));
        var due = System.Diagnostics.Stopwatch.StartNew();

        // Due, and the latest materialization is confirmed, but no checkpoint has completed since it became due: ticks that
        // would flush and then start one start nothing (it waits for the quiet time after the next checkpoint).
        for (var i = 0; i < 3; i++)
        {
            changelog.Tick();
            Assert.True(SpinWait.SpinUntil(() => !backend.MemTableFlushInProgress, TimeSpan.FromSeconds(30)), "a memtable flush never ended");
        }

        changelog.Tick();
        Assert.Null(changelog.Running);
        var second = await changelog.Snapshot(2, AllKeyGroups)(CancellationToken.None);
        Assert.Equal(first.Handle.MaterializationId, second.Handle.MaterializationId);
        await changelog.Completed(2);

        changelog.Tick();
        Assert.Null(changelog.Running);
        while (changelog.Running is null)
        {
            // Each tick checks whether the background flush is done; it takes the RocksDB checkpoint once it is.
            Assert.True(due.Elapsed < TimeSpan.FromSeconds(30), "the materialization never started");
            changelog.Tick();
        }

        var materialization = await changelog.Running;
        var third = await changelog.Snapshot(3, AllKeyGroups)(CancellationToken.None);

        Assert.True(materialization.Id > first.Handle.MaterializationId);
        Assert.Equal(materialization.Id, third.Handle.MaterializationId);
        Assert.Empty(third.Handle.Changelog!);
        using var restored = await RestoreAsync("restored", AllKeyGroups, [third.Handle]);
        AssertSameState(backend, restored, AllKeyGroups);
    }

    [Fact]
    public async Task The_next_materialization_waits_until_a_completed_checkpoint_refers_to_the_latest_one()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = new ChangelogSnapshotter(backend, _storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local"), null, keepLocalCopies: false, Options with { MaterializationInterval = TimeSpan.FromMilliseconds(1) });
        Mutate(backend, round: 1);
        var first = await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        Mutate(backend, round: 2);
        var due = System.Diagnostics.Stopwatch.StartNew();
        SpinWait.SpinUntil(() => due.Elapsed >= TimeSpan.FromMilliseconds(2)); // the 1 ms interval has passed

        // Checkpoint 1 has not completed: its materialization is not confirmed, so none may start (it would reuse files
        // that the coordinator may delete before anything refers to the new one). Ticks that would flush and then start
        // one (see the test above) start nothing.
        for (var i = 0; i < 3; i++)
        {
            changelog.Tick();
            Assert.True(SpinWait.SpinUntil(() => !backend.MemTableFlushInProgress, TimeSpan.FromSeconds(30)), "a memtable flush never ended");
        }

        changelog.Tick();
        Assert.Null(changelog.Running);

        await changelog.Completed(1);
        while (changelog.Running is null)
        {
            Assert.True(due.Elapsed < TimeSpan.FromSeconds(30), "no materialization started after the checkpoint completed");
            changelog.Tick();
        }

        var next = await changelog.Running;
        Assert.True(next.Id > first.Handle.MaterializationId);
        Assert.Contains(next.Files, f => first.Handle.Files.Any(g => g.Path == f.Path && f.Name.EndsWith(".sst", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Between_checkpoints_the_cache_is_written_back_and_sealed_so_the_barrier_logs_nothing_left_over()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = new ChangelogSnapshotter(backend, _storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local"), null, keepLocalCopies: false, Options with { SegmentInterval = TimeSpan.FromMilliseconds(1) });
        await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        Mutate(backend, round: 1);
        var due = System.Diagnostics.Stopwatch.StartNew();
        SpinWait.SpinUntil(() => due.Elapsed >= TimeSpan.FromMilliseconds(2)); // the 1 ms interval has passed

        // The tick writes the cache's dirty values and lists back (logging them) and seals the segment, so they upload
        // before any barrier.
        changelog.Tick();
        var sealedBeforeBarrier = changelog.Writer.BytesSealed;
        await Task.WhenAll(changelog.Writer.SegmentsAfter(-1).Select(static s => s.Uploaded()));
        var second = await changelog.Snapshot(2, AllKeyGroups)(CancellationToken.None);

        Assert.Equal(sealedBeforeBarrier, changelog.Writer.BytesSealed);
        Assert.True(second.ChangelogBytes > 0, "the changes since checkpoint 1 must be in its changelog");
        using var restored = await RestoreAsync("restored", AllKeyGroups, [second.Handle]);
        AssertSameState(backend, restored, AllKeyGroups);
    }

    [Fact]
    public async Task A_subtask_with_many_changes_writes_back_and_seals_more_often_and_one_with_few_at_the_full_interval()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var clock = new SteppedClock();
        var options = Options with { SegmentBytes = 32 << 10, SegmentInterval = TimeSpan.FromSeconds(1) };
        var changelog = new ChangelogSnapshotter(backend, _storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local"), null, keepLocalCopies: false, options, time: clock);
        await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        Assert.Equal(options.SegmentInterval, changelog.WriteBackInterval);

        // Several segments' worth of changes in one interval: the next write-back comes sooner, so a barrier would find
        // about one segment's worth of changes at most.
        Mutate(backend, round: 1);
        clock.Advance(options.SegmentInterval);
        changelog.Tick();
        var logged = changelog.Writer.BytesSealed;
        Assert.True(logged > 4 * options.SegmentBytes, $"{logged} bytes logged");
        var sooner = changelog.WriteBackInterval;
        Assert.InRange(sooner, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(0.5));
        Mutate(backend, round: 2);
        var sealedBefore = changelog.Writer.LastSealed;
        clock.Advance(sooner);
        changelog.Tick();
        Assert.True(changelog.Writer.LastSealed > sealedBefore, "the cache must be written back and sealed after the shorter interval");

        // Few changes from then on: the interval goes back to the full one.
        var count = backend.GetValueState(Count);
        for (var i = 0; i < 20 && changelog.WriteBackInterval < options.SegmentInterval; i++)
        {
            backend.SetCurrentKey("quiet");
            count.Update(i);
            clock.Advance(changelog.WriteBackInterval);
            changelog.Tick();
        }

        Assert.Equal(options.SegmentInterval, changelog.WriteBackInterval);
        var last = await changelog.Snapshot(2, AllKeyGroups)(CancellationToken.None);
        using var restored = await RestoreAsync("restored", AllKeyGroups, [last.Handle]);
        AssertSameState(backend, restored, AllKeyGroups);
    }

    [Fact]
    public async Task At_a_barrier_the_caches_changes_are_logged_without_being_written_into_rocksdb()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = NewSnapshotter(backend, restored: null);
        await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        Mutate(backend, round: 1);
        Assert.True(backend.CachedEntries > 0, "the cache must hold changes at the barrier");
        var sequenceBeforeBarrier = backend.Database.GetLatestSequenceNumber();
        var sealedBeforeBarrier = changelog.Writer.BytesSealed;

        // Only the synchronous part runs on the mailbox: it must not write into RocksDB (a write stall would hold the barrier).
        var complete = changelog.Snapshot(2, AllKeyGroups);

        Assert.Equal(sequenceBeforeBarrier, backend.Database.GetLatestSequenceNumber());
        Assert.True(changelog.Writer.BytesSealed > sealedBeforeBarrier, "the barrier must seal the cache's changes");
        var second = await complete(CancellationToken.None);
        using var restored = await RestoreAsync("restored", AllKeyGroups, [second.Handle]);
        AssertSameState(backend, restored, AllKeyGroups);
    }

    [Fact]
    public async Task Replay_into_two_halves_gives_each_exactly_its_key_groups()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = NewSnapshotter(backend, restored: null);
        var handle = (await CheckpointWithTailAsync(changelog, backend)).Handle;

        foreach (var half in new[] { new KeyGroupRange(0, 63), new KeyGroupRange(64, 127) })
        {
            var directory = _directory.Sub($"half-{half.Start}");
            await RescalingRestorer.RestoreAsync([handle], half, 2, _storage, directory, _directory.Sub($"scratch-{half.Start}"), _resources, null, CancellationToken.None);
            using var part = OpenBackend($"half-{half.Start}", half);
            await ChangelogReplay.ReplayAsync(part, [handle], _storage, null, CancellationToken.None);
            AssertSameState(backend, part, half);
        }
    }

    [Fact]
    public async Task A_confirmed_materialization_truncates_the_segments_it_covers_and_a_restored_base_stays_valid()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = NewSnapshotter(backend, restored: null);
        Mutate(backend, round: 1);
        await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        for (var round = 2; round < 6; round++)
        {
            Mutate(backend, round);
            changelog.Writer.Seal();
        }

        // Segments upload in the background: wait for them before looking into storage.
        await changelog.Writer.WaitForUploadsAsync(0, CancellationToken.None);
        var unpublished = await SegmentsInStorageAsync();
        Assert.True(unpublished.Count >= 4, $"{unpublished.Count} segments");

        var materialization = await changelog.MaterializeNow();
        Mutate(backend, round: 6);
        var second = await changelog.Snapshot(2, AllKeyGroups)(CancellationToken.None);
        Assert.Equal(materialization.Id, second.Handle.MaterializationId);
        Assert.NotEmpty(second.Handle.Changelog!);
        Assert.DoesNotContain(second.Handle.Changelog!, f => unpublished.Contains(f.Path));
        await changelog.Completed(2);

        // Covered by the confirmed materialization and never part of a completed checkpoint: deleted.
        Assert.Equal(second.Handle.Changelog!.Select(static f => f.Path).Order(StringComparer.Ordinal), (await SegmentsInStorageAsync()).Order(StringComparer.Ordinal));
        using var restored = await RestoreAsync("restored", AllKeyGroups, [second.Handle]);
        AssertSameState(backend, restored, AllKeyGroups);

        // A subtask restored with the handle keeps its materialization and segments as the base of its next checkpoint.
        var resumed = NewSnapshotter(restored, second.Handle);
        Mutate(restored, round: 7);
        var third = await resumed.Snapshot(3, AllKeyGroups)(CancellationToken.None);
        Assert.Equal(second.Handle.MaterializationId, third.Handle.MaterializationId);
        Assert.Equal(second.Handle.Changelog!.Select(static f => f.Path), third.Handle.Changelog!.Take(second.Handle.Changelog!.Count).Select(static f => f.Path));
        Assert.True(third.Handle.Changelog!.Count > second.Handle.Changelog!.Count);
        using var again = await RestoreAsync("again", AllKeyGroups, [third.Handle]);
        AssertSameState(restored, again, AllKeyGroups);
    }

    [Fact]
    public async Task Segments_of_a_checkpoint_whose_completion_was_not_heard_of_are_left_to_the_coordinator()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = NewSnapshotter(backend, restored: null);
        var second = await CheckpointWithTailAsync(changelog, backend);
        Assert.NotEmpty(second.Handle.Changelog!);

        // Checkpoint 2 may have completed (and be retained) without this subtask being told; checkpoint 3 refers to a
        // newer materialization that covers checkpoint 2's segments.
        Mutate(backend, round: 3);
        await changelog.MaterializeNow();
        var third = await changelog.Snapshot(3, AllKeyGroups)(CancellationToken.None);
        Assert.True(third.Handle.MaterializationId > second.Handle.MaterializationId);
        await changelog.Completed(3);

        var stored = await SegmentsInStorageAsync();
        Assert.All(second.Handle.Changelog!, f => Assert.Contains(f.Path, stored));
    }

    [Fact]
    public async Task A_corrupt_or_missing_segment_is_refused_with_its_path()
    {
        using var backend = OpenBackend("work", AllKeyGroups);
        var changelog = NewSnapshotter(backend, restored: null);
        Mutate(backend, round: 1);
        await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        Mutate(backend, round: 2);
        changelog.Writer.Seal();
        Mutate(backend, round: 3);
        var handle = (await changelog.Snapshot(2, AllKeyGroups)(CancellationToken.None)).Handle;
        Assert.True(handle.Changelog!.Count >= 2);

        var segment = handle.Changelog[0];
        var bytes = (await _storage.ReadAsync(segment.Path, CancellationToken.None))!;
        bytes[ChangelogSegment.HeaderLength + 3] ^= 0x5A;
        await _storage.WriteAsync(segment.Path, bytes, overwrite: true, CancellationToken.None);
        using var target = OpenBackend("corrupt", AllKeyGroups);
        var corrupt = await Assert.ThrowsAsync<StateFormatException>(() => ChangelogReplay.ReplayAsync(target, [handle], _storage, null, CancellationToken.None));
        Assert.Contains(segment.Path, corrupt.Message, StringComparison.Ordinal);
        Assert.Contains("checksum", corrupt.Message, StringComparison.Ordinal);

        var gap = handle with { Changelog = [handle.Changelog[1]] };
        var skipped = handle with { Changelog = [handle.Changelog[0], .. handle.Changelog.Skip(2)] };
        if (skipped.Changelog!.Count > 1)
        {
            var missing = await Assert.ThrowsAsync<StateFormatException>(() => ChangelogReplay.ReplayAsync(target, [skipped], _storage, null, CancellationToken.None));
            Assert.Contains("missing", missing.Message, StringComparison.Ordinal);
        }

        await _storage.DeleteAsync(handle.Changelog[1].Path, CancellationToken.None);
        await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => ChangelogReplay.ReplayAsync(target, [gap], _storage, null, CancellationToken.None));
    }

    [Fact]
    public async Task Sealed_segments_wait_in_memory_while_storage_is_slow_and_backpressure_waits_until_they_are_uploaded()
    {
        var held = new HeldWrites(_storage);
        var writer = new StateChangelogWriter(held, "job-1/changelog/counts/0/log", AllKeyGroups, 4096, TimeSpan.FromHours(1), 0);
        var key = new byte[] { 0, 5, 1, 42 };
        for (var i = 0; i < 100; i++)
        {
            writer.Log(ChangeKind.Put, "count", key, new byte[512]);
        }

        writer.Seal();
        Assert.True(writer.PendingUploadBytes > 50_000, $"{writer.PendingUploadBytes} bytes pending");
        var waiting = writer.WaitForUploadsAsync(8192, CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        held.Release();
        await waiting;
        Assert.True(writer.PendingUploadBytes <= 8192, $"{writer.PendingUploadBytes} bytes still pending");
        var uploaded = await Task.WhenAll(writer.SegmentsAfter(-1).Select(static s => s.Uploaded()));
        Assert.Equal(writer.BytesSealed, uploaded.Sum(static f => f.Length));
    }

    [Fact]
    public async Task A_segment_whose_upload_failed_keeps_its_bytes_while_later_segments_reuse_pooled_buffers()
    {
        var failing = new FailingWrites(_storage) { Failing = true };
        // A pool of its own, which hands out the array returned last (the shared one keeps arrays per thread).
        var pool = System.Buffers.ArrayPool<byte>.Create(4 << 20, 4);
        var writer = new StateChangelogWriter(failing, "job-1/changelog/counts/0/log", AllKeyGroups, 1 << 20, TimeSpan.FromHours(1), 0, pool);
        var key = new byte[] { 0, 5, 1, 42 };
        void WriteSegment(byte fill)
        {
            for (var i = 0; i < 300; i++)
            {
                writer.Log(ChangeKind.Put, "count", key, Enumerable.Repeat(fill, 1000).ToArray());
            }

            writer.Seal();
        }

        // Segment 0's upload fails: its buffer must stay its own. Segments 1..20 upload and give theirs back to the pool,
        // from which the next ones rent theirs.
        WriteSegment(0);
        var first = writer.SegmentsAfter(-1).Single();
        await Assert.ThrowsAsync<CheckpointStorageException>(() => first.Upload);
        failing.Failing = false;
        for (byte fill = 1; fill <= 20; fill++)
        {
            WriteSegment(fill);
            await writer.SegmentsAfter(fill - 1).Single().Uploaded();
        }

        await first.Uploaded();
        foreach (var segment in writer.SegmentsAfter(-1))
        {
            var file = await segment.Uploaded();
            var bytes = await _storage.ReadAsync(file.Path, CancellationToken.None);
            Assert.NotNull(bytes);
            var values = new ValuesSeen();
            ChangelogSegment.Replay(bytes, file.Path, segment.Sequence, AllKeyGroups, values);
            Assert.Equal(300, values.Count);
            Assert.Equal(new[] { (byte)segment.Sequence }, values.Distinct);
        }
    }

    /// <summary>Changes of every kind: values (some cleared), map entries (some removed, one key's map cleared), lists, timers (some deleted).</summary>
    private static void Mutate(RocksDbKeyedStateBackend<string> backend, int round)
    {
        var count = backend.GetValueState(Count);
        var seen = backend.GetMapState(Seen);
        var history = backend.GetListState(History);
        for (var i = 0; i < 3_000; i++)
        {
            var key = $"key-{(i * 7 * round) % 5_000}";
            backend.SetCurrentKey(key);
            count.Update(count.Get() + round);
            seen.Put($"r{round}", i);
            history.Add(round * 10_000L + i);
            backend.RegisterProcessingTimeTimer(1_000 + i);
            if (i % 11 == 0)
            {
                count.Clear();
                seen.Remove("r1");
                backend.DeleteProcessingTimeTimer(1_000 + i);
            }

            if (i % 97 == 0)
            {
                seen.Clear();
            }
        }
    }

    private static void AssertSameState(RocksDbKeyedStateBackend<string> expected, RocksDbKeyedStateBackend<string> actual, KeyGroupRange keyGroups)
    {
        var owned = 0;
        for (var k = 0; k < 5_000; k++)
        {
            var key = $"key-{k}";
            if (!keyGroups.Contains(TestEnvironment.KeyGroupOfString(key, MaxParallelism)))
            {
                continue;
            }

            owned++;
            expected.SetCurrentKey(key);
            actual.SetCurrentKey(key);
            Assert.Equal(expected.GetValueState(Count).TryGet(out var a) ? a : (long?)null, actual.GetValueState(Count).TryGet(out var b) ? b : null);
            Assert.Equal(expected.GetMapState(Seen).Entries().OrderBy(static e => e.Key, StringComparer.Ordinal), actual.GetMapState(Seen).Entries().OrderBy(static e => e.Key, StringComparer.Ordinal));
            Assert.Equal(expected.GetListState(History).Get(), actual.GetListState(History).Get());
        }

        Assert.True(owned > 0, $"no key in {keyGroups}");
    }

    private async Task<RocksDbKeyedStateBackend<string>> RestoreAsync(string name, KeyGroupRange keyGroups, KeyedStateHandle[] handles)
    {
        await KeyedStateRestorer.RestoreAsync(handles[0], 1, _storage, _directory.Sub(name), localCopy: null, progress: null, CancellationToken.None);
        var backend = OpenBackend(name, keyGroups);
        await ChangelogReplay.ReplayAsync(backend, handles, _storage, null, CancellationToken.None);
        return backend;
    }

    private async Task<List<string>> SegmentsInStorageAsync()
    {
        var segments = new List<string>();
        await foreach (var stored in _storage.ListAsync("job-1/changelog", CancellationToken.None))
        {
            if (stored.Path.Contains("/log/", StringComparison.Ordinal))
            {
                segments.Add(stored.Path);
            }
        }

        return segments;
    }

    private RocksDbKeyedStateBackend<string> OpenBackend(string name, KeyGroupRange keyGroups) => new(
        new KeyedStateBackendOptions { Directory = _directory.Sub(name), KeyGroups = keyGroups, MaxParallelism = MaxParallelism, CacheCapacity = 1_000 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    /// <summary>Checkpoint 1 (its materialization) completes; round 2 of changes; checkpoint 2 refers to that materialization and a tail.</summary>
    private static async Task<ChangelogSnapshot> CheckpointWithTailAsync(ChangelogSnapshotter changelog, RocksDbKeyedStateBackend<string> backend)
    {
        Mutate(backend, round: 1);
        await changelog.Snapshot(1, AllKeyGroups)(CancellationToken.None);
        await changelog.Completed(1);
        Mutate(backend, round: 2);
        return await changelog.Snapshot(2, AllKeyGroups)(CancellationToken.None);
    }

    private ChangelogSnapshotter NewSnapshotter(RocksDbKeyedStateBackend<string> backend, KeyedStateHandle? restored) =>
        new(backend, _storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local-" + Guid.NewGuid().ToString("N")[..6]), restored, keepLocalCopies: true, Options);

    /// <summary>Filesystem storage whose writes wait until released.</summary>
    private sealed class HeldWrites(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _released.TrySetResult();

        public override async Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken)
        {
            await _released.Task;
            await Inner.WriteAsync(path, content, overwrite, cancellationToken);
        }
    }

    /// <summary>Filesystem storage whose writes fail while <see cref="Failing"/> is set.</summary>
    private sealed class FailingWrites(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public volatile bool Failing;

        public override Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken) =>
            Failing ? Task.FromException(new CheckpointStorageException($"Writing '{path}' failed (test).")) : Inner.WriteAsync(path, content, overwrite, cancellationToken);
    }

    /// <summary>Counts the changes of a replayed segment and the distinct bytes of their values.</summary>
    private sealed class ValuesSeen : IChangeVisitor
    {
        private readonly SortedSet<byte> _distinct = [];

        public int Count { get; private set; }

        public IEnumerable<byte> Distinct => _distinct;

        public void Visit(ChangeKind kind, string state, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
        {
            Count++;
            foreach (var b in value)
            {
                _distinct.Add(b);
            }
        }
    }

    /// <summary>A clock whose timestamps move only when told to (the snapshotter's intervals, not wall time).</summary>
    private sealed class SteppedClock : TimeProvider
    {
        private long _ticks = TimeSpan.TicksPerDay;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public void Advance(TimeSpan delta) => Interlocked.Add(ref _ticks, delta.Ticks);
    }
}
