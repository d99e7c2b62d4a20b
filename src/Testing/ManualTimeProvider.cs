namespace StreamGrains.Testing;

/// <summary>A clock that moves only when told to, for deterministic tests of processing-time timers.</summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private DateTimeOffset _now;

    /// <summary>Creates the clock at <paramref name="start"/> (default: 2026-01-01T00:00:00Z).</summary>
    public ManualTimeProvider(DateTimeOffset? start = null) => _now = start ?? new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => _now;

    /// <summary>Current time in milliseconds since the Unix epoch.</summary>
    public long UnixMilliseconds => _now.ToUnixTimeMilliseconds();

    /// <summary>Moves the clock forward.</summary>
    public void Advance(TimeSpan delta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delta, TimeSpan.Zero);
        _now += delta;
    }

    /// <summary>Sets the clock to <paramref name="unixMilliseconds"/>, which must not be in the past.</summary>
    public void SetUnixMilliseconds(long unixMilliseconds)
    {
        var target = DateTimeOffset.FromUnixTimeMilliseconds(unixMilliseconds);
        ArgumentOutOfRangeException.ThrowIfLessThan(target, _now);
        _now = target;
    }
}
