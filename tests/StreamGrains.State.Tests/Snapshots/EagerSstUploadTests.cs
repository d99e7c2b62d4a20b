using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Snapshots;

/// <summary>Eager uploads: SST files compactions write reach storage before a checkpoint needs them, and no checkpoint loses one.</summary>
public sealed class EagerSstUploadTests : IDisposable
{
    private const int MaxParallelism = 128;
    private const int Keys = 50_000;
    private static readonly KeyGroupRange AllKeyGroups = new(0, MaxParallelism - 1);
    private static readonly ValueStateDescriptor<long> Count = new("count");
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 16 << 20, WriteBufferBytes = 64 << 20, ColumnFamilyWriteBufferBytes = 32 << 20, BackgroundThreads = 1 });
    private readonly FileSystemCheckpointStorage _storage;

    public EagerSstUploadTests() => _storage = new FileSystemCheckpointStorage(_directory.Sub("storage"));

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task Files_compactions_wrote_are_in_storage_before_the_checkpoint_which_uploads_only_its_flush()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend);
        await using (snapshotter)
        {
            WriteAndCompact(backend, value: 1);
            await IdleAsync(snapshotter);
            var early = snapshotter.EagerBytesUploaded;
            Write(backend, Enumerable.Range(0, 100), value: 2);

            var checkpoint = await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None);

            Assert.True(early > 500_000, $"only {early} bytes were uploaded ahead of the checkpoint");
            Assert.True(checkpoint.BytesUploaded < early / 10, $"the checkpoint uploaded {checkpoint.BytesUploaded} bytes itself, {early} were uploaded ahead");
            Assert.Contains(checkpoint.Handle.Files, static f => f.Sst is { Level: >= 1 });
            var restored = await RestoreAsync(checkpoint.Handle, "restored");
            Assert.Equal(Enumerable.Range(0, Keys).Select(static k => k < 100 ? 2L : 1L), restored);
        }
    }

    [Fact]
    public async Task A_file_a_pending_checkpoint_took_outlives_its_compaction_and_goes_only_when_that_checkpoint_is_aborted()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend);
        await using (snapshotter)
        {
            WriteAndCompact(backend, value: 1);
            await IdleAsync(snapshotter);
            var pending = await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None);
            var taken = EagerFiles(pending.Handle);

            // Rewrites every file the checkpoint took: RocksDB no longer lists them.
            WriteAndCompact(backend, value: 2);
            await IdleAsync(snapshotter);
            Assert.DoesNotContain(NativeExtensions.LiveFiles(backend.Database), f => taken.Any(t => t.Name == f.Name));
            foreach (var file in taken)
            {
                Assert.True(await _storage.ExistsAsync(file.Path, CancellationToken.None), $"{file.Path}, which pending checkpoint 1 refers to, was deleted");
            }

            await snapshotter.AbortedAsync(1, CancellationToken.None);
            await IdleAsync(snapshotter);
            foreach (var file in taken)
            {
                Assert.False(await _storage.ExistsAsync(file.Path, CancellationToken.None), $"{file.Path} outlived the abort of the only checkpoint that took it");
            }
        }
    }

    [Fact]
    public async Task A_completed_checkpoints_files_stay_and_uploads_nobody_took_are_deleted_on_disposal()
    {
        using var backend = OpenBackend("work");
        var snapshotter = NewSnapshotter(backend);
        KeyedStateHandle completed;
        long untakenBytes;
        await using (snapshotter)
        {
            WriteAndCompact(backend, value: 1);
            await IdleAsync(snapshotter);
            completed = (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None)).Handle;
            snapshotter.Completed(1);
            var before = snapshotter.EagerBytesUploaded;

            WriteAndCompact(backend, value: 2);
            await IdleAsync(snapshotter);
            untakenBytes = snapshotter.EagerBytesUploaded - before;
        }

        Assert.True(untakenBytes > 100_000, $"the second compaction's output was not uploaded ahead ({untakenBytes} bytes)");
        var completedPaths = completed.Files.Select(static f => f.Path).ToHashSet(StringComparer.Ordinal);
        var left = new List<string>();
        await foreach (var stored in _storage.ListAsync("job-1/shared", CancellationToken.None))
        {
            left.Add(stored.Path);
        }

        Assert.Equal(completed.Files.Where(static f => f.Shared).Select(static f => f.Path).Order(StringComparer.Ordinal), left.Order(StringComparer.Ordinal));
        Assert.All(left, p => Assert.Contains(p, completedPaths));
        Assert.Equal(Enumerable.Repeat(1L, Keys), await RestoreAsync(completed, "restored"));
    }

    private static List<StateFile> EagerFiles(KeyedStateHandle handle)
    {
        var files = handle.Files.Where(static f => f.Sst is { Level: >= 1 }).ToList();
        Assert.NotEmpty(files);
        return files;
    }

    private static async Task IdleAsync(IncrementalSnapshotter snapshotter)
    {
        using var timeout = new CancellationTokenSource(Patience);
        await snapshotter.EagerUploadsIdleAsync(timeout.Token);
    }

    private static void WriteAndCompact(RocksDbKeyedStateBackend<string> backend, long value)
    {
        Write(backend, Enumerable.Range(0, Keys), value);
        backend.Flush();
        backend.Database.CompactRange(null, null, backend.Database.GetColumnFamily(Count.Name));
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

    private async Task<List<long>> RestoreAsync(KeyedStateHandle handle, string name)
    {
        await KeyedStateRestorer.RestoreAsync(handle, 1, _storage, _directory.Sub(name), localCopy: null, progress: null, CancellationToken.None);
        using var restored = OpenBackend(name);
        var count = restored.GetValueState(Count);
        var values = new List<long>();
        for (var key = 0; key < Keys; key++)
        {
            restored.SetCurrentKey($"key-{key}");
            values.Add(count.TryGet(out var value) ? value : -1);
        }

        return values;
    }

    private RocksDbKeyedStateBackend<string> OpenBackend(string name) => new(
        new KeyedStateBackendOptions { Directory = _directory.Sub(name), KeyGroups = AllKeyGroups, MaxParallelism = MaxParallelism, CacheCapacity = 1_000 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    private IncrementalSnapshotter NewSnapshotter(RocksDbKeyedStateBackend<string> backend)
    {
        var snapshotter = new IncrementalSnapshotter(backend, _storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local"), restored: null, keepLocalCopies: true, eager: new EagerUploadOptions(TimeSpan.FromMilliseconds(10), _directory.Sub("eager")));
        snapshotter.StartEagerUploads();
        return snapshotter;
    }
}
