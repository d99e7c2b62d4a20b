using Microsoft.Extensions.Logging;
using StreamGrains.Runtime;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>Deletes checkpoints and files from storage; failures are logged, never thrown (a leftover file is not an error).</summary>
internal sealed class CheckpointCleaner(ICheckpointStorage storage, ILogger logger)
{
    /// <summary>Deletes a checkpoint: first its manifest (so it stops being a checkpoint), then its private files, then the given shared files.</summary>
    public async Task DeleteCheckpointAsync(string jobId, CompletedCheckpoint checkpoint, IEnumerable<string> unreferencedSharedFiles)
    {
        await TryAsync(() => storage.DeleteAsync(checkpoint.ManifestPath, CancellationToken.None), checkpoint.ManifestPath);
        await DeleteAbortedAsync(jobId, checkpoint.CheckpointId);
        foreach (var path in unreferencedSharedFiles)
        {
            await TryAsync(() => storage.DeleteAsync(path, CancellationToken.None), path);
        }
    }

    /// <summary>Deletes the directory of a checkpoint that did not complete (subtasks delete the shared files they uploaded for it).</summary>
    public Task DeleteAbortedAsync(string jobId, long checkpointId)
    {
        var directory = SnapshotLayout.CheckpointDirectory(jobId, checkpointId);
        return TryAsync(() => storage.DeletePrefixAsync(directory, CancellationToken.None), directory);
    }

    /// <summary>Deletes a whole prefix.</summary>
    public Task DeletePrefixAsync(string prefix) => TryAsync(() => storage.DeletePrefixAsync(prefix, CancellationToken.None), prefix);

    private async Task TryAsync(Func<Task> delete, string path)
    {
        try
        {
            await delete();
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Could not delete {Path} from checkpoint storage", path);
        }
    }
}
