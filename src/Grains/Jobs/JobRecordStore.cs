using Microsoft.Extensions.Logging;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Jobs;

/// <summary>Reads and writes a job's <see cref="JobRecord"/> in checkpoint storage (<c>{job}/_job.record</c>).</summary>
/// <remarks>
/// Writes are conditional where the storage supports it (<see cref="IConditionalCheckpointStorage"/>): each write expects
/// the version this store last read or wrote (none: the record must not exist yet), so an older activation of the job
/// grain (a split brain, a directory race) cannot overwrite what a newer one wrote, and a submit cannot overwrite the
/// record of a job it failed to read. One store per activation.
/// </remarks>
internal sealed class JobRecordStore(ICheckpointStorage storage, Orleans.Serialization.Serializer serializer, ILogger logger)
{
    private string? _version;

    /// <summary>Whether a write was refused because another writer changed the record since this store read or wrote it.</summary>
    public bool Superseded { get; private set; }

    /// <summary>How long to wait before reading the record again after <paramref name="failures"/> failed reads: 0.5 s doubling up to 30 s.</summary>
    public static TimeSpan RetryDelay(int failures) => TimeSpan.FromMilliseconds(Math.Min(30_000, 500 * Math.Pow(2, Math.Clamp(failures - 1, 0, 10))));

    /// <summary>The record of <paramref name="jobId"/>, or null when the job was never submitted (or its record is gone).</summary>
    /// <exception cref="CheckpointStorageException">Storage could not be read.</exception>
    /// <exception cref="InvalidOperationException">The record is empty.</exception>
    public async Task<JobRecord?> ReadAsync(JobId jobId, CancellationToken cancellationToken)
    {
        var path = JobRecord.PathOf(jobId.Value);
        byte[]? bytes;
        if (storage is IConditionalCheckpointStorage conditional)
        {
            var versioned = await conditional.ReadVersionedAsync(path, cancellationToken);
            (bytes, _version) = (versioned?.Content, versioned?.Version);
        }
        else
        {
            bytes = await storage.ReadAsync(path, cancellationToken);
        }

        if (bytes is null)
        {
            return null;
        }

        var record = serializer.Deserialize<JobRecord>(bytes) ?? throw new InvalidOperationException($"The record of job {jobId} is empty.");
        record.Failure = record.Failure?.Upgraded();
        return record;
    }

    /// <summary>Writes <paramref name="record"/> over the previous one; false (with a warning in the log) when storage refused it or another writer changed it since.</summary>
    public async Task<bool> WriteAsync(JobId jobId, JobRecord record)
    {
        var path = JobRecord.PathOf(jobId.Value);
        var content = serializer.SerializeToArray(record);
        try
        {
            if (storage is IConditionalCheckpointStorage conditional)
            {
                _version = await conditional.WriteIfAsync(path, content, _version, CancellationToken.None);
            }
            else
            {
                await storage.WriteAsync(path, content, overwrite: true, CancellationToken.None);
            }

            return true;
        }
        catch (CheckpointWriteConflictException ex)
        {
            Superseded = true;
            logger.LogWarning(ex, "Job {Job}: its record was changed by another activation of the job grain; this activation's write is refused", jobId);
            return false;
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Job {Job}: its record could not be written to checkpoint storage", jobId);
            return false;
        }
    }

    /// <summary>Deactivates the superseded activation <paramref name="activation"/>; nothing happens when Orleans already did.</summary>
    public static void LeaveSuperseded(IGrainContext activation)
    {
        ArgumentNullException.ThrowIfNull(activation);
        try
        {
            activation.Deactivate(new DeactivationReason(DeactivationReasonCode.ApplicationRequested, "another activation of the job grain owns the job's record"));
        }
        catch (InvalidOperationException)
        {
            // Orleans already deactivated it (a restart's continuation ran on after that): nothing left to leave.
        }
    }
}
