using StreamGrains.State.Storage;

namespace StreamGrains.Grains;

/// <summary>Silo-wide settings of the StreamGrains runtime (section <c>StreamGrains</c> of appsettings.json).</summary>
public sealed class StreamGrainsOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "StreamGrains";

    /// <summary>Directory for local state (RocksDB instances of the subtasks on this silo).</summary>
    public string StateDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "streamgrains", "state");

    /// <summary>Capacity of the block cache shared by all RocksDB instances of the silo, in MiB.</summary>
    public int BlockCacheMb { get; set; } = 256;

    /// <summary>Memtable budget shared by all RocksDB instances of the silo, in MiB.</summary>
    public int WriteBufferMb { get; set; } = 128;

    /// <summary>
    /// Memtable size of one column family (one keyed state of one subtask), in MiB, within <see cref="WriteBufferMb"/>.
    /// Larger memtables mean fewer level-0 compactions (less disk writing under random updates); smaller ones less memory
    /// per instance.
    /// </summary>
    public int ColumnFamilyWriteBufferMb { get; set; } = 64;

    /// <summary>Entries of the write-back cache in front of each keyed operator's RocksDB instance (0 disables it).</summary>
    public int StateCacheEntries { get; set; } = 65_536;

    /// <summary>Whether a subtask deletes its local state directory when it stops.</summary>
    public bool DeleteLocalStateOnStop { get; set; } = true;

    /// <summary>
    /// How long a silo that stops gracefully (SIGTERM, host stop) waits for the jobs with subtasks on it to take the
    /// checkpoint they move away with; a job whose checkpoint does not complete in time fails over as from a lost silo.
    /// Keep it below Orleans' response timeout (30 s by default) and the host's shutdown timeout (30 s by default).
    /// Zero turns planned moves off.
    /// </summary>
    public TimeSpan LeaveTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Whether a silo whose silo port refuses connections (its process is gone) is declared dead at once, when a call to
    /// it fails or before a restart is placed, instead of after Orleans' membership probes (about 15 s by default).
    /// Default true. A silo that is slow or unreachable is never declared dead by this, only one that refuses.
    /// </summary>
    public bool DeclareCrashedSilosDead { get; set; } = true;

    /// <summary>
    /// The least number of thread-pool worker threads the silo's process keeps ready (raised at silo start when lower).
    /// Restores and uploads write local files with blocking writes on pool threads (four transfers per subtask); with
    /// the runtime's default floor (one per core) the pool grows by about two threads a second, and a large restore
    /// spent its first ten seconds at a fraction of its speed. Default 64; 0 leaves the floor alone.
    /// </summary>
    public int MinWorkerThreads { get; set; } = 64;

    /// <summary>Where checkpoints, savepoints and job records are kept.</summary>
    public CheckpointStorageOptions CheckpointStorage { get; set; } = new();

    /// <summary>Returns the problems with these settings; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        foreach (var error in CheckpointStorage.Validate())
        {
            yield return "StreamGrains:" + error;
        }

        if (string.IsNullOrWhiteSpace(StateDirectory))
        {
            yield return "StreamGrains:StateDirectory must be set.";
        }

        if (BlockCacheMb < 1)
        {
            yield return $"StreamGrains:BlockCacheMb must be at least 1, was {BlockCacheMb}.";
        }

        if (WriteBufferMb < 1)
        {
            yield return $"StreamGrains:WriteBufferMb must be at least 1, was {WriteBufferMb}.";
        }

        if (ColumnFamilyWriteBufferMb < 1 || ColumnFamilyWriteBufferMb > WriteBufferMb)
        {
            yield return $"StreamGrains:ColumnFamilyWriteBufferMb must be between 1 and WriteBufferMb ({WriteBufferMb}), was {ColumnFamilyWriteBufferMb}.";
        }

        if (LeaveTimeout < TimeSpan.Zero)
        {
            yield return $"StreamGrains:LeaveTimeout must not be negative, was {LeaveTimeout}.";
        }

        if (StateCacheEntries < 0)
        {
            yield return $"StreamGrains:StateCacheEntries must not be negative, was {StateCacheEntries}.";
        }

        if (MinWorkerThreads is < 0 or > 32_767)
        {
            yield return $"StreamGrains:MinWorkerThreads must be between 0 and 32767, was {MinWorkerThreads}.";
        }
    }
}
