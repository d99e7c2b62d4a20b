using StreamGrains.Graph;
using StreamGrains.Runtime;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Jobs;

/// <summary>Reads the checkpoint or savepoint a job spec names in <see cref="JobSpec.RestoreFrom"/> and checks that the job can restore it.</summary>
internal sealed class RestorePointReader(ICheckpointStorage storage)
{
    /// <summary>
    /// The snapshot in <paramref name="restoreFrom"/> (a directory holding a manifest, or the manifest's path), with its
    /// file paths resolved; or null and the reasons it cannot be restored into <paramref name="plan"/>: missing,
    /// unreadable, or not fitting the job (<see cref="RestorePlanner.Validate"/>).
    /// </summary>
    public async Task<(CompletedCheckpoint? Checkpoint, IReadOnlyList<string> Errors)> ReadAsync(string restoreFrom, JobPlan plan, JobSpec spec)
    {
        var (checkpoint, errors, _) = await TryReadAsync(restoreFrom, plan, spec);
        return (checkpoint, errors);
    }

    /// <summary>
    /// As <see cref="ReadAsync"/>, and whether the failure says nothing about the snapshot (<paramref name="restoreFrom"/>
    /// could not be read because storage failed, not because it is missing, corrupt or does not fit): a restart may
    /// try again later.
    /// </summary>
    public async Task<(CompletedCheckpoint? Checkpoint, IReadOnlyList<string> Errors, bool Transient)> TryReadAsync(string restoreFrom, JobPlan plan, JobSpec spec)
    {
        var path = SnapshotLayout.ManifestPathOf(restoreFrom);
        try
        {
            var bytes = await storage.ReadAsync(path, CancellationToken.None);
            if (bytes is null)
            {
                return (null, [$"RestoreFrom: there is no checkpoint or savepoint at '{restoreFrom}' in {storage.Location} ('{path}' does not exist; a directory without a manifest is not a checkpoint)."], false);
            }

            var manifest = ManifestJson.Deserialize(bytes, path).Resolve(SnapshotLayout.DirectoryOfManifest(path));
            var errors = RestorePlanner.Validate(manifest, plan, spec);
            return errors.Count > 0 ? (null, errors, false) : (new CompletedCheckpoint { CheckpointId = manifest.CheckpointId, ManifestPath = path, Manifest = manifest }, [], false);
        }
        catch (Exception ex) when (ex is CheckpointStorageException or StateFormatException or ArgumentException)
        {
            var transient = ex is CheckpointStorageException and not CheckpointStorageCorruptException and not CheckpointObjectNotFoundException;
            return (null, [$"RestoreFrom: '{path}' cannot be read: {ex.Message}"], transient);
        }
    }
}
