using System.Text;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Tests;

/// <summary>The write-back cache of <see cref="RocksDbKeyedStateBackend{TKey}"/>: bounded, and written back by Flush.</summary>
public sealed class RocksDbWriteBackCacheTests : IDisposable
{
    private static readonly ValueStateDescriptor<int> Count = new("count");
    private static readonly ListStateDescriptor<int> History = new("history");
    private static readonly ReducingStateDescriptor<long> Sum = new("sum", static (a, b) => a + b);

    private readonly TempDirectory _directory = new();
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions { BlockCacheBytes = 4 << 20, WriteBufferBytes = 4 << 20, ColumnFamilyWriteBufferBytes = 1 << 20, BackgroundThreads = 1 });

    public void Dispose()
    {
        _resources.Dispose();
        _directory.Dispose();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(50)]
    public void The_cache_never_holds_more_entries_than_its_capacity(int capacity)
    {
        var random = new Random(capacity);
        using var backend = Open(capacity);
        var count = backend.GetValueState(Count);
        var history = backend.GetListState(History);
        var sum = backend.GetReducingState(Sum);
        var maxSeen = 0;

        for (var step = 0; step < 3000; step++)
        {
            backend.SetCurrentKey($"key-{random.Next(200)}");
            switch (random.Next(5))
            {
                case 0:
                    count.Update(step);
                    break;
                case 1:
                    _ = count.Get();
                    break;
                case 2:
                    history.Add(step);
                    break;
                case 3:
                    sum.Add(step);
                    break;
                default:
                    _ = history.Get();
                    break;
            }

            Assert.InRange(backend.CachedEntries, 0, capacity);
            maxSeen = Math.Max(maxSeen, backend.CachedEntries);
        }

        // The cache is used up to its capacity, so the bound above was actually exercised.
        Assert.Equal(capacity, maxSeen);
    }

    [Fact]
    public void With_a_large_cache_writes_reach_rocksdb_only_when_flushed()
    {
        using var backend = Open(capacity: 1000);
        var count = backend.GetValueState(Count);
        backend.SetCurrentKey("k");
        count.Update(41);
        count.Update(42);

        Assert.Null(ReadRaw(backend, "count", "k"));

        backend.Flush();
        var stored = ReadRaw(backend, "count", "k");

        Assert.NotNull(stored);
        Assert.Equal(42, new ValueCodec<int>(null, TestEnvironment.Serializer).Read(stored));

        count.Clear();
        Assert.NotNull(ReadRaw(backend, "count", "k"));
        backend.Flush();
        Assert.Null(ReadRaw(backend, "count", "k"));
    }

    [Fact]
    public void When_the_cache_is_full_dirty_entries_are_written_back()
    {
        using var backend = Open(capacity: 3);
        var count = backend.GetValueState(Count);
        for (var i = 0; i < 10; i++)
        {
            backend.SetCurrentKey($"key-{i}");
            count.Update(i);
        }

        // Without a Flush, the entries evicted to make room are already in RocksDB.
        var codec = new ValueCodec<int>(null, TestEnvironment.Serializer);
        for (var i = 0; i < 9; i++)
        {
            var stored = ReadRaw(backend, "count", $"key-{i}");
            Assert.NotNull(stored);
            Assert.Equal(i, codec.Read(stored));
        }
    }

    [Fact]
    public void Without_a_cache_writes_reach_rocksdb_at_once()
    {
        using var backend = Open(capacity: 0);
        var count = backend.GetValueState(Count);
        backend.SetCurrentKey("k");
        count.Update(7);

        var stored = ReadRaw(backend, "count", "k");

        Assert.NotNull(stored);
        Assert.Equal(7, new ValueCodec<int>(null, TestEnvironment.Serializer).Read(stored));
        Assert.Equal(0, backend.CachedEntries);
    }

    [Fact]
    public void Cached_changes_are_logged_once_without_a_write_back_and_a_later_write_back_does_not_log_them_again()
    {
        using var backend = Open(capacity: 1000);
        var log = new RecordingLogger();
        backend.ChangeLogger = log;
        var count = backend.GetValueState(Count);
        backend.SetCurrentKey("a");
        count.Update(1);
        count.Update(2);
        backend.SetCurrentKey("b");
        count.Update(5);
        count.Clear();

        backend.LogCachedChanges();

        // Each key's latest value (or its deletion) is logged once; RocksDB has not been written.
        Assert.Equal(["Delete count b", "Put count a=2"], log.Changes.Order(StringComparer.Ordinal));
        Assert.Null(ReadRaw(backend, "count", "a"));

        backend.LogCachedChanges();
        backend.Flush();

        // Nothing changed since: logged nothing more, but the write-back reached RocksDB.
        Assert.Equal(2, log.Changes.Count);
        Assert.NotNull(ReadRaw(backend, "count", "a"));

        backend.SetCurrentKey("a");
        count.Update(3);
        backend.Flush();

        // A change written back before it was logged is logged by the write-back.
        Assert.Equal("Put count a=3", log.Changes[^1]);
        Assert.Equal(3, log.Changes.Count);
    }

    /// <summary>Reads the stored value of a value state directly from RocksDB, building the key [kg][len][key] by hand.</summary>
    private static byte[]? ReadRaw(RocksDbKeyedStateBackend<string> backend, string state, string key)
    {
        var keyBytes = Encoding.UTF8.GetBytes(key);
        var keyGroup = TestEnvironment.KeyGroupOfString(key, backend.MaxParallelism);
        Assert.True(keyBytes.Length < 128);
        byte[] stored = [(byte)(keyGroup >> 8), (byte)keyGroup, (byte)keyBytes.Length, .. keyBytes];
        return backend.Database.Get(stored, backend.Database.GetColumnFamily(state));
    }

    private RocksDbKeyedStateBackend<string> Open(int capacity) => new(
        new KeyedStateBackendOptions { Directory = _directory.Sub($"cache-{capacity}"), KeyGroups = new KeyGroupRange(0, 127), MaxParallelism = 128, CacheCapacity = capacity },
        KeySerializers.For<string>(null, TestEnvironment.Serializer),
        TestEnvironment.Serializer,
        _resources);

    /// <summary>Records each logged change as "Kind state key[=value]", decoding this test's int values and string keys.</summary>
    private sealed class RecordingLogger : State.Changelog.IStateChangeLogger
    {
        private readonly ValueCodec<int> _codec = new(null, TestEnvironment.Serializer);

        public List<string> Changes { get; } = [];

        public void Log(State.Changelog.ChangeKind kind, string state, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
        {
            // The key part is [kg][kg][len][utf-8 key] (see ReadRaw).
            var name = Encoding.UTF8.GetString(key[3..]);
            Changes.Add(kind == State.Changelog.ChangeKind.Put ? $"{kind} {state} {name}={_codec.Read(value)}" : $"{kind} {state} {name}");
        }
    }
}
