using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Changelog;

/// <summary>The second half of a changelog-mode restore: the segments of every restored part, replayed in order.</summary>
public static class ChangelogReplay
{
    private const int Prefetch = 4;

    /// <summary>
    /// Replays the changelog of every part into <paramref name="instance"/> (changes of key groups it does not own are
    /// skipped, which is what rescaling needs); downloads up to four segments ahead of the one applied.
    /// </summary>
    /// <param name="instance">The opened backend, its materialized files restored.</param>
    /// <param name="parts">The restored handles (several when rescaling).</param>
    /// <param name="storage">Checkpoint storage.</param>
    /// <param name="progress">Called after each segment with segments done, segments total and bytes replayed.</param>
    /// <param name="cancellationToken">Stops the replay.</param>
    /// <returns>The number of changes applied.</returns>
    /// <exception cref="CheckpointStorageException">When a segment is missing.</exception>
    /// <exception cref="StateFormatException">When a segment is corrupt or one is missing from a sequence.</exception>
    public static async Task<long> ReplayAsync(IRocksDbInstance instance, IReadOnlyList<KeyedStateHandle> parts, ICheckpointStorage storage, Action<int, int, long>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(parts);
        ArgumentNullException.ThrowIfNull(storage);
        var segments = new List<(StateFile File, long Sequence)>();
        foreach (var part in parts)
        {
            long? previous = null;
            foreach (var file in part.Changelog ?? [])
            {
                var sequence = ChangelogSegment.SequenceOf(file);
                if (previous is { } last && sequence != last + 1)
                {
                    throw new StateFormatException($"The changelog of key groups {part.KeyGroups} jumps from segment {last} to {sequence} ('{file.Path}'): a segment is missing.");
                }

                previous = sequence;
                segments.Add((file, sequence));
            }
        }

        long applied = 0;
        long bytes = 0;
        var downloads = new Queue<Task<byte[]>>();
        var next = 0;
        for (var i = 0; i < segments.Count; i++)
        {
            while (next < segments.Count && downloads.Count < Prefetch)
            {
                var path = segments[next++].File.Path;
                downloads.Enqueue(DownloadAsync(storage, path, cancellationToken));
            }

            var content = await downloads.Dequeue();
            var (file, sequence) = segments[i];
            applied += instance.ApplyChangelog(content, file.Path, sequence);
            bytes += content.Length;
            progress?.Invoke(i + 1, segments.Count, bytes);
        }

        return applied;
    }

    private static async Task<byte[]> DownloadAsync(ICheckpointStorage storage, string path, CancellationToken cancellationToken) =>
        await storage.ReadAsync(path, cancellationToken) ?? throw new CheckpointObjectNotFoundException(path, storage.Location);
}
