using System.Diagnostics;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Operators;

namespace StreamGrains.Grains.Subtasks;

/// <summary>
/// The time by which an idle mailbox must wake up: the earliest of the operators' next timer, the output flush and the
/// source's next poll; and how long the wait until then lasts.
/// </summary>
/// <remarks>
/// Deadlines are timestamps of the subtask's <see cref="TimeProvider"/> in stopwatch ticks, like
/// <see cref="OutputChannels.NextFlushTimestamp"/>; timers are kept in Unix milliseconds of its wall clock and are
/// converted. Used on the mailbox only.
/// </remarks>
internal sealed class DeadlineClock(TimeProvider time, IReadOnlyList<ChainOperator> operators, OutputChannels outputs)
{
    private long _sourceRetryAt;

    /// <summary>Whether the source may be polled: the wait it asked for after its last empty poll is over.</summary>
    public bool SourceMayPoll => time.GetTimestamp() >= _sourceRetryAt;

    /// <summary>The source had nothing to read: poll it again after <paramref name="retryAfter"/>.</summary>
    public void RetrySourceAfter(TimeSpan retryAfter) =>
        _sourceRetryAt = time.GetTimestamp() + (long)(retryAfter.TotalSeconds * Stopwatch.Frequency);

    /// <summary>
    /// Earliest of: the next timer, the output flush and (when <paramref name="includeSourceRetry"/>, for a source that
    /// may still be polled) the source's retry; in stopwatch ticks, null when there is none.
    /// </summary>
    public long? NextDeadline(bool includeSourceRetry)
    {
        long? deadline = outputs.NextFlushTimestamp;
        foreach (var op in operators)
        {
            if (op.NextTimerTimestamp is { } timer)
            {
                var untilTimer = timer - time.GetUtcNow().ToUnixTimeMilliseconds();
                var at = time.GetTimestamp() + (Math.Max(0, untilTimer) * Stopwatch.Frequency / 1000);
                deadline = deadline is null ? at : Math.Min(deadline.Value, at);
            }
        }

        if (includeSourceRetry)
        {
            deadline = deadline is null ? _sourceRetryAt : Math.Min(deadline.Value, _sourceRetryAt);
        }

        return deadline;
    }

    /// <summary>How long to wait for <paramref name="deadline"/>: zero when it has come, else at least one whole millisecond.</summary>
    public TimeSpan WaitUntil(long deadline)
    {
        var delay = time.GetElapsedTime(time.GetTimestamp(), deadline);
        if (delay <= TimeSpan.Zero)
        {
            return TimeSpan.Zero;
        }

        // Timers count whole milliseconds and truncate the rest: a wait under one (a rate-limited source asks for 0.4 ms
        // at 2,500 records per second) fired at once, and the loop went round without waiting until the deadline,
        // allocating a delay, a completion source and a WhenAny each turn: in the checkpoint benchmark, 80 gen 0
        // collections a second and 12% of the time in GC pauses. So a wait lasts at least one whole millisecond.
        return TimeSpan.FromMilliseconds(Math.Ceiling(delay.TotalMilliseconds));
    }
}
