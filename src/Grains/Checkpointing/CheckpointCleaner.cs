using Microsoft.Extensions.Logging;
using StreamGrains.Runtime;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>
/// Every deletion of checkpoint files the runtime makes goes through here: subsumed and discarded checkpoints, aborted
/// checkpoints' directories, failed savepoints, a job's whole checkpoint history, files of failed attempts that no
/// checkpoint refers to, and disposed savepoints. Failures are logged, never thrown (a leftover file is not an error),
/// except where a caller asked for a deletion and must hear that it failed (<see cref="DeleteSavepointAsync"/>).
/// </summary>
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

    /// <summary>Deletes a savepoint: its manifest first (so it stops being a savepoint), then everything in its directory.</summary>
    /// <exception cref="CheckpointStorageException">A deletion failed; the caller is told.</exception>
    public async Task DeleteSavepointAsync(string manifestPath)
    {
        await storage.DeleteAsync(manifestPath, CancellationToken.None);
        await storage.DeletePrefixAsync(SnapshotLayout.DirectoryOfManifest(manifestPath), CancellationToken.None);
    }

    /// <summary>
    /// Before a restart deploys its attempt: lists the job's shared files and changelog objects that no retained
    /// checkpoint refers to (what failed attempts uploaded for checkpoints and materializations that never completed)
    /// and deletes them in the background. The listing ends before the new attempt is deployed, so nothing it writes is
    /// listed; an upload of a failed attempt that lands after the listing stays (it is stopped with its subtask). When
    /// storage holds a manifest that is not among the retained checkpoints (one the coordinator could not read, or of a
    /// newer format), nothing is deleted.
    /// </summary>
    /// <returns>Every path the listing showed, or null when it did not complete; and the background deletion.</returns>
    public async Task<OrphanCollection> CollectOrphansAsync(string jobId, IEnumerable<CompletedCheckpoint> retained)
    {
        var checkpoints = retained.ToList();
        var referenced = checkpoints.SelectMany(static c => c.Manifest.Files()).Select(static f => f.Path).ToHashSet(StringComparer.Ordinal);
        var manifests = checkpoints.Select(static c => c.ManifestPath).ToHashSet(StringComparer.Ordinal);
        var shared = SnapshotLayout.SharedDirectory(jobId) + "/";
        var changelog = SnapshotLayout.ChangelogDirectory(jobId) + "/";
        var orphans = new List<string>();
        var listed = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            await foreach (var stored in storage.ListAsync(jobId, CancellationToken.None))
            {
                listed.Add(stored.Path);

                if (SnapshotLayout.CheckpointIdOfManifest(jobId, stored.Path) is not null && !manifests.Contains(stored.Path))
                {
                    // A manifest the coordinator did not load (unreadable, or of a newer format): its files must stay.
                    logger.LogWarning("Job {Job}: {Manifest} is not among the retained checkpoints; files of failed attempts are left in storage", jobId, stored.Path);
                    return OrphanCollection.Incomplete;
                }

                if ((stored.Path.StartsWith(shared, StringComparison.Ordinal) || stored.Path.StartsWith(changelog, StringComparison.Ordinal)) && !referenced.Contains(stored.Path))
                {
                    orphans.Add(stored.Path);
                }
            }
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Job {Job}: could not list the files of failed attempts; they stay in checkpoint storage", jobId);
            return OrphanCollection.Incomplete;
        }

        if (orphans.Count == 0)
        {
            return new OrphanCollection(listed, Task.CompletedTask);
        }

        logger.LogInformation("Job {Job}: deleting {Count} files of failed attempts that no retained checkpoint refers to", jobId, orphans.Count);
        return new OrphanCollection(listed, Task.Run(() => DeleteFilesAsync(orphans)));
    }

    /// <summary>Deletes the given files one by one.</summary>
    public async Task DeleteFilesAsync(IEnumerable<string> paths)
    {
        foreach (var path in paths)
        {
            await TryAsync(() => storage.DeleteAsync(path, CancellationToken.None), path);
        }
    }

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

/// <summary>What <see cref="CheckpointCleaner.CollectOrphansAsync"/> found and started.</summary>
/// <param name="Listed">Every path the listing showed, or null when it did not complete (then nothing is deleted).</param>
/// <param name="Deletion">The deletion of the orphans, running in the background; it never fails.</param>
internal sealed record OrphanCollection(IReadOnlySet<string>? Listed, Task Deletion)
{
    /// <summary>The listing did not complete, or showed a manifest that is not retained: nothing is deleted.</summary>
    public static readonly OrphanCollection Incomplete = new(null, Task.CompletedTask);
}
