namespace StreamGrains.Abstractions.Tests;

/// <summary>A clock that only moves when the test moves it; timestamps are in <see cref="TimeSpan"/> ticks.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private long _ticks = TimeSpan.TicksPerDay;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public TimeSpan Elapsed { get; private set; }

    public override long GetTimestamp() => _ticks;

    public void Advance(TimeSpan delta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delta, TimeSpan.Zero);
        _ticks += delta.Ticks;
        Elapsed += delta;
    }
}
