using StreamGrains.Snapshots;
using StreamGrains.State.Restore;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Restore;

/// <summary>
/// Which way a restore request takes (native from the local copy or from storage, rescaling, canonical, changelog replay
/// after the files) and how its failures are classified, against real RocksDB and filesystem storage. The snapshots are
/// taken through <see cref="OperatorKeyedState"/> as a subtask takes them; the expected state is kept by the test.
/// </summary>
public sealed class KeyedStateRestoreTests : IDisposable
{
    private const int MaxParallelism = 128;
    private const int Keys = 3_000;
    private static readonly KeyGroupRange AllKeyGroups = new(0, MaxParallelism - 1);
    private static readonly KeyGroupRange Lower = new(0, 63);
    private static readonly KeyGroupRange Upper = new(64, 127);
    private static readonly ValueStateDescriptor<long> Count = new("count");
    private static readonly CheckpointSettings Incremental = TestCheckpointSettings.Incremental;
    private static readonly CheckpointSettings Changelog = TestCheckpointSettings.Changelog;

    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 8 << 20, WriteBufferBytes = 32 << 20, ColumnFamilyWriteBufferBytes = 8 << 20, BackgroundThreads = 1 });
    private readonly FileSystemCheckpointStorage _storage;

    public KeyedStateRestoreTests() => _storage = new FileSystemCheckpointStorage(_directory.Sub("storage"));

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task The_same_key_groups_restore_from_the_local_copy_when_local_recovery_kept_one()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 7);

        await using var restored = await OpenAsync("restored", AllKeyGroups, Incremental, new SnapshotToRestore(1, [part], OwnsFiles: true));

        Assert.Equal(KeyedStateRestoreKind.Native, restored.Restored.Kind);
        Assert.Equal(0, restored.Restored.Files!.BytesDownloaded);
        Assert.Equal(0, restored.Restored.Files.BytesLinked);
        Assert.Equal(part.KeyedState!.FullSize, restored.Restored.Files.BytesDone);
        Assert.Same(part.KeyedState, restored.Restored.OwnedHandle);
        AssertCounts(restored.Backend, AllKeyGroups, value: 7);
    }

    [Fact]
    public async Task The_same_key_groups_restore_from_storage_without_a_complete_local_copy()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 7);
        var handle = part.KeyedState!;

        // Local recovery off: storage, even though the local copy is there.
        await using (var restored = await OpenAsync("no-local-recovery", AllKeyGroups, Incremental with { LocalRecovery = false }, new SnapshotToRestore(1, [part], OwnsFiles: false)))
        {
            Assert.Equal(KeyedStateRestoreKind.Native, restored.Restored.Kind);
            Assert.True(restored.Restored.Files!.BytesDownloaded > 0, "nothing was downloaded");
            Assert.Equal(handle.FullSize, restored.Restored.Files.BytesDownloaded + restored.Restored.Files.BytesLinked);
            Assert.Null(restored.Restored.OwnedHandle);
            AssertCounts(restored.Backend, AllKeyGroups, value: 7);
        }

        // A local copy that lacks a file: storage.
        File.Delete(Path.Combine(IncrementalSnapshotter.LocalCheckpointDirectory(LocalRoot(AllKeyGroups), 1), handle.Files.First(static f => f.IsSst).Name));
        await using (var restored = await OpenAsync("incomplete-copy", AllKeyGroups, Incremental, new SnapshotToRestore(1, [part], OwnsFiles: true)))
        {
            Assert.Equal(KeyedStateRestoreKind.Native, restored.Restored.Kind);
            Assert.Equal(handle.FullSize, restored.Restored.Files!.BytesDownloaded + restored.Restored.Files.BytesLinked);
            Assert.Same(handle, restored.Restored.OwnedHandle);
            AssertCounts(restored.Backend, AllKeyGroups, value: 7);
        }
    }

    [Fact]
    public async Task Downloads_start_with_the_largest_file_so_that_parallel_transfers_end_together()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 7);
        var handle = part.KeyedState!;
        var recording = new RecordingStorage(_storage);

        await KeyedStateRestorer.RestoreAsync(handle, 1, recording, _directory.Sub("largest-first"), localCopy: null, progress: null, CancellationToken.None);

        Assert.Equal(handle.Files.Count, recording.Started.Count);
        Assert.Equal(handle.Files.MaxBy(static f => f.Length)!.Path, recording.Started.First());
    }

    [Theory]
    [InlineData(32, 95)]
    [InlineData(0, 127)]
    public async Task Other_key_groups_take_the_rescaling_restore(int start, int end)
    {
        var target = new KeyGroupRange(start, end);
        var parts = new[] { await CheckpointAsync(Lower, Incremental, value: 3), await CheckpointAsync(Upper, Incremental, value: 3) };

        await using var restored = await OpenAsync("rescaled", target, Incremental, new SnapshotToRestore(1, parts, OwnsFiles: true));

        Assert.Equal(KeyedStateRestoreKind.Rescaling, restored.Restored.Kind);
        Assert.True(restored.Restored.Files!.Completed);
        Assert.Null(restored.Restored.OwnedHandle);
        AssertCounts(restored.Backend, target, value: 3);
    }

    [Fact]
    public async Task Canonical_parts_take_the_canonical_restore()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 5, new SnapshotOptions { Format = SavepointFormat.Canonical, SavepointDirectory = "savepoints/sp-1" });
        Assert.NotNull(part.CanonicalState);

        await using var restored = await OpenAsync("canonical", Lower, Incremental, new SnapshotToRestore(1, [part], OwnsFiles: false));

        Assert.Equal(KeyedStateRestoreKind.Canonical, restored.Restored.Kind);
        Assert.Equal(part.CanonicalState.File.Length, restored.Restored.Files!.BytesDownloaded);
        Assert.Null(restored.Restored.OwnedHandle);
        AssertCounts(restored.Backend, Lower, value: 5);
        Assert.False(Directory.Exists(Directories("canonical", Lower).CanonicalRestoreScratch), "the canonical downloads were left behind");
    }

    [Fact]
    public async Task A_snapshot_mixing_canonical_and_native_parts_fails_before_anything_is_opened()
    {
        var canonical = await CheckpointAsync(Lower, Incremental, value: 1, new SnapshotOptions { Format = SavepointFormat.Canonical, SavepointDirectory = "savepoints/sp-1" });
        var native = await CheckpointAsync(Upper, Incremental, value: 1);
        var opened = 0;

        var error = await Assert.ThrowsAsync<RestoreException>(() => KeyedStateRestore.RestoreAsync(
            Request("mixed", AllKeyGroups, Incremental, new SnapshotToRestore(1, [canonical, native], OwnsFiles: false)),
            () =>
            {
                opened++;
                return OpenBackend("mixed", AllKeyGroups);
            }));

        Assert.Equal("Operator 'counts': snapshot 1 mixes canonical and native state.", error.Message);
        Assert.Equal(0, opened);
    }

    [Fact]
    public async Task Changelog_parts_are_replayed_after_the_files_and_the_restore_completes_only_then()
    {
        var (part, expected) = await ChangelogCheckpointsAsync(rounds: 2);
        var progress = new RecordingProgress();

        await using var restored = await OpenAsync("replayed", AllKeyGroups, Changelog, new SnapshotToRestore(2, [part], OwnsFiles: true), progress: progress);

        var handle = part.KeyedState!;
        Assert.Equal(KeyedStateRestoreKind.Native, restored.Restored.Kind);
        Assert.NotEmpty(handle.Changelog!);
        Assert.Equal(handle.Changelog!.Count, restored.Restored.ChangelogSegments);
        Assert.True(restored.Restored.ChangesReplayed > 0, "no change was replayed");
        AssertCounts(restored.Backend, AllKeyGroups, expected);

        var reports = progress.Reports;
        var last = reports[^1];
        Assert.True(last.Completed);
        Assert.Equal(handle.Changelog.Count, last.ChangelogSegmentsTotal);
        Assert.Equal(last.ChangelogSegmentsTotal, last.ChangelogSegmentsDone);
        Assert.NotNull(last.FilesRestoredAt);
        Assert.All(reports.SkipLast(1), static r => Assert.False(r.Completed, $"completed before the changelog was replayed: {r}"));
    }

    [Fact]
    public async Task A_missing_or_corrupt_file_is_a_restore_error()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 2);
        var restore = new SnapshotToRestore(1, [part], OwnsFiles: true);
        var noLocalCopy = Incremental with { LocalRecovery = false };
        var stored = Path.Combine(_directory.Sub("storage"), part.KeyedState!.Files.First(static f => f.IsSst).Path);
        var bytes = await File.ReadAllBytesAsync(stored);
        bytes[bytes.Length / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(stored, bytes);

        var corrupt = await Assert.ThrowsAsync<RestoreException>(() => OpenAsync("corrupt", AllKeyGroups, noLocalCopy, restore));
        File.Delete(stored);
        var missing = await Assert.ThrowsAsync<RestoreException>(() => OpenAsync("missing", AllKeyGroups, noLocalCopy, restore));

        Assert.IsType<CheckpointStorageCorruptException>(corrupt.InnerException);
        Assert.StartsWith("Operator 'counts' subtask 0 could not restore snapshot 1: ", corrupt.Message, StringComparison.Ordinal);
        Assert.IsType<CheckpointObjectNotFoundException>(missing.InnerException);
    }

    [Fact]
    public async Task A_storage_failure_that_says_nothing_about_the_snapshot_interrupts_the_restore()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 2);
        var unreachable = new UnreachableStorage(_storage);

        var error = await Assert.ThrowsAsync<RestoreInterruptedException>(() => OpenAsync("unreachable", AllKeyGroups, Incremental with { LocalRecovery = false }, new SnapshotToRestore(1, [part], OwnsFiles: true), unreachable));

        Assert.Equal(typeof(CheckpointStorageException), error.InnerException!.GetType());
        Assert.StartsWith("Operator 'counts' subtask 0 could not restore snapshot 1 now: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Changelog_failures_are_classified_like_the_files_and_close_the_opened_instance()
    {
        var (part, _) = await ChangelogCheckpointsAsync(rounds: 4);
        var handle = part.KeyedState!;
        Assert.True(handle.Changelog!.Count >= 3, $"{handle.Changelog.Count} segments");

        // A segment missing from the sequence: the state cannot be read.
        var gap = part with { KeyedState = handle with { Changelog = [handle.Changelog[0], .. handle.Changelog.Skip(2)] } };
        var unreadable = await Assert.ThrowsAsync<RestoreException>(() => OpenAsync("gap", AllKeyGroups, Changelog, new SnapshotToRestore(4, [gap], OwnsFiles: true)));
        Assert.IsType<StateFormatException>(unreadable.InnerException);
        Assert.StartsWith("Operator 'counts' subtask 0 could not read snapshot 4: ", unreadable.Message, StringComparison.Ordinal);

        // Storage unreachable while the segments download: the same snapshot may restore later.
        var interrupted = await Assert.ThrowsAsync<RestoreInterruptedException>(() => OpenAsync("segments-unreachable", AllKeyGroups, Changelog, new SnapshotToRestore(4, [part], OwnsFiles: true), new UnreachableStorage(_storage, onlyUnder: "/log/")));
        Assert.StartsWith("Operator 'counts' subtask 0 could not replay the changelog of snapshot 4 now: ", interrupted.Message, StringComparison.Ordinal);

        // A segment missing from storage.
        await _storage.DeleteAsync(handle.Changelog[1].Path, CancellationToken.None);
        var missing = await Assert.ThrowsAsync<RestoreException>(() => OpenAsync("segment-missing", AllKeyGroups, Changelog, new SnapshotToRestore(4, [part], OwnsFiles: true)));
        Assert.IsType<CheckpointObjectNotFoundException>(missing.InnerException);
        Assert.StartsWith("Operator 'counts' subtask 0 could not replay the changelog of snapshot 4: ", missing.Message, StringComparison.Ordinal);

        // The instances the failed replays opened were closed: their directories open again.
        using (OpenBackend("segments-unreachable", AllKeyGroups))
        using (OpenBackend("segment-missing", AllKeyGroups))
        {
        }
    }

    [Fact]
    public async Task A_canonical_file_that_cannot_be_read_is_a_restore_error()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 2, new SnapshotOptions { Format = SavepointFormat.Canonical, SavepointDirectory = "savepoints/sp-1" });
        var file = part.CanonicalState!.File;

        // Stored intact (its checksum matches), but not a canonical state file.
        var garbage = new byte[4096];
        new Random(21).NextBytes(garbage);
        await _storage.WriteAsync(file.Path, garbage, overwrite: true, CancellationToken.None);
        var rewritten = part with { CanonicalState = part.CanonicalState with { File = file with { Length = garbage.Length, Checksum = Checksums.Of(garbage) } } };

        var error = await Assert.ThrowsAsync<RestoreException>(() => OpenAsync("garbage", AllKeyGroups, Incremental, new SnapshotToRestore(1, [rewritten], OwnsFiles: false)));

        Assert.IsType<CanonicalFormatException>(error.InnerException);
        Assert.StartsWith("Operator 'counts' subtask 0 could not read snapshot 1: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_snapshot_to_restore_without_storage_is_a_restore_error()
    {
        var part = await CheckpointAsync(AllKeyGroups, Incremental, value: 2);

        var error = await Assert.ThrowsAsync<RestoreException>(() => KeyedStateRestore.RestoreAsync(
            Request("no-storage", AllKeyGroups, Incremental, new SnapshotToRestore(1, [part], OwnsFiles: true)) with { Storage = null },
            () => OpenBackend("no-storage", AllKeyGroups)));

        Assert.Equal("No checkpoint storage is configured to restore from.", error.Message);
    }

    [Fact]
    public async Task Without_a_snapshot_or_with_no_part_of_it_the_state_starts_empty()
    {
        await using var fresh = await OpenAsync("fresh", AllKeyGroups, Incremental, restore: null);
        await using var empty = await OpenAsync("empty", AllKeyGroups, Incremental, new SnapshotToRestore(1, [], OwnsFiles: true));

        Assert.Same(KeyedStateRestoreResult.Nothing, fresh.Restored);
        Assert.Same(KeyedStateRestoreResult.Nothing, empty.Restored);
        fresh.Backend.SetCurrentKey("key-1");
        Assert.False(fresh.Backend.GetValueState(Count).TryGet(out _));
    }

    /// <summary>The value of key <paramref name="key"/> after round <paramref name="round"/> of the changelog checkpoints.</summary>
    private static long RoundValue(int key, int round) => (key % (round + 1) == 0) ? round * 1_000L : key;

    private static void AssertCounts(IKeyedStateBackend<string> backend, KeyGroupRange keyGroups, long value) =>
        AssertCounts(backend, keyGroups, Enumerable.Range(0, Keys).ToDictionary(static k => k, _ => value));

    private static void AssertCounts(IKeyedStateBackend<string> backend, KeyGroupRange keyGroups, Dictionary<int, long> expected)
    {
        var count = backend.GetValueState(Count);
        var checkedKeys = 0;
        foreach (var (key, value) in expected)
        {
            if (keyGroups.Contains(KeyGroupOf(key)))
            {
                backend.SetCurrentKey($"key-{key}");
                Assert.Equal(value, count.Get());
                checkedKeys++;
            }
        }

        Assert.True(checkedKeys > 0, "no key of the key groups was checked");
    }

    private static int KeyGroupOf(int key) => TestEnvironment.KeyGroupOfString($"key-{key}", MaxParallelism);

    private static void Write(IKeyedStateBackend<string> backend, Func<int, long?> valueOf)
    {
        var count = backend.GetValueState(Count);
        for (var key = 0; key < Keys; key++)
        {
            if (backend.KeyGroupRange.Contains(KeyGroupOf(key)) && valueOf(key) is { } value)
            {
                backend.SetCurrentKey($"key-{key}");
                count.Update(value);
            }
        }
    }

    private static async Task<OperatorSubtaskState> SnapshotAsync<TKey>(OperatorKeyedState<TKey> state, long checkpointId, SnapshotOptions options)
        where TKey : notnull
    {
        var result = await state.Snapshot(checkpointId, options)!(CancellationToken.None);
        state.Completed(checkpointId);
        return result.State;
    }

    /// <summary>Writes every key of <paramref name="keyGroups"/> with <paramref name="value"/> and takes snapshot 1 of them.</summary>
    private async Task<OperatorSubtaskState> CheckpointAsync(KeyGroupRange keyGroups, CheckpointSettings checkpointing, long value, SnapshotOptions? options = null)
    {
        await using var state = await OpenAsync($"source-{keyGroups.Start}", keyGroups, checkpointing, restore: null);
        Write(state.Backend, _ => value);
        return await SnapshotAsync(state, 1, options ?? SnapshotOptions.Checkpoint);
    }

    /// <summary>
    /// Changelog mode: round 1 is materialized by checkpoint 1; rounds 2..<paramref name="rounds"/> each change some keys
    /// and end with checkpoint n, so the last checkpoint's handle has one changelog segment per later round.
    /// </summary>
    private async Task<(OperatorSubtaskState Part, Dictionary<int, long> Expected)> ChangelogCheckpointsAsync(int rounds)
    {
        var expected = new Dictionary<int, long>();
        await using var state = await OpenAsync("source-changelog", AllKeyGroups, Changelog, restore: null);
        OperatorSubtaskState? part = null;
        for (var round = 1; round <= rounds; round++)
        {
            var current = round;
            Write(state.Backend, key => current == 1 || key % (current + 1) == 0 ? RoundValue(key, current) : null);
            foreach (var key in Enumerable.Range(0, Keys).Where(key => current == 1 || key % (current + 1) == 0))
            {
                expected[key] = RoundValue(key, current);
            }

            part = await SnapshotAsync(state, round, SnapshotOptions.Checkpoint);
        }

        return (part!, expected);
    }

    private KeyedStateDirectories Directories(string name, KeyGroupRange keyGroups) => new(Path.Combine(_directory.Sub($"work-{name}"), "counts"), LocalRoot(keyGroups));

    /// <summary>The local-recovery root of the key groups: shared by every attempt, as a subtask's is.</summary>
    private string LocalRoot(KeyGroupRange keyGroups) => Path.Combine(_directory.Sub("local"), "counts", $"kg-{keyGroups.Start}-{keyGroups.End}");

    private OperatorKeyedStateRequest Request(string name, KeyGroupRange keyGroups, CheckpointSettings checkpointing, SnapshotToRestore? restore, ICheckpointStorage? storage = null, IProgress<RestoreProgress>? progress = null) => new()
    {
        // The subtask index names private files in storage: the first key group keeps the subtasks of one snapshot apart.
        Owner = new SnapshotOwner("job-1", "counts", keyGroups.Start, keyGroups),
        MaxParallelism = MaxParallelism,
        Directories = Directories(name, keyGroups),
        Storage = storage ?? _storage,
        Resources = _resources,
        CacheCapacity = 1_000,
        Checkpointing = checkpointing,
        Restore = restore,
        Progress = progress,
    };

    private Task<OperatorKeyedState<string>> OpenAsync(string name, KeyGroupRange keyGroups, CheckpointSettings checkpointing, SnapshotToRestore? restore, ICheckpointStorage? storage = null, IProgress<RestoreProgress>? progress = null) =>
        OperatorKeyedState.OpenAsync<string>(Request(name, keyGroups, checkpointing, restore, storage, progress), TestEnvironment.Serializer);

    private RocksDbKeyedStateBackend<string> OpenBackend(string name, KeyGroupRange keyGroups) => new(
        new KeyedStateBackendOptions { Directory = Directories(name, keyGroups).Working, KeyGroups = keyGroups, MaxParallelism = MaxParallelism, CacheCapacity = 0 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    /// <summary>Storage that records the order in which downloads start, and never links (every file is downloaded).</summary>
    private sealed class RecordingStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public System.Collections.Concurrent.ConcurrentQueue<string> Started { get; } = new();

        public override Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
        {
            Started.Enqueue(path);
            return base.DownloadFileAsync(path, localPath, expected, cancellationToken);
        }

        public override Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) => Task.FromResult(false);
    }

    /// <summary>Storage whose downloads and links fail as an unreachable storage's do (optionally only for paths containing <c>onlyUnder</c>).</summary>
    private sealed class UnreachableStorage(ICheckpointStorage inner, string? onlyUnder = null) : DelegatingCheckpointStorage(inner)
    {
        public override Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) =>
            Fails(path) ? throw Unreachable(path) : base.DownloadFileAsync(path, localPath, expected, cancellationToken);

        public override Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) =>
            Fails(path) ? throw Unreachable(path) : base.TryLinkFileAsync(path, localPath, expected, cancellationToken);

        private static CheckpointStorageException Unreachable(string path) => new($"injected: the storage is unreachable (reading '{path}')", new IOException("unreachable"));

        private bool Fails(string path) => onlyUnder is null || path.Contains(onlyUnder, StringComparison.Ordinal);
    }
}
