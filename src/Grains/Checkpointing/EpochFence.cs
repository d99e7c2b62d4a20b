using Microsoft.Extensions.Logging;
using StreamGrains.Grains.Jobs;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>
/// Fences a coordinator's deletions of checkpoint files by the job record's epoch: the job grain raises the epoch in the
/// record each time it starts a coordinator, so a coordinator started with an older epoch (an activation left over from
/// a split brain or a directory race, which counts references in its own memory) finds a newer epoch and deletes
/// nothing more.
/// </summary>
/// <remarks>
/// The record is read before each deletion, so the fence closes as soon as the newer start is in storage; a deletion
/// already past its check when that happens still runs (the window is one storage call).
/// </remarks>
internal sealed class EpochFence(ICheckpointStorage storage, Orleans.Serialization.Serializer serializer, ILogger logger, string jobId, long epoch)
{
    /// <summary>The epoch the coordinator was started with.</summary>
    public long Epoch => epoch;

    /// <summary>Whether the record showed a newer epoch: this coordinator is stale and must stop.</summary>
    public bool IsStale { get; private set; }

    /// <summary>
    /// Whether the coordinator may delete now: the record's epoch is not newer than its own (or the job has no record).
    /// False when the record cannot be read (the files stay; a leftover file is not an error) or the coordinator is stale.
    /// </summary>
    public async Task<bool> AllowsDeletionAsync()
    {
        if (IsStale)
        {
            return false;
        }

        JobRecord? record;
        try
        {
            record = await new JobRecordStore(storage, serializer, logger).ReadAsync(new JobId(jobId), CancellationToken.None);
        }
        catch (Exception ex) when (ex is CheckpointStorageException or InvalidOperationException)
        {
            logger.LogWarning(ex, "Job {Job}: the record could not be read to check the coordinator's epoch; nothing is deleted now", jobId);
            return false;
        }

        if (record is not null && record.Epoch > epoch)
        {
            IsStale = true;
            logger.LogWarning("Job {Job}: the record's epoch {Current} is newer than this coordinator's {Epoch}; it deletes nothing more and stops", jobId, record.Epoch, epoch);
            return false;
        }

        return true;
    }
}
