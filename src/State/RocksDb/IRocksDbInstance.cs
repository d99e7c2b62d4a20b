namespace StreamGrains.State.RocksDb;

/// <summary>A RocksDB instance that can be snapshotted: its database and a way to write buffered state into it.</summary>
public interface IRocksDbInstance
{
    /// <summary>The database.</summary>
    RocksDbSharp.RocksDb Database { get; }

    /// <summary>The instance's directory.</summary>
    string Directory { get; }

    /// <summary>Writes state buffered in memory (the write-back cache) into the database.</summary>
    void Flush();

    /// <summary>
    /// Passes the cache's changes that are not in the <see cref="ChangeLogger"/> yet to it, without writing them into the
    /// database (a changelog checkpoint's barrier: no RocksDB write, and so no write stall, in its synchronous part).
    /// </summary>
    void LogCachedChanges();

    /// <summary>Receives every mutation written to the database (changelog mode); null when nobody listens.</summary>
    Changelog.IStateChangeLogger? ChangeLogger { get; set; }

    /// <summary>Writes the cache into the database and starts a flush of every memtable without waiting for it.</summary>
    void StartMemTableFlush();

    /// <summary>Whether a memtable flush is pending or running.</summary>
    bool MemTableFlushInProgress { get; }

    /// <summary>Applies one changelog segment (restore); returns the number of changes applied.</summary>
    long ApplyChangelog(ReadOnlySpan<byte> segment, string path, long sequence);

    /// <summary>
    /// Stops automatic compactions until the result is disposed (a restore's replay: the replayed changes are flushed
    /// to level 0 and compacted once the subtask runs, instead of competing with the replay for the CPU).
    /// </summary>
    IDisposable PauseCompactions();
}
