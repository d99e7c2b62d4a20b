using System.Buffers;
using StreamGrains.Snapshots;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Changelog;

/// <summary>The second half of a changelog-mode restore: the segments of every restored part, replayed in order.</summary>
public static class ChangelogReplay
{
    /// <summary>
    /// Downloads and replays the changelog of every part into <paramref name="instance"/> (changes of key groups it does
    /// not own are skipped, which is what rescaling needs). A restore starts the download with
    /// <see cref="ChangelogDownload.Start"/> before the materialized files, so the two overlap; this is both at once.
    /// </summary>
    /// <param name="instance">The opened backend, its materialized files restored.</param>
    /// <param name="parts">The restored handles (several when rescaling).</param>
    /// <param name="storage">Checkpoint storage.</param>
    /// <param name="progress">Called after each segment with segments done, segments total and bytes replayed.</param>
    /// <param name="cancellationToken">Stops the replay.</param>
    /// <returns>The number of changes applied.</returns>
    /// <exception cref="CheckpointObjectNotFoundException">When a segment is missing from storage.</exception>
    /// <exception cref="StateFormatException">When a segment is corrupt or one is missing from a sequence.</exception>
    public static async Task<long> ReplayAsync(IRocksDbInstance instance, IReadOnlyList<KeyedStateHandle> parts, ICheckpointStorage storage, Action<int, int, long>? progress, CancellationToken cancellationToken)
    {
        var directory = Path.Combine(Path.GetTempPath(), "streamgrains-replay-" + Guid.NewGuid().ToString("N"));
        await using var download = ChangelogDownload.Start(parts, storage, directory, cancellationToken);
        return await download.ReplayAsync(instance, progress, cancellationToken);
    }
}

/// <summary>
/// The changelog segments of a restore, downloaded in sequence order into a local directory (several at a time, all of
/// them ahead of the replay, which only reads local files), then replayed in order and deleted one by one.
/// </summary>
/// <remarks>Started before the materialized files are restored, so the tail's download overlaps theirs.</remarks>
public sealed class ChangelogDownload : IAsyncDisposable
{
    private const int ParallelDownloads = 8;
    private readonly List<(StateFile File, long Sequence)> _segments;
    private readonly TaskCompletionSource<string>[] _downloaded;
    private readonly string _directory;
    private readonly CancellationTokenSource _stop;
    private readonly Task _downloads;

    private ChangelogDownload(List<(StateFile File, long Sequence)> segments, ICheckpointStorage storage, string directory, CancellationToken cancellationToken)
    {
        _segments = segments;
        _directory = directory;
        _downloaded = segments.Select(static _ => new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _downloads = segments.Count == 0 ? Task.CompletedTask : Task.Run(() => DownloadAllAsync(storage, _stop.Token), CancellationToken.None);
    }

    /// <summary>Segments to replay.</summary>
    public int SegmentCount => _segments.Count;

    /// <summary>Bytes of the segments.</summary>
    public long Bytes => _segments.Sum(static s => s.File.Length);

    /// <summary>
    /// Checks that every part's segments are consecutive and starts downloading them into <paramref name="directory"/>
    /// (created; deleted on dispose).
    /// </summary>
    /// <exception cref="StateFormatException">When a segment is missing from a part's sequence.</exception>
    public static ChangelogDownload Start(IReadOnlyList<KeyedStateHandle> parts, ICheckpointStorage storage, string directory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parts);
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentException.ThrowIfNullOrEmpty(directory);
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

        Directory.CreateDirectory(directory);
        return new ChangelogDownload(segments, storage, directory, cancellationToken);
    }

    /// <summary>Replays the segments in order as their downloads complete; returns the number of changes applied.</summary>
    /// <exception cref="CheckpointObjectNotFoundException">When a segment is missing from storage.</exception>
    /// <exception cref="StateFormatException">When a segment is corrupt.</exception>
    public async Task<long> ReplayAsync(IRocksDbInstance instance, Action<int, int, long>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(instance);
        long applied = 0;
        long bytes = 0;
        using var paused = instance.PauseCompactions();
        for (var i = 0; i < _segments.Count; i++)
        {
            var local = await _downloaded[i].Task.WaitAsync(cancellationToken);
            var (file, sequence) = _segments[i];

            // A pooled buffer: a new 4 MiB array per segment costs more in GC than the read itself.
            int length;
            byte[] buffer;
            using (var handle = File.OpenHandle(local))
            {
                length = checked((int)RandomAccess.GetLength(handle));
                buffer = ArrayPool<byte>.Shared.Rent(length);
                for (var read = 0; read < length;)
                {
                    var chunk = RandomAccess.Read(handle, buffer.AsSpan(read, length - read), read);
                    read += chunk > 0 ? chunk : throw new IOException($"'{local}' ended after {read} of {length} bytes.");
                }
            }

            try
            {
                applied += instance.ApplyChangelog(buffer.AsSpan(0, length), file.Path, sequence);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            File.Delete(local);
            bytes += length;
            progress?.Invoke(i + 1, _segments.Count, bytes);
        }

        return applied;
    }

    /// <summary>Stops the downloads still running and deletes the local directory.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _downloads;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
        foreach (var download in _downloaded.Select(static d => d.Task).Where(static t => t.IsFaulted))
        {
            _ = download.Exception; // observed: the replay reported the first failure, or did not get that far
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Left in the attempt's working directory, which goes with it; must not hide the restore's own outcome.
        }
    }

    private async Task DownloadAllAsync(ICheckpointStorage storage, CancellationToken cancellationToken)
    {
        // In sequence order, at most ParallelDownloads at a time, so the first segments are ready first.
        using var slots = new SemaphoreSlim(ParallelDownloads);
        var running = new List<Task>();
        for (var i = 0; i < _segments.Count; i++)
        {
            try
            {
                await slots.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException ex)
            {
                foreach (var pending in _downloaded.Skip(i))
                {
                    pending.TrySetCanceled(ex.CancellationToken);
                }

                break;
            }

            var index = i;
            running.Add(Task.Run(async () =>
            {
                try
                {
                    var (file, sequence) = _segments[index];
                    var local = Path.Combine(_directory, $"{index:D6}-{sequence}.log");
                    await storage.DownloadFileAsync(file.Path, local, new StoredObject(file.Path, file.Length, file.Checksum), cancellationToken);
                    _downloaded[index].TrySetResult(local);
                }
                catch (Exception ex)
                {
                    _downloaded[index].TrySetException(ex);
                }
                finally
                {
                    slots.Release();
                }
            }, CancellationToken.None));
        }

        await Task.WhenAll(running);
    }
}
