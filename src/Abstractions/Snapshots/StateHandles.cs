using System.Text.Json.Serialization;
using StreamGrains.Connectors;

namespace StreamGrains.Snapshots;

/// <summary>One file of a snapshot in checkpoint storage.</summary>
[GenerateSerializer, Immutable]
public sealed record StateFile
{
    /// <summary>The file's name in the RocksDB directory (for example <c>000012.sst</c>, <c>MANIFEST-000005</c>).</summary>
    [Id(0)] public required string Name { get; init; }

    /// <summary>Path in checkpoint storage, relative to the storage root (checkpoints) or to the savepoint's directory (savepoints).</summary>
    [Id(1)] public required string Path { get; init; }

    /// <summary>Length in bytes.</summary>
    [Id(2)] public long Length { get; init; }

    /// <summary>XxHash64 of the content, 16 lowercase hex digits.</summary>
    [Id(3)] public string? Checksum { get; init; }

    /// <summary>Whether the file is a shared file (an immutable SST that later checkpoints may reference too).</summary>
    [Id(4)] public bool Shared { get; init; }

    /// <summary>
    /// For an SST: where it sat in the RocksDB instance when the snapshot was taken. Lets a rescaling restore fetch only
    /// the SSTs holding key groups it needs and import them as they are. Null in snapshots written before it was
    /// recorded, and for other files.
    /// </summary>
    [Id(5)] public SstFileInfo? Sst { get; init; }

    /// <summary>Whether the file is an SST (by its name in the RocksDB directory).</summary>
    [JsonIgnore]
    public bool IsSst => Name.EndsWith(".sst", StringComparison.Ordinal);
}

/// <summary>Where an SST file sits in its RocksDB instance (docs/formats.md).</summary>
[GenerateSerializer, Immutable]
public sealed record SstFileInfo
{
    /// <summary>The column family the file belongs to.</summary>
    [Id(0)] public required string ColumnFamily { get; init; }

    /// <summary>Its LSM level in the snapshot.</summary>
    [Id(1)] public int Level { get; init; }

    /// <summary>
    /// The key groups of its smallest and largest key. Every key group of the file's keys lies in it; it may reach one
    /// key group further than the keys do when the file ends with a range deletion (whose end is exclusive).
    /// </summary>
    [Id(2)] public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>The smallest sequence number of its entries.</summary>
    [Id(3)] public long SmallestSeqno { get; init; }

    /// <summary>The largest sequence number of its entries.</summary>
    [Id(4)] public long LargestSeqno { get; init; }
}

/// <summary>The keyed state of one operator in one subtask: a RocksDB checkpoint made of files in storage.</summary>
[GenerateSerializer, Immutable]
public sealed record KeyedStateHandle
{
    /// <summary>Key groups the state covers.</summary>
    [Id(0)] public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>Every file of the RocksDB checkpoint (in changelog mode: of the materialization).</summary>
    [Id(1)] public required IReadOnlyList<StateFile> Files { get; init; }

    /// <summary>Changelog mode: the materialization <see cref="Files"/> are (increasing per subtask).</summary>
    [Id(2)] public long? MaterializationId { get; init; }

    /// <summary>
    /// Changelog mode: the segments written after the materialization, in sequence order; restore replays them on top of
    /// <see cref="Files"/>. Null in incremental mode.
    /// </summary>
    [Id(3)] public IReadOnlyList<StateFile>? Changelog { get; init; }

    /// <summary>Total bytes of the state (all files and changelog segments).</summary>
    [JsonIgnore]
    public long FullSize => Files.Sum(static f => f.Length) + ChangelogSize;

    /// <summary>Bytes of the changelog segments.</summary>
    [JsonIgnore]
    public long ChangelogSize => Changelog?.Sum(static f => f.Length) ?? 0;

    /// <summary>The files and the changelog segments.</summary>
    public IEnumerable<StateFile> AllFiles() => Changelog is { } changelog ? Files.Concat(changelog) : Files;
}

/// <summary>The state of one operator in one subtask.</summary>
[GenerateSerializer, Immutable]
public sealed record OperatorSubtaskState
{
    /// <summary>Index of the subtask.</summary>
    [Id(0)] public required int SubtaskIndex { get; init; }

    /// <summary>Keyed state, for keyed operators.</summary>
    [Id(1)] public KeyedStateHandle? KeyedState { get; init; }

    /// <summary>Source splits with their positions, for sources.</summary>
    [Id(2)] public IReadOnlyList<SourceSplit>? SourceSplits { get; init; }

    /// <summary>Keyed state in the canonical savepoint format (one file), for keyed operators of a canonical savepoint.</summary>
    [Id(3)] public CanonicalStateHandle? CanonicalState { get; init; }

