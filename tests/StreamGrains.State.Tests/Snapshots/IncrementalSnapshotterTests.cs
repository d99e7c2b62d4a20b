using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Snapshots;

public sealed class IncrementalSnapshotterTests : IDisposable
{
    private const int MaxParallelism = 128;
    private static readonly KeyGroupRange AllKeyGroups = new(0, MaxParallelism - 1);
    private static readonly ValueStateDescriptor<long> Count = new("count");
    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 16 << 20, WriteBufferBytes = 64 << 20, ColumnFamilyWriteBufferBytes = 32 << 20, BackgroundThreads = 1 });
    private readonly FileSystemCheckpointStorage _storage;

    public IncrementalSnapshotterTests() => _storage = new FileSystemCheckpointStorage(_directory.Sub("storage"));

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task After_updating_one_percent_of_the_keys_the_next_checkpoint_uploads_less_than_ten_percent()
    {
        const int Keys = 100_000;
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend, restored: null);
        Write(backend, Enumerable.Range(0, Keys), value: 1);

        var first = await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None);
        snapshotter.Completed(1);
        Write(backend, Enumerable.Range(0, Keys / 100).Select(static i => i * 100), value: 2);
        var second = await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(2), CancellationToken.None);

        Assert.True(first.BytesUploaded > 500_000, $"the first checkpoint uploaded only {first.BytesUploaded} bytes");
        Assert.True(second.BytesUploaded < first.BytesUploaded / 10, $"the second checkpoint uploaded {second.BytesUploaded} bytes, the first {first.BytesUploaded}");
        Assert.True(second.Handle.FullSize > first.Handle.FullSize, "the second checkpoint must still reference the first one's files");
        var reused = first.Handle.Files.Where(static f => f.Shared).Select(static f => f.Path).ToHashSet();
        Assert.Contains(second.Handle.Files, f => reused.Contains(f.Path));
    }

    [Fact]
    public async Task A_restored_instance_has_exactly_the_checkpointed_state_and_timers()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend, restored: null);
        Write(backend, Enumerable.Range(0, 5_000), value: 7);
        backend.SetCurrentKey("key-42");
        backend.RegisterProcessingTimeTimer(1234);
        var handle = (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None)).Handle;
        Write(backend, Enumerable.Range(0, 10), value: 99);

        var progress = await KeyedStateRestorer.RestoreAsync(handle, 1, _storage, _directory.Sub("restored"), localCopy: null, progress: null, CancellationToken.None);
        using var restored = OpenBackend("restored");

        Assert.True(progress.Completed);
        Assert.Equal(handle.FullSize, progress.BytesDownloaded + progress.BytesLinked);
        if (OperatingSystem.IsLinux())
        {
            // Filesystem storage on the same device: the SSTs are linked, the few other files copied.
            Assert.Equal(handle.Files.Where(static f => f.Name.EndsWith(".sst", StringComparison.Ordinal)).Sum(static f => f.Length), progress.BytesLinked);
            Assert.True(progress.BytesLinked > 0, "no SST was linked");
        }

        Assert.Equal(handle.Files.Count, progress.FilesDone);
        var count = restored.GetValueState(Count);
        foreach (var key in Enumerable.Range(0, 5_000))
        {
            restored.SetCurrentKey($"key-{key}");
            Assert.Equal(7, count.Get());
        }

        restored.SetCurrentKey("key-5000");
        Assert.False(count.TryGet(out _));
        Assert.Equal(1234, restored.NextTimerTimestamp);
    }

    [Fact]
    public async Task Restoring_from_the_local_copy_downloads_nothing()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend, restored: null);
        Write(backend, Enumerable.Range(0, 2_000), value: 3);
        var handle = (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(5), CancellationToken.None)).Handle;
        snapshotter.Completed(5);

        var local = IncrementalSnapshotter.LocalCheckpointDirectory(_directory.Sub("local"), 5);

        // Reading where each SST sits opened the local copy read-only; that left no file of its own there.
        Assert.Equal(handle.Files.Select(static f => f.Name).Order(StringComparer.Ordinal), Directory.EnumerateFiles(local).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.All(handle.Files.Where(static f => f.Name.EndsWith(".sst", StringComparison.Ordinal)), static f => Assert.NotNull(f.Sst));
        var progress = await KeyedStateRestorer.RestoreAsync(handle, 5, _storage, _directory.Sub("restored"), local, progress: null, CancellationToken.None);
        using var restored = OpenBackend("restored");

        Assert.Equal(0, progress.BytesDownloaded);
        Assert.Equal(handle.FullSize, progress.BytesDone);
        restored.SetCurrentKey("key-1999");
        Assert.Equal(3, restored.GetValueState(Count).Get());
    }

    [Fact]
    public async Task A_corrupt_or_missing_file_in_storage_fails_the_restore()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend, restored: null);
        Write(backend, Enumerable.Range(0, 2_000), value: 3);
        var handle = (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None)).Handle;
        var sst = handle.Files.First(static f => f.Shared);
        var stored = Path.Combine(_directory.Sub("storage"), sst.Path);
        var bytes = await File.ReadAllBytesAsync(stored);
        bytes[bytes.Length / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(stored, bytes);

        await Assert.ThrowsAsync<CheckpointStorageCorruptException>(() => KeyedStateRestorer.RestoreAsync(handle, 1, _storage, _directory.Sub("a"), null, null, CancellationToken.None));
        File.Delete(stored);
        await Assert.ThrowsAsync<CheckpointObjectNotFoundException>(() => KeyedStateRestorer.RestoreAsync(handle, 1, _storage, _directory.Sub("b"), null, null, CancellationToken.None));
    }

    [Fact]
    public async Task An_aborted_checkpoint_deletes_what_it_uploaded_and_its_local_copy()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend, restored: null);
        Write(backend, Enumerable.Range(0, 1_000), value: 1);
        var handle = (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(3), CancellationToken.None)).Handle;

        await snapshotter.AbortedAsync(3, CancellationToken.None);

        foreach (var file in handle.Files)
        {
            Assert.False(await _storage.ExistsAsync(file.Path, CancellationToken.None), $"{file.Path} survived the abort");
        }

        Assert.False(Directory.Exists(IncrementalSnapshotter.LocalCheckpointDirectory(_directory.Sub("local"), 3)));
    }

    [Fact]
    public async Task A_checkpoint_reuses_only_files_of_a_completed_checkpoint()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend, restored: null);
        Write(backend, Enumerable.Range(0, 5_000), value: 1);
        var aborted = (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None)).Handle;
        await snapshotter.AbortedAsync(1, CancellationToken.None);

        var next = await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(2), CancellationToken.None);

        Assert.DoesNotContain(next.Handle.Files, f => aborted.Files.Any(a => a.Path == f.Path));
        foreach (var file in next.Handle.Files)
        {
            Assert.True(await _storage.ExistsAsync(file.Path, CancellationToken.None));
        }
    }

    private static void Write(RocksDbKeyedStateBackend<string> backend, IEnumerable<int> keys, long value)
    {
        var count = backend.GetValueState(Count);
        foreach (var key in keys)
        {
            backend.SetCurrentKey($"key-{key}");
            count.Update(value);
        }
    }

    private RocksDbKeyedStateBackend<string> OpenBackend(string name) => new(
        new KeyedStateBackendOptions { Directory = _directory.Sub(name), KeyGroups = AllKeyGroups, MaxParallelism = MaxParallelism, CacheCapacity = 1_000 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    private IncrementalSnapshotter NewSnapshotter(RocksDbKeyedStateBackend<string> backend, KeyedStateHandle? restored) =>
        new(backend, _storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local"), restored, keepLocalCopies: true);
}
