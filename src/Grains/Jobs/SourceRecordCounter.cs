using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>
/// Counts the records a job's sources read across attempts without counting twice what an attempt re-reads after a
/// failover: an attempt that restores checkpoint N starts from the records read up to N (the count before the attempt
/// that took N, plus what its sources had read at N's barrier, which each source records in its snapshot).
/// </summary>
internal static class SourceRecordCounter
{
    /// <summary>
    /// The records the sources of <paramref name="job"/> had read up to <paramref name="restore"/>, over all attempts;
    /// 0 without a restore. <paramref name="before"/> holds the count each earlier attempt started from; a snapshot of
    /// another job (a savepoint) or of an attempt without a count counts from 0.
    /// </summary>
    public static long ReadUpTo(CompletedCheckpoint? restore, IReadOnlyDictionary<int, long> before, JobId job)
    {
        ArgumentNullException.ThrowIfNull(before);
        if (restore is null)
        {
            return 0;
        }

        var manifest = restore.Manifest;
        var start = manifest.JobId == job.Value && before.TryGetValue(manifest.Attempt, out var count) ? count : 0;
        return start + manifest.Operators.SelectMany(static o => o.Subtasks).Sum(static s => s.RecordsRead ?? 0);
    }
}
