using StreamGrains.Runtime;

namespace StreamGrains.Grains.Jobs;

/// <summary>Builds the <see cref="JobStatus"/> a job grain reports from its record and its subtasks' status.</summary>
internal static class JobStatusSnapshot
{
    /// <summary>The status of job <paramref name="id"/> at <paramref name="version"/>; warnings of subtasks of the current attempt are included.</summary>
    public static JobStatus Of(JobId id, JobRecord record, long version, IEnumerable<KeyValuePair<SubtaskId, SubtaskStatus>> ordered)
    {
        var subtasks = ordered.ToArray();
        return new()
        {
            JobId = id,
            JobType = record.Spec.JobType,
            State = record.State,
            Version = version,
            Attempt = record.Attempt,
            Restarts = record.Restarts,
            PlannedMoves = record.PlannedMoves,
            SubmittedAt = record.SubmittedAt,
            EndedAt = record.EndedAt,
            Failure = record.Failure,
            Warnings = [.. record.Warnings, .. subtasks.Where(p => p.Key.Attempt == record.Attempt && p.Value.Warning is not null).Select(static p => $"{p.Value.Chain} #{p.Key.Index}: {p.Value.Warning}")],
            RestoredFrom = record.RestoredFrom,
            SourceRecordsBefore = record.SourceRecordsBefore.GetValueOrDefault(record.Attempt),
            FinalSavepoint = record.FinalSavepoint,
            Subtasks = subtasks.Select(static p => p.Value).ToArray(),
        };
    }
}
