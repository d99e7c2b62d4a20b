using StreamGrains.Snapshots;
using StreamGrains.State.Changelog;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.State.Restore;

/// <summary>
/// The one entry point for restoring the keyed state of an operator subtask: it chooses how, puts the files in place,
/// opens the instance and replays the changelog.
/// </summary>
/// <remarks>
/// <para>The choice, by what the snapshot's parts hold: canonical state files → <see cref="CanonicalRestore"/> (all parts
/// must be canonical); one native handle with the subtask's key groups → <see cref="KeyedStateRestorer"/>, from the
/// local copy when local recovery kept one (<see cref="IncrementalSnapshotter.LocalCheckpointDirectory"/>, or
/// <see cref="ChangelogSnapshotter.LocalMaterializationDirectory"/> for a changelog checkpoint's materialization);
/// native handles of other key groups → <see cref="RescalingRestorer"/>. Parts with changelog segments are replayed
/// into the opened instance after the files; their download starts first, so it overlaps the files'.</para>
/// <para>Failures: storage that says the snapshot cannot be read (a missing or corrupt object,
/// <see cref="CheckpointObjectNotFoundException"/>, <see cref="CheckpointStorageCorruptException"/>) or state that cannot
/// be read (<see cref="StateFormatException"/>, <see cref="CanonicalFormatException"/>) become a
/// <see cref="RestoreException"/>: the job falls back to an older snapshot. Any other
/// <see cref="CheckpointStorageException"/> (unreachable, throttled, timed out) becomes a
/// <see cref="RestoreInterruptedException"/>: the same snapshot may restore later.</para>
/// </remarks>
public static class KeyedStateRestore
{
    /// <summary>
    /// Restores the snapshot of <see cref="OperatorKeyedStateRequest.Restore"/> (if any) into
    /// <see cref="KeyedStateDirectories.Working"/>, then opens the instance there with <paramref name="open"/> and replays
    /// the changelog into it. Progress goes to <see cref="OperatorKeyedStateRequest.Progress"/>, completed only once the
    /// changelog is replayed too.
    /// </summary>
    /// <typeparam name="TInstance">The instance type.</typeparam>
    /// <param name="request">What to restore, where, from which storage.</param>
    /// <param name="open">Opens the instance on the restored directory (or an empty one when there is nothing to restore).</param>
    /// <returns>The opened instance, which the caller disposes, and what the restore did.</returns>
    /// <exception cref="RestoreException">When the snapshot cannot be read, mixes canonical and native state, or there is no storage to read it from.</exception>
    /// <exception cref="RestoreInterruptedException">When storage failed in a way that says nothing about the snapshot.</exception>
    public static async Task<RestoredKeyedState<TInstance>> RestoreAsync<TInstance>(OperatorKeyedStateRequest request, Func<TInstance> open)
        where TInstance : class, IRocksDbInstance, IDisposable
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(open);
        if (request.Restore is not { Parts.Count: > 0 } snapshot)
        {
            return new RestoredKeyedState<TInstance>(open(), KeyedStateRestoreResult.Nothing);
        }

