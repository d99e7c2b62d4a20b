using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Storage;

/// <summary>
/// Hard-linking is a capability of filesystem storage that wrappers pass through: a restore through a
/// <see cref="DelegatingCheckpointStorage"/> (fault injection, metering) links SSTs as it would from the storage itself.
/// </summary>
public sealed class DelegatingCheckpointStorageTests : IDisposable
{
    private const int MaxParallelism = 128;
    private static readonly KeyGroupRange AllKeyGroups = new(0, MaxParallelism - 1);
    private static readonly ValueStateDescriptor<long> Count = new("count");
    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 8 << 20, WriteBufferBytes = 16 << 20, ColumnFamilyWriteBufferBytes = 8 << 20, BackgroundThreads = 1 });

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task A_restore_through_a_wrapper_of_filesystem_storage_links_the_ssts_instead_of_downloading_them()
    {
        var storage = new MeteredStorage(new FileSystemCheckpointStorage(_directory.Sub("storage")));
        var handle = await SnapshotAsync(storage);
        var ssts = handle.Files.Where(static f => f.IsSst).ToList();

        var progress = await KeyedStateRestorer.RestoreAsync(handle, 1, storage, _directory.Sub("restored"), localCopy: null, progress: null, CancellationToken.None);

        Assert.NotEmpty(ssts);
        Assert.Equal(handle.FullSize, progress.BytesDownloaded + progress.BytesLinked);
        if (OperatingSystem.IsLinux())
        {
            // Same device: every SST shares the stored file's inode; only the few other files went through downloads.
            Assert.Equal(ssts.Sum(static f => f.Length), progress.BytesLinked);
            Assert.DoesNotContain(storage.Downloaded, p => ssts.Any(f => f.Path == p));
            Assert.Equal(handle.Files.Count - ssts.Count, storage.Downloaded.Length);
        }

        AssertRestored("restored");
    }

    [Fact]
    public async Task A_wrapper_passes_on_the_inner_storage_declining_to_link()
    {
        var storage = new MeteredStorage(new FileSystemCheckpointStorage(_directory.Sub("storage")) { LinkOnRestore = false });
        var handle = await SnapshotAsync(storage);

        var progress = await KeyedStateRestorer.RestoreAsync(handle, 1, storage, _directory.Sub("restored"), localCopy: null, progress: null, CancellationToken.None);

        Assert.Equal(0, progress.BytesLinked);
        Assert.Equal(handle.FullSize, progress.BytesDownloaded);
        Assert.Equal(handle.Files.Count, storage.Downloaded.Length);
        AssertRestored("restored");
    }

    private async Task<KeyedStateHandle> SnapshotAsync(ICheckpointStorage storage)
    {
        using var backend = OpenBackend("work");
        var count = backend.GetValueState(Count);
        for (var key = 0; key < 3_000; key++)
        {
            backend.SetCurrentKey($"key-{key}");
            count.Update(key);
        }

        var snapshotter = new IncrementalSnapshotter(backend, storage, new SnapshotOwner("job-1", "counts", 0, AllKeyGroups), _directory.Sub("local"), restored: null, keepLocalCopies: false);
        return (await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), CancellationToken.None)).Handle;
    }

    private void AssertRestored(string name)
    {
        using var restored = OpenBackend(name);
        var count = restored.GetValueState(Count);
        foreach (var key in new[] { 0, 1_234, 2_999 })
        {
            restored.SetCurrentKey($"key-{key}");
            Assert.Equal(key, count.Get());
        }
    }

    private RocksDbKeyedStateBackend<string> OpenBackend(string name) => new(
        new KeyedStateBackendOptions { Directory = _directory.Sub(name), KeyGroups = AllKeyGroups, MaxParallelism = MaxParallelism, CacheCapacity = 0 },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    /// <summary>A metering wrapper, as tests and benchmarks use: it records every path it downloads and overrides nothing else.</summary>
    private sealed class MeteredStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _downloaded = new();

        public string[] Downloaded => [.. _downloaded];

        public override Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
        {
            _downloaded.Enqueue(path);
            return base.DownloadFileAsync(path, localPath, expected, cancellationToken);
        }
    }
}
