using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Tests;

/// <summary>The contract suite against <see cref="RocksDbKeyedStateBackend{TKey}"/> with a given write-back cache capacity.</summary>
public abstract class RocksDbKeyedStateBackendContractTests(int cacheCapacity) : KeyedStateBackendContractTests
{
    private readonly RocksDbResources _resources = new(new RocksDbResourceOptions
    {
        BlockCacheBytes = 8 << 20,
        WriteBufferBytes = 8 << 20,
        ColumnFamilyWriteBufferBytes = 1 << 20,
        BackgroundThreads = 1,
    });

    protected override IKeyedStateBackend<TKey> CreateBackend<TKey>(string directory, KeyGroupRange keyGroups, int maxParallelism) =>
        new RocksDbKeyedStateBackend<TKey>(
            new KeyedStateBackendOptions { Directory = directory, KeyGroups = keyGroups, MaxParallelism = maxParallelism, CacheCapacity = cacheCapacity },
            KeySerializers.For<TKey>(null, TestEnvironment.Serializer),
            TestEnvironment.Serializer,
            _resources);

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            _resources.Dispose();
        }
    }
}

/// <summary>Every read and write goes to RocksDB.</summary>
public sealed class RocksDbWithoutCacheContractTests() : RocksDbKeyedStateBackendContractTests(cacheCapacity: 0);

/// <summary>A cache of three entries: nearly every access evicts, so write-back and reload run constantly.</summary>
public sealed class RocksDbWithTinyCacheContractTests() : RocksDbKeyedStateBackendContractTests(cacheCapacity: 3);

/// <summary>A cache that holds everything a test touches: RocksDB only sees what Flush writes back.</summary>
public sealed class RocksDbWithLargeCacheContractTests() : RocksDbKeyedStateBackendContractTests(cacheCapacity: 1_000_000);
