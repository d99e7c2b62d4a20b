using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>Checks, before a restart restores a checkpoint, that storage still has every file its manifest refers to.</summary>
internal static class CheckpointFileCheck
{
    /// <summary>
    /// A file of <paramref name="manifest"/> that storage does not have, or null. Files in <paramref name="stored"/> (the
    /// listing made just before, when it completed) are there; the others are asked for one by one, 16 at a time: those
    /// elsewhere (a restored savepoint's), and those the listing did not show, because an empty listing may also mean a
    /// storage that cannot be reached or a container that is gone, which a question tells apart (it throws) and a
    /// checkpoint must not be given up for. A changelog checkpoint refers to a hundred files or more, and on Blob
    /// storage each question is a request the restart waits for.
    /// </summary>
    /// <exception cref="CheckpointStorageException">Storage could not tell whether a file is there.</exception>
    public static async Task<string?> FindMissingFileAsync(ICheckpointStorage storage, CheckpointManifest manifest, IReadOnlySet<string>? stored)
    {
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentNullException.ThrowIfNull(manifest);
        var paths = manifest.Files().Select(static f => f.Path).Distinct(StringComparer.Ordinal).ToList();
        if (stored is not null)
        {
            paths.RemoveAll(stored.Contains);
        }

        foreach (var chunk in paths.Chunk(16))
        {
            var exists = await Task.WhenAll(chunk.Select(path => storage.ExistsAsync(path, CancellationToken.None)));
            var index = Array.IndexOf(exists, false);
            if (index >= 0)
            {
                return chunk[index];
            }
        }

        return null;
    }
}
