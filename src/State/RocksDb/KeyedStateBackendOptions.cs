namespace StreamGrains.State.RocksDb;

/// <summary>Where and how a keyed state backend keeps its state.</summary>
public sealed record KeyedStateBackendOptions
{
    /// <summary>Directory of the RocksDB instance; created when missing, reopened when it holds one.</summary>
    public required string Directory { get; init; }

    /// <summary>Key groups owned.</summary>
    public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>Number of key groups of the job.</summary>
    public required int MaxParallelism { get; init; }

    /// <summary>
    /// Entries of value, list and reducing state kept deserialized in memory in front of RocksDB (write-back).
    /// When full, every dirty entry is written in one batch and the cache starts over. 0 disables the cache.
    /// </summary>
    public int CacheCapacity { get; init; } = 65_536;
}
