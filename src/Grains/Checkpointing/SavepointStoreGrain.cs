using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using StreamGrains.Runtime;
using StreamGrains.Snapshots;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>Lists and disposes savepoints in checkpoint storage; savepoints outlive their jobs, so no job grain owns them.</summary>
[GrainType("streamgrains.savepoints")]
[StatelessWorker]
internal sealed class SavepointStoreGrain(ICheckpointStorage storage, ILogger<SavepointStoreGrain> logger) : Grain, ISavepointStoreGrain
{
    /// <summary>Where savepoints are written unless a request names another directory.</summary>
    public const string Root = "savepoints";

    public async Task<IReadOnlyList<SavepointInfo>> List(string? jobId)
    {
        var prefix = jobId is null ? Root : $"{Root}/{jobId}";
        var found = new List<SavepointInfo>();
        await foreach (var stored in storage.ListAsync(prefix, CancellationToken.None))
        {
            if (!stored.Path.EndsWith("/" + SnapshotLayout.ManifestFileName, StringComparison.Ordinal))
            {
                continue;
            }

            try
            {
                var bytes = await storage.ReadAsync(stored.Path, CancellationToken.None);
                if (bytes is null)
                {
                    continue;
                }

                var manifest = ManifestJson.Deserialize(bytes, stored.Path);
                if (manifest.Kind != SnapshotKind.Savepoint)
                {
                    continue;
                }

                found.Add(new SavepointInfo
                {
                    Directory = SnapshotLayout.DirectoryOfManifest(stored.Path),
                    JobId = manifest.JobId,
                    JobType = manifest.JobType,
                    CheckpointId = manifest.CheckpointId,
                    Format = manifest.Format,
                    CompletedAt = manifest.CompletedAt,
                    Size = manifest.Files().Sum(static f => f.Length),
                });
            }
            catch (StateFormatException ex)
            {
                logger.LogWarning(ex, "Skipping unreadable savepoint manifest {Path}", stored.Path);
            }
        }

        return [.. found.OrderByDescending(static s => s.CompletedAt)];
    }

    public async Task Dispose(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var path = SnapshotLayout.ManifestPathOf(directory);
        byte[]? bytes;
        try
        {
            bytes = await storage.ReadAsync(path, CancellationToken.None);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"'{directory}' is not a valid savepoint directory: {ex.Message}", ex);
        }
        catch (CheckpointStorageException ex)
        {
            throw new InvalidOperationException($"The savepoint in '{directory}' cannot be read: {ex.Message}");
        }

        if (bytes is null)
        {
            throw new InvalidOperationException($"There is no savepoint in '{directory}' ({path} does not exist in {storage.Location}).");
        }

        var manifest = ManifestJson.Deserialize(bytes, path);
        if (manifest.Kind != SnapshotKind.Savepoint)
        {
            throw new InvalidOperationException($"'{directory}' holds checkpoint {manifest.CheckpointId} of job {manifest.JobId}, not a savepoint; checkpoints are deleted by their job.");
        }

        // Manifest first: from then on the directory is no savepoint, even if deleting the files is interrupted.
        await new CheckpointCleaner(storage, logger).DeleteSavepointAsync(path);
        logger.LogInformation("Disposed savepoint {Directory} of job {Job}", directory, manifest.JobId);
    }
}
