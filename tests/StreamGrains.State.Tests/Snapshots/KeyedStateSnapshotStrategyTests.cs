using StreamGrains.Snapshots;
using StreamGrains.State.Changelog;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Snapshots;

/// <summary>
/// Which snapshot strategy <see cref="OperatorKeyedState.OpenAsync{TKey}"/> sets up for the job's checkpoint mode, and
/// that a canonical savepoint is taken on top of either one, against real RocksDB and filesystem storage.
/// </summary>
public sealed class KeyedStateSnapshotStrategyTests : IDisposable
{
    private const int MaxParallelism = 128;
    private static readonly KeyGroupRange AllKeyGroups = new(0, MaxParallelism - 1);
    private static readonly ValueStateDescriptor<long> Count = new("count");
    private static readonly CheckpointSettings Incremental = TestCheckpointSettings.Incremental;
    private static readonly CheckpointSettings Changelog = TestCheckpointSettings.Changelog;

    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 8 << 20, WriteBufferBytes = 32 << 20, ColumnFamilyWriteBufferBytes = 8 << 20, BackgroundThreads = 1 });
    private readonly FileSystemCheckpointStorage _storage;

    public KeyedStateSnapshotStrategyTests() => _storage = new FileSystemCheckpointStorage(_directory.Sub("storage"));

    private KeyedStateDirectories Directories => new(_directory.Sub("work/counts"), _directory.Sub("local/counts/kg-0-127"));

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task Incremental_mode_takes_rocksdb_checkpoints_and_keeps_their_local_copy()
    {
        await using var state = await OpenAsync(Incremental);
        Write(state.Backend, value: 1);

        var canonical = Assert.IsType<CanonicalSnapshotStrategy>(state.Snapshots);
        Assert.IsType<IncrementalSnapshotStrategy>(canonical.Checkpoints);
        var result = await state.Snapshot(1, SnapshotOptions.Checkpoint)!(CancellationToken.None);
        state.Completed(1);

        var handle = result.State.KeyedState!;
        Assert.Null(result.State.CanonicalState);
        Assert.Null(handle.MaterializationId);
        Assert.Null(handle.Changelog);
        Assert.Equal(0, result.State.SubtaskIndex);
        Assert.Equal(handle.FullSize, result.FullSize);
        Assert.Equal(handle.FullSize, result.BytesUploaded);
        Assert.Null(result.Materialization);
        Assert.True(Directory.Exists(IncrementalSnapshotter.LocalCheckpointDirectory(Directories.LocalCheckpoints, 1)), "no local copy of the checkpoint was kept");
    }

    [Fact]
    public async Task Changelog_mode_seals_the_changelog_and_refers_to_a_materialization()
    {
        await using var state = await OpenAsync(Changelog);
        Write(state.Backend, value: 1);

        var canonical = Assert.IsType<CanonicalSnapshotStrategy>(state.Snapshots);
        Assert.IsType<ChangelogSnapshotStrategy>(canonical.Checkpoints);
        var first = await state.Snapshot(1, SnapshotOptions.Checkpoint)!(CancellationToken.None);
        state.Completed(1);
        Write(state.Backend, value: 2);
        await state.AfterBatchAsync(CancellationToken.None);
        var second = await state.Snapshot(2, SnapshotOptions.Checkpoint)!(CancellationToken.None);

        Assert.NotNull(first.Materialization);
        Assert.Equal(first.Materialization.Id, second.State.KeyedState!.MaterializationId);
        Assert.NotEmpty(second.State.KeyedState.Changelog!);
        Assert.True(second.ChangelogBytes > 0, "the second checkpoint logged no change");
        Assert.Equal(second.State.KeyedState.FullSize, second.FullSize);
        Assert.Null(state.Warning);
    }

    [Theory]
    [InlineData(CheckpointMode.Incremental)]
    [InlineData(CheckpointMode.Changelog)]
    public async Task A_canonical_savepoint_writes_one_canonical_file_on_top_of_either_mode_and_deletes_its_local_view(CheckpointMode mode)
    {
        await using var state = await OpenAsync(mode == CheckpointMode.Changelog ? Changelog : Incremental);
        Write(state.Backend, value: 4);

        var result = await state.Snapshot(3, new SnapshotOptions { Format = SavepointFormat.Canonical, SavepointDirectory = "savepoints/sp-3" })!(CancellationToken.None);

        var file = result.State.CanonicalState!.File;
        Assert.Null(result.State.KeyedState);
        Assert.Equal(AllKeyGroups, result.State.CanonicalState.KeyGroups);
        Assert.Equal("savepoints/sp-3/counts/0.state", file.Path);
        Assert.True(await _storage.ExistsAsync(file.Path, CancellationToken.None));
        Assert.Equal(file.Length, result.BytesUploaded);
        Assert.Equal(file.Length, result.FullSize);
        var views = mode == CheckpointMode.Changelog ? Directories.CanonicalViews : Directories.LocalCheckpoints;
        Assert.False(Directory.Exists(IncrementalSnapshotter.LocalCheckpointDirectory(views, 3)), "the local view was left behind");
    }

    [Fact]
    public async Task Without_storage_or_with_checkpointing_off_the_state_is_not_snapshotted()
    {
        await using var off = await OpenAsync(CheckpointSettings.Disabled);
        await using var noStorage = await OpenAsync(Incremental, storage: null, name: "no-storage");

        Assert.Null(off.Snapshots);
        Assert.Null(noStorage.Snapshots);
        Assert.Null(off.Snapshot(1, SnapshotOptions.Checkpoint));
        Assert.Null(noStorage.Snapshot(1, new SnapshotOptions { Format = SavepointFormat.Canonical, SavepointDirectory = "savepoints/sp-1" }));
        await off.AfterBatchAsync(CancellationToken.None);
        await off.AbortedAsync(1, CancellationToken.None);
    }

    [Fact]
    public async Task Closing_the_state_closes_the_instance()
    {
        var state = await OpenAsync(Incremental);
        Write(state.Backend, value: 9);
        await state.Snapshot(1, SnapshotOptions.Checkpoint)!(CancellationToken.None);

        await state.DisposeAsync();

        // RocksDB allows one open instance per directory in a process: it opens again only once closed.
        using var reopened = new RocksDbKeyedStateBackend<string>(
            new KeyedStateBackendOptions { Directory = Directories.Working, KeyGroups = AllKeyGroups, MaxParallelism = MaxParallelism, CacheCapacity = 0 },
            KeySerializers.For<string>(null, TestEnvironment.Serializer),
            TestEnvironment.Serializer,
            _resources);
        reopened.SetCurrentKey("key-1");
        Assert.Equal(9, reopened.GetValueState(Count).Get());
    }

    private static void Write(IKeyedStateBackend<string> backend, long value)
    {
        var count = backend.GetValueState(Count);
        for (var key = 0; key < 2_000; key++)
        {
            backend.SetCurrentKey($"key-{key}");
            count.Update(value);
        }
    }

    private Task<OperatorKeyedState<string>> OpenAsync(CheckpointSettings checkpointing) => OpenAsync(checkpointing, _storage);

    private Task<OperatorKeyedState<string>> OpenAsync(CheckpointSettings checkpointing, ICheckpointStorage? storage, string name = "work") =>
        OperatorKeyedState.OpenAsync<string>(
            new OperatorKeyedStateRequest
            {
                Owner = new SnapshotOwner("job-1", "counts", 0, AllKeyGroups),
                MaxParallelism = MaxParallelism,
                Directories = name == "work" ? Directories : Directories with { Working = _directory.Sub($"{name}/counts") },
                Storage = storage,
                Resources = _resources,
                CacheCapacity = 1_000,
                Checkpointing = checkpointing,
            },
            TestEnvironment.Serializer);
}
