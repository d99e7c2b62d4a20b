namespace StreamGrains.State.Restore;

/// <summary>
/// Passes restore progress through, holding back "completed" until the changelog was replayed too, and records when the
/// files were in place (every restore of keyed state reports through it).
/// </summary>
internal sealed class ReplayAwareProgress(IProgress<RestoreProgress> inner, TimeProvider time) : IProgress<RestoreProgress>
{
    private RestoreProgress _last = new();
    private int _segments;

    public void ExpectChangelog(int segments) => _segments = segments;

    public void Report(RestoreProgress value)
    {
        var filesRestoredAt = value.FilesRestoredAt ?? _last.FilesRestoredAt ?? (value.Completed ? time.GetUtcNow() : null);
        _last = value with { ChangelogSegmentsTotal = _segments, Completed = value.Completed && _segments == 0, FilesRestoredAt = filesRestoredAt };
        inner.Report(_last);
    }

    public void Replayed(int done, int total, long bytes)
    {
        _last = _last with { ChangelogSegmentsDone = done, ChangelogSegmentsTotal = total, ChangelogBytesReplayed = bytes, Completed = done == total };
        inner.Report(_last);
    }
}
