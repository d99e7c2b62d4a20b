using Microsoft.Extensions.Logging;
using StreamGrains.Runtime;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>
/// The retained completed checkpoints of a job, oldest first, and the reference counting of their shared files.
/// </summary>
/// <remarks>
/// A shared file may be deleted only when no retained manifest refers to it. Adding a checkpoint beyond the retained
/// count subsumes the oldest ones; <see cref="Add"/> returns them with the files that became unreferenced.
/// </remarks>
internal sealed class CompletedCheckpointStore
{
    private readonly List<CompletedCheckpoint> _checkpoints = [];

    public IReadOnlyList<CompletedCheckpoint> Checkpoints => _checkpoints;

    public CompletedCheckpoint? Latest => _checkpoints.Count == 0 ? null : _checkpoints[^1];

    /// <summary>
    /// Reads every manifest of the job in storage; unreadable ones (not JSON, of an unknown format, semantically corrupt, or
    /// failing their checksum) are skipped with a warning, so that a restart falls back to the one before.
    /// </summary>
    /// <exception cref="CheckpointStorageException">Listing or reading failed otherwise (storage unreachable): the caller retries later.</exception>
    public static async Task<CompletedCheckpointStore> LoadAsync(ICheckpointStorage storage, string jobId, ILogger logger, CancellationToken cancellationToken)
    {
        var store = new CompletedCheckpointStore();
        var found = new List<(long Id, string Path)>();
        await foreach (var stored in storage.ListAsync(jobId, cancellationToken))
        {
            if (SnapshotLayout.CheckpointIdOfManifest(jobId, stored.Path) is { } id)
            {
                found.Add((id, stored.Path));
            }
        }

        foreach (var (id, path) in found.OrderBy(static f => f.Id))
        {
            try
            {
                var bytes = await storage.ReadAsync(path, cancellationToken);
                if (bytes is not null)
                {
                    store._checkpoints.Add(new CompletedCheckpoint { CheckpointId = id, ManifestPath = path, Manifest = ManifestJson.Deserialize(bytes, path) });
                }
            }
            catch (Exception ex) when (ex is State.Serialization.StateFormatException or CheckpointStorageCorruptException)
            {
                logger.LogWarning(ex, "Ignoring checkpoint {Checkpoint} of job {Job}: its manifest cannot be read", id, jobId);
            }
        }

        return store;
    }

    /// <summary>Adds a completed checkpoint; returns the subsumed checkpoints and the shared files no retained checkpoint refers to any more.</summary>
    public (IReadOnlyList<CompletedCheckpoint> Subsumed, IReadOnlyList<string> UnreferencedFiles) Add(CompletedCheckpoint checkpoint, int retained)
    {
        _checkpoints.Add(checkpoint);
        var subsumed = new List<CompletedCheckpoint>();
        while (_checkpoints.Count > retained)
        {
            subsumed.Add(_checkpoints[0]);
            _checkpoints.RemoveAt(0);
        }

        return (subsumed, UnreferencedSharedFiles(subsumed));
    }

    /// <summary>Removes a checkpoint; returns the shared files no retained checkpoint refers to any more.</summary>
    public IReadOnlyList<string> Remove(long checkpointId)
    {
        var removed = _checkpoints.Where(c => c.CheckpointId == checkpointId).ToList();
        _checkpoints.RemoveAll(c => c.CheckpointId == checkpointId);
        return UnreferencedSharedFiles(removed);
    }

    private List<string> UnreferencedSharedFiles(IEnumerable<CompletedCheckpoint> removed)
    {
        var stillReferenced = _checkpoints.SelectMany(static c => c.Manifest.Files()).Where(static f => f.Shared).Select(static f => f.Path).ToHashSet(StringComparer.Ordinal);
        return removed.SelectMany(static c => c.Manifest.Files())
            .Where(f => f.Shared && !stillReferenced.Contains(f.Path))
            .Select(static f => f.Path)
            .Distinct(StringComparer.Ordinal)
            .ToList();
    }
}
