using RocksDbSharp;
using StreamGrains.Snapshots;
using StreamGrains.State.Keys;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Snapshots;

/// <summary>
/// Rescaling restores against real RocksDB and filesystem checkpoint storage: state written by real backends at one
/// parallelism, snapshotted incrementally, restored at another, and compared with an independent model of what was
/// written.
/// </summary>
public sealed class RescalingRestorerTests : IDisposable
{
    private const int MaxParallelism = 128;
    private const int Keys = 20_000;
    private const string TimersColumnFamily = "_timers";
    private static readonly ValueStateDescriptor<long> Balance = new("balance");
    private static readonly MapStateDescriptor<string, int> Tags = new("tags");
    private static readonly ListStateDescriptor<int> Events = new("events");
    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 16 << 20, WriteBufferBytes = 64 << 20, ColumnFamilyWriteBufferBytes = 16 << 20, BackgroundThreads = 2 });
    private readonly FileSystemCheckpointStorage _storage;

    public RescalingRestorerTests() => _storage = new FileSystemCheckpointStorage(_directory.Sub("storage"));

    private string Scratch => _directory.Sub("scratch");

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    /// <summary>
    /// <paramref name="recorded"/>: the snapshot records each SST's place (the import path); otherwise it is a snapshot of
    /// an older version, without it (the path that reopens the old instances).
    /// </summary>
    [Theory]
    [InlineData(2, 3, true)]
    [InlineData(2, 1, true)]
    [InlineData(2, 5, true)]
    [InlineData(5, 2, true)]
    [InlineData(3, 1, true)]
    [InlineData(2, 2, true)]
    [InlineData(2, 3, false)]
    [InlineData(2, 1, false)]
    [InlineData(5, 2, false)]
    [InlineData(2, 2, false)]
    public async Task Every_subtask_of_the_new_parallelism_gets_exactly_the_state_and_timers_of_its_key_groups(int oldParallelism, int newParallelism, bool recorded)
    {
        var (snapshot, model) = await SnapshotAsync(oldParallelism, seed: 42 + oldParallelism);
        var handles = recorded ? snapshot : WithoutSstInfo(snapshot);

        for (var subtask = 0; subtask < newParallelism; subtask++)
        {
            var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, newParallelism, subtask);
            var overlapping = handles.Where(h => !h.KeyGroups.Intersect(range).IsEmpty).ToList();
            var target = _directory.Sub($"new-{newParallelism}-{subtask}");

            var progress = await RescalingRestorer.RestoreAsync(overlapping, range, 2, _storage, target, Scratch, _resources, progress: null, CancellationToken.None);

            Assert.True(progress.Completed);
            var expectedBytes = overlapping.Count == 1 && overlapping[0].KeyGroups == range ? overlapping[0].FullSize
                : recorded ? Needed(overlapping, range).Sum(static f => f.Length)
                : overlapping.Sum(static h => h.FullSize);
            Assert.Equal(expectedBytes, progress.BytesTotal);
            Assert.Equal(progress.BytesTotal, progress.BytesDone);
            AssertScratchIsEmpty();
            AssertRawContent(target, range, model);
            AssertState(target, range, model);
        }
    }

    [Fact]
    public async Task Merging_ingests_files_instead_of_writing_keys_one_by_one()
    {
        var (handles, model) = await SnapshotAsync(parallelism: 2, seed: 7);
        var whole = new KeyGroupRange(0, MaxParallelism - 1);
        var plainSequenceNumbers = new List<ulong>();
        foreach (var handle in handles)
        {
            var plain = _directory.Sub($"plain-{handle.KeyGroups.Start}");
            await KeyedStateRestorer.RestoreAsync(handle, 2, _storage, plain, localCopy: null, progress: null, CancellationToken.None);
            plainSequenceNumbers.Add(LatestSequenceNumber(plain));
        }

        var target = _directory.Sub("merged");
        await RescalingRestorer.RestoreAsync(handles, whole, 2, _storage, target, Scratch, _resources, progress: null, CancellationToken.None);

        // Whichever handle was the base, the other one brought at least this many entries; had they been Put one by one,
        // each would have taken a sequence number.
        var smallestHandleEntries = handles.Min(h => model.EntriesIn(h.KeyGroups));
        Assert.True(smallestHandleEntries > 10_000, $"the test needs more entries per handle, has {smallestHandleEntries}");
        var growth = (long)LatestSequenceNumber(target) - (long)plainSequenceNumbers.Max();
        Assert.True(growth < 100, $"the merged instance's sequence number grew by {growth} over the base's; {smallestHandleEntries} entries were merged");
        AssertRawContent(target, whole, model);
        AssertState(target, whole, model);
    }

    [Fact]
    public async Task A_snapshot_of_rescaled_instances_rescales_again_to_exactly_the_state()
    {
        var (handles, model) = await SnapshotAsync(parallelism: 2, seed: 21);

        // 2 → 3, then a checkpoint of the three new instances as they are after the restore.
        var middle = new List<KeyedStateHandle>();
        for (var subtask = 0; subtask < 3; subtask++)
        {
            var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 3, subtask);
            var directory = _directory.Sub($"middle-{subtask}");
            await RescalingRestorer.RestoreAsync(handles.Where(h => !h.KeyGroups.Intersect(range).IsEmpty).ToList(), range, 2, _storage, directory, Scratch, _resources, progress: null, CancellationToken.None);
            using var backend = OpenBackend(directory, range);
            var snapshotter = new IncrementalSnapshotter(backend, _storage, new SnapshotOwner("job-1", "middle", subtask, range), _directory.Sub($"middle-{subtask}-local"), restored: null, keepLocalCopies: false);
            middle.Add((await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(3), CancellationToken.None)).Handle);
        }

        // The clips left files reaching beyond their subtask's key groups: the range deletions, and the keys they hide.
        Assert.Contains(middle, static h => h.Files.Any(f => f.Sst is { } sst && !(h.KeyGroups.Contains(sst.KeyGroups.Start) && h.KeyGroups.Contains(sst.KeyGroups.End))));

        foreach (var parallelism in new[] { 2, 1, 4 })
        {
            for (var subtask = 0; subtask < parallelism; subtask++)
            {
                var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, parallelism, subtask);
                var target = _directory.Sub($"again-{parallelism}-{subtask}");
                await RescalingRestorer.RestoreAsync(middle.Where(h => !h.KeyGroups.Intersect(range).IsEmpty).ToList(), range, 3, _storage, target, Scratch, _resources, progress: null, CancellationToken.None);
                AssertRawContent(target, range, model);
                AssertState(target, range, model);
            }
        }
    }

    [Fact]
    public async Task Snapshots_record_the_column_family_level_key_groups_and_sequence_numbers_of_every_sst()
    {
        var (handles, _) = await SnapshotAsync(parallelism: 2, seed: 8);

        foreach (var handle in handles)
        {
            var ssts = handle.Files.Where(static f => f.Name.EndsWith(".sst", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(ssts);
            Assert.All(handle.Files.Except(ssts), static f => Assert.Null(f.Sst));
            foreach (var file in ssts)
            {
                var sst = Assert.IsType<SstFileInfo>(file.Sst);
                Assert.Contains(sst.ColumnFamily, new[] { Balance.Name, Tags.Name, Events.Name, TimersColumnFamily });
                Assert.InRange(sst.Level, 0, 6);
                Assert.True(handle.KeyGroups.Contains(sst.KeyGroups.Start) && handle.KeyGroups.Contains(sst.KeyGroups.End), $"{file.Name} of {handle.KeyGroups} records key groups {sst.KeyGroups}");
                Assert.True(sst.SmallestSeqno <= sst.LargestSeqno, $"{file.Name}: seqnos {sst.SmallestSeqno}..{sst.LargestSeqno}");
            }

            // Every column family that holds keys has files, and the files' key groups are what a scan of the restored
            // instance finds.
            var restored = _directory.Sub($"plain-{handle.KeyGroups.Start}");
            await KeyedStateRestorer.RestoreAsync(handle, 2, _storage, restored, localCopy: null, progress: null, CancellationToken.None);
            using var db = OpenRaw(restored, out var columnFamilies);
            foreach (var name in columnFamilies.Where(static n => n != ColumnFamilies.DefaultName))
            {
                using var iterator = db.NewIterator(db.GetColumnFamily(name));
                var keyGroups = new List<int>();
                for (iterator.SeekToFirst(); iterator.Valid(); iterator.Next())
                {
                    keyGroups.Add(StateKeys.KeyGroupOf(iterator.GetKeySpan()));
                }

                var recorded = ssts.Where(f => f.Sst!.ColumnFamily == name).ToList();
                Assert.Equal(keyGroups.Count > 0, recorded.Count > 0);
                if (keyGroups.Count > 0)
                {
                    Assert.Equal(keyGroups.Min(), recorded.Min(static f => f.Sst!.KeyGroups.Start));
                    Assert.Equal(keyGroups.Max(), recorded.Max(static f => f.Sst!.KeyGroups.End));
                }
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Clipping_drops_files_that_hold_only_key_groups_outside_the_range(bool recorded)
    {
        // One subtask of parallelism 1 writes the upper half of the key groups and compacts it into the last level, then
        // the same with the lower half: two bottom-level files, each holding one half.
        var all = new KeyGroupRange(0, MaxParallelism - 1);
        var lower = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 2, 0);
        var model = new Model();
        KeyedStateHandle handle;
        using (var backend = OpenBackend(_directory.Sub("halves"), all))
        {
            var snapshotter = new IncrementalSnapshotter(backend, _storage, new SnapshotOwner("job-1", "halves", 0, all), _directory.Sub("halves-local"), restored: null, keepLocalCopies: false);
            var keys = Enumerable.Range(0, Keys).Select(static i => $"key-{i}").ToList();
            var random = new Random(11);
            foreach (var inLower in new[] { false, true })
            {
                foreach (var key in keys.Where(k => lower.Contains(KeyGroupOf(k)) == inLower))
                {
                    backend.SetCurrentKey(key);
                    var value = random.NextInt64();
                    backend.GetValueState(Balance).Update(value);
                    model.Values[key] = value;
                }

                backend.Flush();
                backend.Database.Flush(new FlushOptions().SetWaitForFlush(true));
                var (start, end) = StateKeys.Bounds(inLower ? lower : new KeyGroupRange(lower.EndExclusive, MaxParallelism - 1));
                backend.Database.CompactRange(start, end, backend.Database.GetColumnFamily(Balance.Name));
            }

            handle = (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None)).Handle;
        }

        var target = _directory.Sub("lower");
        var ssts = handle.Files.Where(static f => f.Name.EndsWith(".sst", StringComparison.Ordinal)).ToList();
        var restored = await RescalingRestorer.RestoreAsync([recorded ? handle : WithoutSstInfo([handle])[0]], lower, 1, _storage, target, Scratch, _resources, progress: null, CancellationToken.None);

        if (recorded)
        {
            // The file of the upper half is not even fetched.
            Assert.True(restored.FilesTotal < ssts.Count, $"fetched {restored.FilesTotal} of {ssts.Count} SSTs");
            Assert.Equal(Needed([handle], lower).Sum(static f => f.Length), restored.BytesDownloaded + restored.BytesLinked);
            Assert.Contains(ssts, f => f.Sst!.KeyGroups.Intersect(lower).IsEmpty);
        }
        else
        {
            var left = new DirectoryInfo(target).EnumerateFiles("*.sst").Select(static f => f.Name).ToHashSet();
            var dropped = ssts.Where(f => !left.Contains(f.Name)).ToList();
            Assert.NotEmpty(dropped);
        }

        AssertRawContent(target, lower, model);
        AssertState(target, lower, model);
    }

    [Fact]
    public async Task Two_restores_of_one_silo_that_split_an_old_subtask_download_each_sst_they_share_once()
    {
        var (handles, model) = await SnapshotAsync(parallelism: 1, seed: 12);
        var storage = new HeldDownloads(_storage);
        var shared = new SharedRestoreDownloads();
        var ranges = Enumerable.Range(0, 2).Select(static i => KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 2, i)).ToArray();
        var targets = ranges.Select(r => _directory.Sub($"split-{r.Start}")).ToArray();

        // Downloads are held until both restores have claimed their files (which they do before their first await), so
        // that the second finds the first one's downloads under way whatever the thread pool does.
        var restores = ranges.Select((r, i) => RescalingRestorer.RestoreAsync(handles, r, 2, storage, targets[i], Scratch, _resources, progress: null, shared, CancellationToken.None)).ToArray();
        storage.Release();
        var results = await Task.WhenAll(restores);

        var needed = ranges.Select(r => Needed(handles, r)).ToArray();
        var inBoth = needed[0].Select(static f => f.Path).Intersect(needed[1].Select(static f => f.Path)).ToHashSet();
        Assert.NotEmpty(inBoth);
        Assert.All(storage.Downloaded.GroupBy(static p => p), static g => Assert.Single(g));
        Assert.Equal(needed[0].Concat(needed[1]).DistinctBy(static f => f.Path).Sum(static f => f.Length), results.Sum(static r => r.BytesDownloaded));
        Assert.Equal(needed[0].Where(f => inBoth.Contains(f.Path)).Sum(static f => f.Length), results.Sum(static r => r.BytesLinked));
        Assert.Equal(0, shared.Offered);
        for (var i = 0; i < ranges.Length; i++)
        {
            AssertRawContent(targets[i], ranges[i], model);
            AssertState(targets[i], ranges[i], model);
        }

        AssertScratchIsEmpty();
    }

    [Fact]
    public async Task When_shared_downloads_fail_both_restores_fail_with_the_storage_error_and_leave_nothing_behind()
    {
        var (handles, _) = await SnapshotAsync(parallelism: 1, seed: 13);
        var storage = new HeldDownloads(_storage, fail: true);
        var shared = new SharedRestoreDownloads();
        var ranges = Enumerable.Range(0, 2).Select(static i => KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 2, i)).ToArray();
        var targets = ranges.Select(r => _directory.Sub($"failed-{r.Start}")).ToArray();

        var restores = ranges.Select((r, i) => RescalingRestorer.RestoreAsync(handles, r, 2, storage, targets[i], Scratch, _resources, progress: null, shared, CancellationToken.None)).ToArray();
        storage.Release();

        foreach (var restore in restores)
        {
            await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => restore.WaitAsync(TimeSpan.FromMinutes(2)));
        }

        Assert.Equal(0, shared.Offered);
        Assert.All(targets, static t => Assert.False(Directory.Exists(t)));
        AssertScratchIsEmpty();
    }

    [Fact]
    public async Task Progress_covers_the_files_of_every_handle_and_completes_once()
    {
        var (handles, _) = await SnapshotAsync(parallelism: 2, seed: 3);
        var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 3, 1);
        Assert.All(handles, h => Assert.False(h.KeyGroups.Intersect(range).IsEmpty));
        var reports = new RecordingProgress();

        var final = await RescalingRestorer.RestoreAsync(handles, range, 2, _storage, _directory.Sub("target"), Scratch, _resources, reports, CancellationToken.None);

        var seen = reports.Reports;
        Assert.Equal(final, seen[^1]);
        Assert.Single(seen, static r => r.Completed);
        Assert.Equal(Needed(handles, range).Count, final.FilesTotal);
        Assert.Equal(Needed(handles, range).Sum(static f => f.Length), final.BytesTotal);
        Assert.Equal(final.FilesTotal, final.FilesDone);
        Assert.Equal(final.BytesTotal, final.BytesDone);
        Assert.Equal(final.BytesTotal, final.BytesDownloaded + final.BytesLinked);
        Assert.All(seen, r => Assert.Equal(2, r.CheckpointId));
        Assert.True(seen.Count > final.FilesTotal, $"expected a report per file, got {seen.Count} for {final.FilesTotal} files");
        for (var i = 1; i < seen.Count; i++)
        {
            Assert.True(seen[i].FilesDone >= seen[i - 1].FilesDone && seen[i].BytesDone >= seen[i - 1].BytesDone, $"progress went back: {seen[i - 1]} then {seen[i]}");
        }
    }

    [Fact]
    public async Task Invalid_handle_lists_are_rejected_before_anything_is_created()
    {
        var whole = new KeyGroupRange(0, MaxParallelism - 1);
        var target = _directory.Sub("target");

        var disjoint = await Assert.ThrowsAsync<ArgumentException>(() => Restore([FakeHandle(0, 63), FakeHandle(64, 127)], new KeyGroupRange(0, 42)));
        Assert.Contains("[64, 127]", disjoint.Message, StringComparison.Ordinal);
        Assert.Contains("do not overlap", disjoint.Message, StringComparison.Ordinal);

        var overlapping = await Assert.ThrowsAsync<ArgumentException>(() => Restore([FakeHandle(0, 70), FakeHandle(60, 127)], whole));
        Assert.Contains("overlap in key groups [60, 70]", overlapping.Message, StringComparison.Ordinal);

        var duplicate = await Assert.ThrowsAsync<ArgumentException>(() => Restore([FakeHandle(0, 127), FakeHandle(0, 127)], whole));
        Assert.Contains("overlap", duplicate.Message, StringComparison.Ordinal);

        var empty = await Assert.ThrowsAsync<ArgumentException>(() => Restore([], whole));
        Assert.Contains("No state handle", empty.Message, StringComparison.Ordinal);

        var gap = await Assert.ThrowsAsync<ArgumentException>(() => Restore([FakeHandle(0, 40), FakeHandle(50, 127)], whole));
        Assert.Contains("Key groups [41, 49]", gap.Message, StringComparison.Ordinal);

        var uncovered = await Assert.ThrowsAsync<ArgumentException>(() => Restore([FakeHandle(0, 100)], whole));
        Assert.Contains("Key groups [101, 127]", uncovered.Message, StringComparison.Ordinal);

        Assert.False(Directory.Exists(target));
        Assert.False(Directory.Exists(Scratch));

        Task<RestoreProgress> Restore(IReadOnlyList<KeyedStateHandle> handles, KeyGroupRange range) =>
            RescalingRestorer.RestoreAsync(handles, range, 1, _storage, target, Scratch, _resources, progress: null, CancellationToken.None);
    }

    [Fact]
    public async Task A_missing_or_corrupt_file_fails_with_the_storage_exception_and_leaves_nothing_behind()
    {
        var (handles, _) = await SnapshotAsync(parallelism: 2, seed: 5);
        var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 3, 1);
        var target = _directory.Sub("target");

        var corrupt = StoredPath(Needed([handles[0]], range)[0]);
        var bytes = await File.ReadAllBytesAsync(corrupt);
        bytes[bytes.Length / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(corrupt, bytes);
        await Assert.ThrowsAsync<CheckpointStorageCorruptException>(() => RescalingRestorer.RestoreAsync(handles, range, 2, _storage, target, Scratch, _resources, null, CancellationToken.None));
        AssertScratchIsEmpty();
        Assert.False(Directory.Exists(target), "a failed restore left a target directory that could be opened");

        var original = Needed([handles[0]], range)[0];
        File.Delete(corrupt);
        var missing = await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => RescalingRestorer.RestoreAsync(handles, range, 2, _storage, target, Scratch, _resources, null, CancellationToken.None));
        Assert.Equal(original.Path, missing.Path);
        AssertScratchIsEmpty();
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public async Task A_missing_file_of_the_base_handle_fails_too()
    {
        // Only the path without recorded SST places has a base handle.
        var (handles, _) = await SnapshotAsync(parallelism: 2, seed: 6);
        handles = WithoutSstInfo(handles);

        // Of [43, 85], handle [64, 127] holds 22 key groups and [0, 63] 21: the former is the base.
        var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 3, 1);
        var baseHandle = handles.Single(static h => h.KeyGroups.Start == 64);
        File.Delete(StoredPath(baseHandle.Files.First(static f => f.Shared)));

        await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => RescalingRestorer.RestoreAsync(handles, range, 2, _storage, _directory.Sub("target"), Scratch, _resources, null, CancellationToken.None));
        AssertScratchIsEmpty();
        Assert.False(Directory.Exists(_directory.Sub("target")));
    }

    [Fact]
    public async Task A_cancelled_restore_leaves_nothing_behind()
    {
        var (handles, _) = await SnapshotAsync(parallelism: 2, seed: 9);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => RescalingRestorer.RestoreAsync(
            handles, KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, 3, 1), 2, _storage, _directory.Sub("target"), Scratch, _resources, null, cancelled.Token));

        AssertScratchIsEmpty();
        Assert.False(Directory.Exists(_directory.Sub("target")));
    }

    private static KeyedStateHandle FakeHandle(int start, int end) => new()
    {
        KeyGroups = new KeyGroupRange(start, end),
        Files = [new StateFile { Name = "CURRENT", Path = $"fake/{start}-{end}/CURRENT", Length = 16 }],
    };

    private static int KeyGroupOf(string key) => TestEnvironment.KeyGroupOfString(key, MaxParallelism);

    /// <summary>The handles as a version that did not record where each SST sits wrote them.</summary>
    private static KeyedStateHandle[] WithoutSstInfo(IEnumerable<KeyedStateHandle> handles) =>
        handles.Select(static h => h with { Files = h.Files.Select(static f => f with { Sst = null }).ToArray() }).ToArray();

    /// <summary>The SSTs of the handles whose recorded key groups overlap <paramref name="range"/>: what the import path fetches.</summary>
    private static List<StateFile> Needed(IEnumerable<KeyedStateHandle> handles, KeyGroupRange range) =>
        handles.SelectMany(static h => h.Files).Where(f => f.Sst is { } sst && !sst.KeyGroups.Intersect(range).IsEmpty).ToList();

    private string StoredPath(StateFile file) => Path.Combine(_directory.Sub("storage"), file.Path);

    private void AssertScratchIsEmpty() =>
        Assert.True(!Directory.Exists(Scratch) || !Directory.EnumerateFileSystemEntries(Scratch).Any(), $"the scratch directory still holds {string.Join(", ", Directory.Exists(Scratch) ? Directory.EnumerateFileSystemEntries(Scratch) : [])}");

    /// <summary>
    /// Writes state for <see cref="Keys"/> keys with one real backend per subtask, checkpoints, changes part of it
    /// (overwrites, deletions, timer removals) and checkpoints again, so that the snapshot has several files with
    /// superseded versions; returns the second checkpoint's handles and a model of the final state.
    /// </summary>
    private async Task<(IReadOnlyList<KeyedStateHandle> Handles, Model Model)> SnapshotAsync(int parallelism, int seed)
    {
        var random = new Random(seed);
        var model = new Model();
        var backends = new List<RocksDbKeyedStateBackend<string>>();
        var snapshotters = new List<IncrementalSnapshotter>();
        try
        {
            for (var subtask = 0; subtask < parallelism; subtask++)
            {
                var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, parallelism, subtask);
                var backend = OpenBackend(_directory.Sub($"old-{parallelism}-{subtask}"), range);
                backends.Add(backend);
                snapshotters.Add(new IncrementalSnapshotter(backend, _storage, new SnapshotOwner("job-1", "state", subtask, range), _directory.Sub($"old-{parallelism}-{subtask}-local"), restored: null, keepLocalCopies: false));
            }

            for (var i = 0; i < Keys; i++)
            {
                var key = $"key-{i}";
                var backend = Select(key);
                backend.SetCurrentKey(key);
                var value = random.NextInt64();
                backend.GetValueState(Balance).Update(value);
                model.Values[key] = value;
                if (i % 3 == 0)
                {
                    var map = new Dictionary<string, int>();
                    for (var entry = random.Next(1, 5); entry > 0; entry--)
                    {
                        var tag = $"tag-{random.Next(100)}";
                        var tagValue = random.Next();
                        backend.GetMapState(Tags).Put(tag, tagValue);
                        map[tag] = tagValue;
                    }

                    model.Maps[key] = map;
                }

                if (i % 4 == 0)
                {
                    var list = Enumerable.Range(0, random.Next(1, 4)).Select(_ => random.Next()).ToList();
                    backend.GetListState(Events).AddAll(list);
                    model.Lists[key] = list;
                }

                if (i % 10 == 0)
                {
                    var timestamp = random.NextInt64(1, 1_000_000_000);
                    backend.RegisterProcessingTimeTimer(timestamp);
                    model.Timers.Add((timestamp, key));
                }
            }

            await CheckpointAsync(1);
            for (var i = 0; i < Keys; i++)
            {
                var key = $"key-{i}";
                var backend = Select(key);
                backend.SetCurrentKey(key);
                if (i % 7 == 0)
                {
                    var value = random.NextInt64();
                    backend.GetValueState(Balance).Update(value);
                    model.Values[key] = value;
                }
                else if (i % 11 == 0)
                {
                    backend.GetValueState(Balance).Clear();
                    model.Values.Remove(key);
                }

                if (i % 9 == 0 && model.Maps.TryGetValue(key, out var map))
                {
                    var tag = map.Keys.Order(StringComparer.Ordinal).First();
                    backend.GetMapState(Tags).Remove(tag);
                    map.Remove(tag);
                    if (map.Count == 0)
                    {
                        model.Maps.Remove(key);
                    }
                }

                if (i % 8 == 0)
                {
                    backend.GetListState(Events).Clear();
                    model.Lists.Remove(key);
                }

                if (i % 30 == 0)
                {
                    var timer = model.Timers.Single(t => t.Key == key);
                    backend.DeleteProcessingTimeTimer(timer.Timestamp);
                    model.Timers.Remove(timer);
                }
            }

            return (await CheckpointAsync(2), model);
        }
        finally
        {
            foreach (var backend in backends)
            {
                backend.Dispose();
            }
        }

        RocksDbKeyedStateBackend<string> Select(string key) =>
            backends[KeyGroups.ComputeOperatorIndexForKeyGroup(MaxParallelism, parallelism, KeyGroupOf(key))];

        async Task<IReadOnlyList<KeyedStateHandle>> CheckpointAsync(long checkpointId)
        {
            var handles = new List<KeyedStateHandle>();
            foreach (var snapshotter in snapshotters)
            {
                handles.Add((await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(checkpointId), CancellationToken.None)).Handle);
                snapshotter.Completed(checkpointId);
            }

            return handles;
        }
    }

    private RocksDbKeyedStateBackend<string> OpenBackend(string directory, KeyGroupRange range) => new(
        new KeyedStateBackendOptions { Directory = directory, KeyGroups = range, MaxParallelism = MaxParallelism, CacheCapacity = 1_000 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    private ulong LatestSequenceNumber(string directory)
    {
        using var db = OpenRaw(directory, out _);
        return db.GetLatestSequenceNumber();
    }

    private RocksDbSharp.RocksDb OpenRaw(string directory, out string[] columnFamilies)
    {
        var options = _resources.CreateDbOptions();
        Assert.True(RocksDbSharp.RocksDb.TryListColumnFamilies(options, directory, out columnFamilies), $"no RocksDB instance in {directory}");
        var families = new ColumnFamilies(_resources.CreateColumnFamilyOptions());
        foreach (var name in columnFamilies.Where(static n => n != ColumnFamilies.DefaultName))
        {
            families.Add(name, _resources.CreateColumnFamilyOptions());
        }

        return RocksDbSharp.RocksDb.OpenReadOnly(options, directory, families, errIfLogFileExists: false);
    }

    /// <summary>Every raw key of every column family lies in the range, and each column family has exactly the model's number of entries there.</summary>
    private void AssertRawContent(string directory, KeyGroupRange range, Model model)
    {
        var expected = new Dictionary<string, long>(StringComparer.Ordinal)
        {
            [ColumnFamilies.DefaultName] = 0,
            [Balance.Name] = model.Values.Keys.Count(k => range.Contains(KeyGroupOf(k))),
            [Tags.Name] = model.Maps.Where(m => range.Contains(KeyGroupOf(m.Key))).Sum(static m => m.Value.Count),
            [Events.Name] = model.Lists.Keys.Count(k => range.Contains(KeyGroupOf(k))),
            [TimersColumnFamily] = model.Timers.Count(t => range.Contains(KeyGroupOf(t.Key))),
        };
        using var db = OpenRaw(directory, out var columnFamilies);
        var actual = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var name in columnFamilies)
        {
            var handle = name == ColumnFamilies.DefaultName ? db.GetDefaultColumnFamily() : db.GetColumnFamily(name);
            using var iterator = db.NewIterator(handle);
            long count = 0;
            for (iterator.SeekToFirst(); iterator.Valid(); iterator.Next())
            {
                var keyGroup = (iterator.GetKeySpan()[0] << 8) | iterator.GetKeySpan()[1];
                Assert.True(range.Contains(keyGroup), $"column family {name} of the instance for {range} holds a key of key group {keyGroup}");
                count++;
            }

            actual[name] = count;
        }

        foreach (var (name, count) in expected.Where(static e => e.Value > 0))
        {
            Assert.True(actual.ContainsKey(name), $"column family {name} is missing");
        }

        Assert.Equal(expected.Where(static e => e.Value > 0).OrderBy(static e => e.Key, StringComparer.Ordinal), actual.Where(static e => e.Value > 0).OrderBy(static e => e.Key, StringComparer.Ordinal));
    }

    /// <summary>A backend opened on the directory reads exactly the model's state for every key of the range, and has exactly its timers.</summary>
    private void AssertState(string directory, KeyGroupRange range, Model model)
    {
        using var backend = OpenBackend(directory, range);
        var balance = backend.GetValueState(Balance);
        var tags = backend.GetMapState(Tags);
        var events = backend.GetListState(Events);
        var checkedKeys = 0;
        for (var i = 0; i < Keys; i++)
        {
            var key = $"key-{i}";
            if (!range.Contains(KeyGroupOf(key)))
            {
                continue;
            }

            checkedKeys++;
            backend.SetCurrentKey(key);
            Assert.Equal(model.Values.TryGetValue(key, out var value), balance.TryGet(out var restored));
            Assert.Equal(value, restored);
            var expectedTags = model.Maps.TryGetValue(key, out var map) ? map.OrderBy(static e => e.Key, StringComparer.Ordinal).ToList() : [];
            Assert.Equal(expectedTags, tags.Entries().OrderBy(static e => e.Key, StringComparer.Ordinal).ToList());
            Assert.Equal(model.Lists.TryGetValue(key, out var list) ? list : [], events.Get());
        }

        Assert.True(checkedKeys > 0, $"no key fell into {range}");
        var timers = new HashSet<(long, string)>();
        while (backend.TryPopDueTimer(long.MaxValue, out var timestamp))
        {
            Assert.True(timers.Add((timestamp, backend.CurrentKey)));
        }

        Assert.Equal(model.Timers.Where(t => range.Contains(KeyGroupOf(t.Key))).Order().ToList(), timers.Order().ToList());
    }

    /// <summary>What the test wrote, kept independently of the code under test.</summary>
    private sealed class Model
    {
        public Dictionary<string, long> Values { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, Dictionary<string, int>> Maps { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, List<int>> Lists { get; } = new(StringComparer.Ordinal);

        public HashSet<(long Timestamp, string Key)> Timers { get; } = [];

        /// <summary>Number of RocksDB entries (over all states and timers) of the keys in <paramref name="range"/>.</summary>
        public long EntriesIn(KeyGroupRange range) =>
            Values.Keys.Count(k => range.Contains(KeyGroupOf(k)))
            + Maps.Where(m => range.Contains(KeyGroupOf(m.Key))).Sum(static m => m.Value.Count)
            + Lists.Keys.Count(k => range.Contains(KeyGroupOf(k)))
            + Timers.Count(t => range.Contains(KeyGroupOf(t.Key)));
    }

    /// <summary>
    /// Storage whose downloads wait until <see cref="Release"/>, and which records every path it downloads; it declines
    /// links, so that every file a restore takes from storage is downloaded (held and recorded).
    /// </summary>
    private sealed class HeldDownloads(ICheckpointStorage inner, bool fail = false) : DelegatingCheckpointStorage(inner)
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _downloaded = new();

        public IReadOnlyCollection<string> Downloaded => _downloaded;

        public void Release() => _released.TrySetResult();

        public override async Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
        {
            _downloaded.Enqueue(path);
            await _released.Task.WaitAsync(cancellationToken);
            if (fail)
            {
                throw new CheckpointObjectNotFoundException(path, Location);
            }

            await base.DownloadFileAsync(path, localPath, expected, cancellationToken);
        }

        public override Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) => Task.FromResult(false);
    }
}