    /// <summary>
    /// For sources: the records the subtask had read in the attempt that took the snapshot, up to its barrier (the job
    /// counts its sources' records across attempts with it, see <see cref="JobStatus.SourceRecords"/>). Null in
    /// snapshots written before it was recorded.
    /// </summary>
    [Id(4)] public long? RecordsRead { get; init; }

    /// <summary>The key groups this entry's keyed state covers, native or canonical; null without keyed state.</summary>
    [JsonIgnore]
    public KeyGroupRange? KeyGroups => KeyedState?.KeyGroups ?? CanonicalState?.KeyGroups;
}

/// <summary>The keyed state of one operator in one subtask as one canonical state file (docs/formats.md).</summary>
[GenerateSerializer, Immutable]
public sealed record CanonicalStateHandle
{
    /// <summary>Key groups the file covers.</summary>
    [Id(0)] public required KeyGroupRange KeyGroups { get; init; }

    /// <summary>The file.</summary>
    [Id(1)] public required StateFile File { get; init; }
}

/// <summary>The state of one operator over all its subtasks.</summary>
[GenerateSerializer, Immutable]
public sealed record OperatorState
{
    /// <summary>The operator's Uid.</summary>
    [Id(0)] public required string Uid { get; init; }

    /// <summary>Parallelism of the operator when the snapshot was taken.</summary>
    [Id(1)] public required int Parallelism { get; init; }

    /// <summary>One entry per subtask that has state.</summary>
    [Id(2)] public required IReadOnlyList<OperatorSubtaskState> Subtasks { get; init; }
}

/// <summary>Kind of snapshot.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SnapshotKind>))]
public enum SnapshotKind : byte
{
    /// <summary>An engine-owned checkpoint.</summary>
    Checkpoint = 0,

    /// <summary>A user-owned savepoint.</summary>
    Savepoint = 1,
}

/// <summary>
/// The manifest: the document that fully describes one checkpoint or savepoint. Written last and atomically; a
/// directory without one is not a checkpoint. See docs/formats.md.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record CheckpointManifest
{
    /// <summary>The version of this format this code writes.</summary>
    public const int CurrentFormatVersion = 3;

    /// <summary>Version of the manifest format.</summary>
    [Id(0)] public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>Checkpoint or savepoint.</summary>
    [Id(1)] public SnapshotKind Kind { get; init; }

    /// <summary>The job the snapshot was taken of.</summary>
    [Id(2)] public required string JobId { get; init; }

    /// <summary>The job definition's type name.</summary>
    [Id(3)] public required string JobType { get; init; }

    /// <summary>Id of the checkpoint (increasing per job).</summary>
    [Id(4)] public required long CheckpointId { get; init; }

    /// <summary>Attempt of the job that took it.</summary>
    [Id(5)] public int Attempt { get; init; }

    /// <summary>Max parallelism (number of key groups) of the job; a restore must use the same.</summary>
    [Id(6)] public required int MaxParallelism { get; init; }

    /// <summary>When the checkpoint was triggered.</summary>
    [Id(7)] public DateTimeOffset TriggeredAt { get; init; }

    /// <summary>When the manifest was written.</summary>
    [Id(8)] public DateTimeOffset CompletedAt { get; init; }

    /// <summary>State of every operator that has state, by Uid.</summary>
    [Id(9)] public required IReadOnlyList<OperatorState> Operators { get; init; }

    /// <summary>Native or canonical (savepoints; checkpoints are native).</summary>
    [Id(10)] public SavepointFormat Format { get; init; } = SavepointFormat.Native;

    /// <summary>Every file the snapshot references.</summary>
    public IEnumerable<StateFile> Files() => Operators.SelectMany(static o => o.Subtasks).SelectMany(static s => (s.KeyedState?.AllFiles() ?? []).Concat(s.CanonicalState is { } canonical ? [canonical.File] : []));

    /// <summary>
    /// This manifest with every file path resolved against the storage root: a savepoint's paths are relative to its
    /// <paramref name="directory"/> (so it can be moved), a checkpoint's are already relative to the root.
    /// </summary>
    public CheckpointManifest Resolve(string directory) => Kind == SnapshotKind.Savepoint ? MapFilePaths(path => $"{directory}/{path}") : this;

    /// <summary>This manifest with <paramref name="map"/> applied to the path of every file.</summary>
    public CheckpointManifest MapFilePaths(Func<string, string> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        StateFile Relocate(StateFile file) => file with { Path = map(file.Path) };
        return this with
        {
            Operators = Operators.Select(o => o with
            {
                Subtasks = o.Subtasks.Select(s => s with
                {
                    KeyedState = s.KeyedState is { } keyed ? keyed with { Files = keyed.Files.Select(Relocate).ToArray(), Changelog = keyed.Changelog?.Select(Relocate).ToArray() } : null,
                    CanonicalState = s.CanonicalState is { } canonical ? canonical with { File = Relocate(canonical.File) } : null,
                }).ToArray(),
            }).ToArray(),
        };
    }
}