        var owner = request.Owner;
        var progress = request.Progress is { } reported ? new ReplayAwareProgress(reported, request.Time) : null;
        var replay = snapshot.Parts.Select(static p => p.KeyedState).OfType<KeyedStateHandle>().Where(static h => h.Changelog is { Count: > 0 }).ToArray();
        progress?.ExpectChangelog(replay.Sum(static h => h.Changelog!.Count));
        ChangelogDownload? changelog = null;
        try
        {
            KeyedStateRestoreResult result;
            try
            {
                // The changelog tail downloads while the materialized files do; it is replayed once they are in place.
                if (replay.Length > 0 && request.Storage is { } storage)
                {
                    changelog = ChangelogDownload.Start(replay, storage, request.Directories.ChangelogDownloads, request.Stopping);
                }

                result = await RestoreFilesAsync(request, snapshot, progress);
            }
            catch (CheckpointStorageException ex) when (IsDefinitive(ex))
            {
                throw new RestoreException($"Operator '{owner.OperatorUid}' subtask {owner.SubtaskIndex} could not restore snapshot {snapshot.CheckpointId}: {ex.Message}", ex);
            }
            catch (CheckpointStorageException ex)
            {
                throw new RestoreInterruptedException($"Operator '{owner.OperatorUid}' subtask {owner.SubtaskIndex} could not restore snapshot {snapshot.CheckpointId} now: {ex.Message}", ex);
            }
            catch (Exception ex) when (ex is StateFormatException or CanonicalFormatException)
            {
                throw new RestoreException($"Operator '{owner.OperatorUid}' subtask {owner.SubtaskIndex} could not read snapshot {snapshot.CheckpointId}: {ex.Message}", ex);
            }

            var instance = open();
            if (changelog is null)
            {
                return new RestoredKeyedState<TInstance>(instance, result);
            }

            try
            {
                var applied = await changelog.ReplayAsync(instance, progress is null ? null : progress.Replayed, request.Stopping);
                return new RestoredKeyedState<TInstance>(instance, result with { ChangelogSegments = changelog.SegmentCount, ChangesReplayed = applied });
            }
            catch (Exception ex) when (ex is CheckpointStorageException or StateFormatException)
            {
                instance.Dispose();
                var message = $"Operator '{owner.OperatorUid}' subtask {owner.SubtaskIndex} could not replay the changelog of snapshot {snapshot.CheckpointId}";
                throw ex is CheckpointStorageException storage && !IsDefinitive(storage)
                    ? new RestoreInterruptedException($"{message} now: {ex.Message}", ex)
                    : new RestoreException($"{message}: {ex.Message}", ex);
            }
            catch
            {
                // The caller never gets the instance: it closes here.
                instance.Dispose();
                throw;
            }
        }
        finally
        {
            if (changelog is not null)
            {
                await changelog.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Whether a storage failure says something about the snapshot (an object is missing or corrupt: no retry will read it)
    /// rather than about the storage right now (unreachable, throttled, timed out: the same snapshot may restore later).
    /// </summary>
    internal static bool IsDefinitive(CheckpointStorageException exception) =>
        exception is CheckpointObjectNotFoundException or CheckpointStorageCorruptException;

    /// <summary>
    /// Puts the restored files into the working directory: native files of the same key groups as they are (from the
    /// local copy when there is one), native files of other key groups clipped and merged (rescaling), canonical files
    /// read key group by key group.
    /// </summary>
    private static async Task<KeyedStateRestoreResult> RestoreFilesAsync(OperatorKeyedStateRequest request, SnapshotToRestore snapshot, IProgress<RestoreProgress>? progress)
    {
        var storage = request.Storage ?? throw new RestoreException("No checkpoint storage is configured to restore from.");
        var keyGroups = request.Owner.KeyGroups;
        var directories = request.Directories;
        var parts = snapshot.Parts;
        var canonical = parts.Where(static p => p.CanonicalState is not null).Select(static p => p.CanonicalState!).ToArray();
        if (canonical.Length > 0)
        {
            if (canonical.Length != parts.Count)
            {
                throw new RestoreException($"Operator '{request.Owner.OperatorUid}': snapshot {snapshot.CheckpointId} mixes canonical and native state.");
            }

            var read = await CanonicalRestore.RestoreAsync(canonical, keyGroups, request.MaxParallelism, snapshot.CheckpointId, storage, directories.Working, directories.CanonicalRestoreScratch, request.Resources, progress, request.Stopping);
            return new KeyedStateRestoreResult { Kind = KeyedStateRestoreKind.Canonical, Files = read };
        }

        var handles = parts.Select(static p => p.KeyedState).OfType<KeyedStateHandle>().ToArray();
        if (handles.Length == 1 && handles[0].KeyGroups == keyGroups)
        {
            var handle = handles[0];
            var local = !request.Checkpointing.LocalRecovery ? null
                : handle.MaterializationId is { } materialization ? ChangelogSnapshotter.LocalMaterializationDirectory(directories.LocalMaterializations, materialization)
                : IncrementalSnapshotter.LocalCheckpointDirectory(directories.LocalCheckpoints, snapshot.CheckpointId);
            var restored = await KeyedStateRestorer.RestoreAsync(handle, snapshot.CheckpointId, storage, directories.Working, local, progress, request.Stopping);
            return new KeyedStateRestoreResult { Kind = KeyedStateRestoreKind.Native, Files = restored, OwnedHandle = snapshot.OwnsFiles ? handle : null };
        }

        // Rescaling: the first checkpoint of this subtask uploads its state in full (its files are new combinations).
        var rescaled = await RescalingRestorer.RestoreAsync(handles, keyGroups, snapshot.CheckpointId, storage, directories.Working, directories.RescaleScratch, request.Resources, progress, request.SharedDownloads, request.Stopping);
        return new KeyedStateRestoreResult { Kind = KeyedStateRestoreKind.Rescaling, Files = rescaled };
    }
}
