using StreamGrains.State.Serialization;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// A manifest that parses but describes no snapshot that could exist: a key-group range outside the job's key groups,
/// two subtasks of one operator owning the same key group, a required field that is null, a file handle with an
/// impossible name or size, a negative id. Names the manifest and the field.
/// </summary>
public sealed class CorruptManifestException : StateFormatException
{
    /// <summary>Creates the exception for <paramref name="field"/> of the manifest at <paramref name="manifestPath"/>.</summary>
    public CorruptManifestException(string manifestPath, string field, string reason)
        : base($"Manifest '{manifestPath}' is corrupt: {field} {reason}.")
    {
        ManifestPath = manifestPath;
        Field = field;
    }

    /// <summary>Path of the manifest in checkpoint storage.</summary>
    public string ManifestPath { get; }

    /// <summary>The offending field, as a JSON path without the leading <c>$.</c> (for example <c>operators[1].subtasks[0].keyedState.keyGroups.start</c>).</summary>
    public string Field { get; }
}
