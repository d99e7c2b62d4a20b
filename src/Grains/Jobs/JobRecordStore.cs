using Microsoft.Extensions.Logging;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Jobs;

/// <summary>Reads and writes a job's <see cref="JobRecord"/> in checkpoint storage (<c>{job}/_job.record</c>).</summary>
internal sealed class JobRecordStore(ICheckpointStorage storage, Orleans.Serialization.Serializer serializer, ILogger logger)
{
    /// <summary>The record of <paramref name="jobId"/>, or null when the job was never submitted (or its record is gone).</summary>
    /// <exception cref="CheckpointStorageException">Storage could not be read.</exception>
    /// <exception cref="InvalidOperationException">The record is empty.</exception>
    public async Task<JobRecord?> ReadAsync(JobId jobId, CancellationToken cancellationToken)
    {
        var bytes = await storage.ReadAsync(JobRecord.PathOf(jobId.Value), cancellationToken);
        if (bytes is null)
        {
            return null;
        }

        var record = serializer.Deserialize<JobRecord>(bytes) ?? throw new InvalidOperationException($"The record of job {jobId} is empty.");
        record.Failure = record.Failure?.Upgraded();
        return record;
    }

    /// <summary>Writes <paramref name="record"/> over the previous one; false (with a warning in the log) when storage refused it.</summary>
    public async Task<bool> WriteAsync(JobId jobId, JobRecord record)
    {
        try
        {
            await storage.WriteAsync(JobRecord.PathOf(jobId.Value), serializer.SerializeToArray(record), overwrite: true, CancellationToken.None);
            return true;
        }
        catch (CheckpointStorageException ex)
        {
            logger.LogWarning(ex, "Job {Job}: its record could not be written to checkpoint storage", jobId);
            return false;
        }
    }
}
