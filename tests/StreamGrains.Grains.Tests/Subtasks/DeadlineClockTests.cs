using System.Diagnostics;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Subtasks;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests.Subtasks;

public sealed class DeadlineClockTests
{
    private static readonly SubtaskId Self = new(new JobId("deadlines"), Chain: 0, Index: 0, Attempt: 1);
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);
    private readonly SteppedTimeProvider _time = new();
    private readonly FakeOperator _operator = new("timers");
    private readonly OutputChannels _outputs;
    private readonly DeadlineClock _clock;

    public DeadlineClockTests()
    {
        _outputs = new OutputChannels(Self, new RecordingBatchTransport(), ChannelSettings.Default with { FlushInterval = FlushInterval }, _time, static ex => throw ex);
        _clock = new DeadlineClock(_time, [_operator], _outputs);
    }

    [Fact]
    public void Without_timers_buffered_output_or_a_source_to_poll_there_is_no_deadline()
    {
        _outputs.Add<int>(edgeId: 1, Self with { Chain = 1 });

        Assert.Null(_clock.NextDeadline(includeSourceRetry: false));
    }

    [Fact]
    public void A_timer_deadline_is_the_wall_clock_time_until_the_timer_in_stopwatch_ticks_and_now_once_it_is_due()
    {
        _operator.NextTimer = _time.GetUtcNow().ToUnixTimeMilliseconds() + 250;

        Assert.Equal(_time.GetTimestamp() + Ticks(250), _clock.NextDeadline(includeSourceRetry: false));

        _time.Advance(TimeSpan.FromMilliseconds(400));

        Assert.Equal(_time.GetTimestamp(), _clock.NextDeadline(includeSourceRetry: false));
    }

    [Fact]
    public void The_deadline_is_the_earliest_of_the_next_timer_the_output_flush_and_the_source_retry()
    {
        var channel = _outputs.Add<int>(edgeId: 1, Self with { Chain = 1 });
        _outputs.FlushIfDue(); // starts the flush interval
        channel.Add(1);
        var start = _time.GetTimestamp();
        _operator.NextTimer = _time.GetUtcNow().ToUnixTimeMilliseconds() + 20;
        _clock.RetrySourceAfter(TimeSpan.FromMilliseconds(5));

        Assert.Equal(start + Ticks(5), _clock.NextDeadline(includeSourceRetry: true));
        Assert.Equal(start + Ticks(20), _clock.NextDeadline(includeSourceRetry: false));

        _operator.NextTimer = null;

        Assert.Equal(start + Ticks(FlushInterval.TotalMilliseconds), _clock.NextDeadline(includeSourceRetry: false));
    }

    [Fact]
    public void The_source_may_be_polled_once_the_wait_it_asked_for_is_over()
    {
        Assert.True(_clock.SourceMayPoll);

        _clock.RetrySourceAfter(TimeSpan.FromMilliseconds(3));
        Assert.False(_clock.SourceMayPoll);
        _time.Advance(TimeSpan.FromMilliseconds(2));
        Assert.False(_clock.SourceMayPoll);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(_clock.SourceMayPoll);
    }

    [Theory]
    [InlineData(0.3, 1)]
    [InlineData(1.0, 1)]
    [InlineData(2.2, 3)]
    [InlineData(250.0, 250)]
    public void A_wait_for_a_deadline_to_come_lasts_whole_milliseconds_rounded_up(double untilMs, int waitMs)
    {
        Assert.Equal(TimeSpan.FromMilliseconds(waitMs), _clock.WaitUntil(_time.GetTimestamp() + Ticks(untilMs)));
    }

    [Fact]
    public void There_is_no_wait_for_a_deadline_that_has_come()
    {
        Assert.Equal(TimeSpan.Zero, _clock.WaitUntil(_time.GetTimestamp()));
        Assert.Equal(TimeSpan.Zero, _clock.WaitUntil(_time.GetTimestamp() - Ticks(5)));
    }

    private static long Ticks(double milliseconds) => (long)(milliseconds * Stopwatch.Frequency / 1000);

    /// <summary>
    /// A clock whose wall time and stopwatch timestamps both move only when told to. (<see cref="StreamGrains.Testing.ManualTimeProvider"/>
    /// moves the wall time only; its timestamps are the real stopwatch's, and deadlines are in stopwatch ticks.)
    /// </summary>
    private sealed class SteppedTimeProvider : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        private long _timestamp = 1_000 * Stopwatch.Frequency;

        public override long TimestampFrequency => Stopwatch.Frequency;

        public override DateTimeOffset GetUtcNow() => _now;

        public override long GetTimestamp() => _timestamp;

        public void Advance(TimeSpan delta)
        {
            _now += delta;
            _timestamp += (long)(delta.TotalSeconds * Stopwatch.Frequency);
        }
    }
}
