using StreamGrains.Snapshots;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Snapshots;

namespace StreamGrains.State.Restore;

/// <summary>How a restore put the files of keyed state in place.</summary>
public enum KeyedStateRestoreKind : byte
{
    /// <summary>Nothing to restore: the instance starts empty.</summary>
    None = 0,

    /// <summary>
    /// Native files of the same key groups, as they are (<see cref="KeyedStateRestorer"/>): from the local copy when local
    /// recovery kept a complete one, otherwise from storage.
    /// </summary>
    Native = 1,

    /// <summary>Native files of other key groups (another parallelism), clipped and merged (<see cref="RescalingRestorer"/>).</summary>
    Rescaling = 2,

    /// <summary>Canonical state files, read key group by key group (<see cref="CanonicalRestore"/>).</summary>
    Canonical = 3,
}

/// <summary>What a restore of keyed state did.</summary>
public sealed record KeyedStateRestoreResult
{
    /// <summary>Nothing was restored.</summary>
    public static readonly KeyedStateRestoreResult Nothing = new() { Kind = KeyedStateRestoreKind.None };

    /// <summary>How the files were put in place.</summary>
    public required KeyedStateRestoreKind Kind { get; init; }

    /// <summary>The final progress of the files (before any changelog replay); null when nothing was restored.</summary>
    public RestoreProgress? Files { get; init; }

    /// <summary>
    /// The handle whose files the job owns and later snapshots may reference instead of uploading them again: the
    /// restored one when its key groups are the subtask's and the job owns the snapshot's files, otherwise null.
    /// </summary>
    public KeyedStateHandle? OwnedHandle { get; init; }

    /// <summary>Changelog segments replayed after the files.</summary>
    public int ChangelogSegments { get; init; }

    /// <summary>Changes the replayed segments applied.</summary>
    public long ChangesReplayed { get; init; }
}
