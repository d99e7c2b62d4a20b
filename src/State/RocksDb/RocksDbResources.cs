using RocksDbSharp;

namespace StreamGrains.State.RocksDb;

/// <summary>Memory and thread budgets shared by every RocksDB instance of a process.</summary>
public sealed record RocksDbResourceOptions
{
    /// <summary>Capacity of the shared block cache. Default 256 MiB.</summary>
    public long BlockCacheBytes { get; init; } = 256L << 20;

    /// <summary>Memtable budget over all instances, charged to the block cache. Default 128 MiB.</summary>
    public long WriteBufferBytes { get; init; } = 128L << 20;

    /// <summary>Memtable size of one column family, within <see cref="WriteBufferBytes"/>. Default 64 MiB.</summary>
    /// <remarks>
    /// A memtable that fills becomes a level-0 file, and a few of those are compacted into the level below, rewriting the
    /// part of it their keys overlap (all of it when keys are updated at random). Small memtables mean that rewrite more
    /// often for the same updates: with 16 MiB the checkpoint benchmark's changelog job (2000 MiB, 5,000 updates/s of
    /// 1 KiB) wrote 90 MB/s to disk in bursts of up to 1 GB/s every 10–25 s; with 64 MiB 64 MB/s, in one burst per
    /// materialization (2026-12-05). The cost is memory: the benchmark's process peaked 270–570 MiB higher (see
    /// docs/checkpointing.md). The shared budget has the largest memtable flushed once all of them together reach it, but
    /// does not hold writes back, so it is not a hard limit.
    /// </remarks>
    public long ColumnFamilyWriteBufferBytes { get; init; } = 64L << 20;

    /// <summary>Background flush and compaction threads. Default: the processor count.</summary>
    public int BackgroundThreads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// The block cache and write-buffer manager shared by all RocksDB instances of a process (a silo), and the options
/// every instance is opened with.
/// </summary>
/// <remarks>Create one per process and dispose it after every instance using it was disposed.</remarks>
public sealed class RocksDbResources : IDisposable
{
    private readonly IntPtr _writeBufferManager;
    private bool _disposed;

    /// <summary>Creates the shared resources.</summary>
    public RocksDbResources(RocksDbResourceOptions? options = null)
    {
        Options = options ?? new RocksDbResourceOptions();
        if (Options.BlockCacheBytes <= 0 || Options.WriteBufferBytes <= 0 || Options.ColumnFamilyWriteBufferBytes <= 0 || Options.BackgroundThreads <= 0)
        {
            throw new ArgumentException($"RocksDB resource options must all be positive: {Options}", nameof(options));
        }

        BlockCache = Cache.CreateLru((ulong)Options.BlockCacheBytes);
        _writeBufferManager = Native.Instance.rocksdb_write_buffer_manager_create_with_cache((UIntPtr)Options.WriteBufferBytes, BlockCache.Handle, 0);
    }

    /// <summary>
    /// RocksDB's <c>bytes_per_sync</c>: without it a flush's or compaction's output stays dirty in the page cache until
    /// the file is synced at its end, in one burst that small fsyncs on the same disk meanwhile (a changelog segment's in
    /// filesystem storage, a manifest's) wait behind.
    /// </summary>
    public const ulong BytesPerSync = 1 << 20;

    /// <summary>The budgets.</summary>
    public RocksDbResourceOptions Options { get; }

    /// <summary>The shared block cache.</summary>
    public Cache BlockCache { get; }

    /// <summary>Bytes currently held by the block cache (including memtables charged to it).</summary>
    public long BlockCacheUsage => (long)BlockCache.GetUsage();

    /// <summary>
    /// Options of a database: WAL is not used (durability comes from checkpoints), shared write-buffer budget, and SST
    /// files written back every <see cref="BytesPerSync"/> as flushes and compactions write them.
    /// </summary>
    public DbOptions CreateDbOptions()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var options = new DbOptions()
            .SetCreateIfMissing(true)
            .SetCreateMissingColumnFamilies(true)
            .IncreaseParallelism(Options.BackgroundThreads)
            .SetBytesPerSync(BytesPerSync)
            .SetMaxOpenFiles(-1)
            .SetInfoLogLevel(InfoLogLevel.Warn)
            .SetKeepLogFileNum(2);
        Native.Instance.rocksdb_options_set_write_buffer_manager(options.Handle, _writeBufferManager);
        return options;
    }

    /// <summary>Options of a column family: shared block cache, bloom filters, LZ4.</summary>
    public ColumnFamilyOptions CreateColumnFamilyOptions()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var table = new BlockBasedTableOptions()
            .SetBlockCache(BlockCache)
            .SetFilterPolicy(BloomFilterPolicy.Create(10, false))
            .SetCacheIndexAndFilterBlocks(true)
            .SetPinL0FilterAndIndexBlocksInCache(true)
            .SetFormatVersion(5)
            .SetBlockSize(16 * 1024);
        var options = new ColumnFamilyOptions()
            .SetBlockBasedTableFactory(table)
            .SetWriteBufferSize((ulong)Options.ColumnFamilyWriteBufferBytes)
            .SetMaxWriteBufferNumber(3)
            .SetCompression(Compression.Lz4)
            .SetLevelCompactionDynamicLevelBytes(true);
        return options;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Native.Instance.rocksdb_write_buffer_manager_destroy(_writeBufferManager);
    }
}
