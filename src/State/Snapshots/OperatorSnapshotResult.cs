using StreamGrains.Snapshots;
using StreamGrains.State.Changelog;

namespace StreamGrains.State.Snapshots;

/// <summary>What an operator's state amounts to in one checkpoint, and what storing it cost.</summary>
/// <param name="State">The operator subtask's entry of the manifest.</param>
/// <param name="BytesUploaded">Bytes this checkpoint added to storage.</param>
/// <param name="FullSize">Bytes of the whole state the entry refers to.</param>
public sealed record OperatorSnapshotResult(OperatorSubtaskState State, long BytesUploaded, long FullSize)
{
    /// <summary>Changelog mode: changelog bytes written since the previous checkpoint.</summary>
    public long ChangelogBytes { get; init; }

    /// <summary>Changelog mode: the materialization the snapshot refers to.</summary>
    public Materialization? Materialization { get; init; }
}
