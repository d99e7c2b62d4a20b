namespace StreamGrains.State.Savepoints;

/// <summary>What the entries of one state in a canonical state file are.</summary>
public enum CanonicalStateKind : byte
{
    /// <summary>
    /// Entries of a keyed state's column family: (serialized key, suffix, value). The suffix is the serialized user key
    /// of a map entry and empty for value, list and reducing state; only the state's descriptor tells which kind it is.
    /// </summary>
    KeyedState = 0,

    /// <summary>Processing-time timers: (serialized key, timestamp).</summary>
    Timers = 1,
}

/// <summary>A state (column family) listed in the header of a canonical state file.</summary>
/// <param name="Name">The column family name: the state's name, or <c>_timers</c>.</param>
/// <param name="Kind">What its entries are.</param>
public sealed record CanonicalStateInfo(string Name, CanonicalStateKind Kind);

/// <summary>Where the entries of one key group are in a canonical state file (one entry of its index).</summary>
/// <param name="KeyGroup">The key group.</param>
/// <param name="Offset">Offset of the block in the file.</param>
/// <param name="Length">Length of the block; 0 when the key group has no entries.</param>
/// <param name="Checksum">XxHash64 of the block's bytes.</param>
public readonly record struct CanonicalKeyGroupBlock(int KeyGroup, long Offset, long Length, ulong Checksum);

/// <summary>A canonical state file just written.</summary>
public sealed record CanonicalStateFile
{
    /// <summary>Path of the file.</summary>
    public required string Path { get; init; }

    /// <summary>Length in bytes.</summary>
    public required long Length { get; init; }

    /// <summary>XxHash64 of the whole file, 16 lowercase hex digits (the form of <c>StateFile.Checksum</c> in manifests).</summary>
    public required string Checksum { get; init; }

    /// <summary>Number of key groups of the job.</summary>
    public required int MaxParallelism { get; init; }

    /// <summary>The key groups the file covers.</summary>
    public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>Entries written per column family (timers under <c>_timers</c>).</summary>
    public required IReadOnlyDictionary<string, long> Entries { get; init; }

    /// <summary>Entries written over all column families.</summary>
    public long TotalEntries => Entries.Values.Sum();
}

/// <summary>The header and index of a canonical state file, verified.</summary>
public sealed record CanonicalStateFileInfo
{
    /// <summary>Path of the file.</summary>
    public required string Path { get; init; }

    /// <summary>Length in bytes.</summary>
    public required long Length { get; init; }

    /// <summary>Format version the file was written in.</summary>
    public required int FormatVersion { get; init; }

    /// <summary>Number of key groups of the job that wrote it.</summary>
    public required int MaxParallelism { get; init; }

    /// <summary>The key groups it covers.</summary>
    public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>Its states, in the order of their indexes in the file.</summary>
    public required IReadOnlyList<CanonicalStateInfo> States { get; init; }

    /// <summary>Its index: one block per key group of <see cref="KeyGroups"/>, in ascending order.</summary>
    public required IReadOnlyList<CanonicalKeyGroupBlock> Blocks { get; init; }

    /// <summary>The index entry of <paramref name="keyGroup"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the file does not cover <paramref name="keyGroup"/>.</exception>
    public CanonicalKeyGroupBlock BlockOf(int keyGroup) => KeyGroups.Contains(keyGroup)
        ? Blocks[keyGroup - KeyGroups.Start]
        : throw new ArgumentOutOfRangeException(nameof(keyGroup), $"Key group {keyGroup} is not in {Path}, which covers {KeyGroups}.");
}

/// <summary>One entry of a canonical state file in logical form (for tools and tests; restore does not allocate these).</summary>
/// <param name="State">The column family it belongs to.</param>
/// <param name="Kind">Kind of that column family.</param>
/// <param name="KeyGroup">Key group of <paramref name="Key"/>.</param>
/// <param name="Key">The serialized key.</param>
/// <param name="Suffix">For keyed state: the bytes stored after the key (a map entry's serialized user key), else empty.</param>
/// <param name="Value">For keyed state: the value as <c>ValueCodec</c> (or the list layout) wrote it; empty for timers.</param>
/// <param name="Timestamp">For timers: the timer's timestamp; 0 for keyed state.</param>
public sealed record CanonicalStateEntry(string State, CanonicalStateKind Kind, int KeyGroup, byte[] Key, byte[] Suffix, byte[] Value, long Timestamp);

/// <summary>What to restore from canonical state files.</summary>
public sealed record CanonicalRestoreRequest
{
    /// <summary>Default bound of one write batch.</summary>
    public const int DefaultWriteBatchBytes = 4 << 20;

    /// <summary>
    /// The canonical files of the operator, written at any parallelism. Files whose key groups do not intersect
    /// <see cref="KeyGroups"/> are not read beyond their header and index.
    /// </summary>
    public required IReadOnlyList<string> Files { get; init; }

    /// <summary>The key groups to restore: those of the subtask that will open the result.</summary>
    public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>Number of key groups of the job; every file must have been written with the same.</summary>
    public required int MaxParallelism { get; init; }

    /// <summary>
    /// The RocksDB directory to create. Whatever it holds is deleted first (as <c>KeyedStateRestorer</c> does), and it
    /// is deleted again when the restore fails, so a failed restore never leaves a directory that opens.
    /// </summary>
    public required string TargetDirectory { get; init; }

    /// <summary>Checkpoint (or savepoint) id reported in <see cref="RestoreProgress.CheckpointId"/>.</summary>
    public long CheckpointId { get; init; }

    /// <summary>A write batch is written once it holds this many bytes of keys and values. Default 4 MiB.</summary>
    public int WriteBatchBytes { get; init; } = DefaultWriteBatchBytes;
}

/// <summary>The result of a restore from canonical state files.</summary>
public sealed record CanonicalRestoreResult
{
    /// <summary>The final progress (<see cref="RestoreProgress.Completed"/> is true).</summary>
    public required RestoreProgress Progress { get; init; }

    /// <summary>Entries restored per column family (timers under <c>_timers</c>).</summary>
    public required IReadOnlyDictionary<string, long> Entries { get; init; }

    /// <summary>Entries restored over all column families.</summary>
    public long TotalEntries => Entries.Values.Sum();
}
