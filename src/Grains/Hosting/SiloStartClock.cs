namespace StreamGrains.Grains;

/// <summary>
/// The system clock with timestamps that count from the clock's creation instead of from the machine's boot, for
/// Orleans' membership and health monitoring (the keyed <see cref="TimeProvider"/> <c>Orleans.Membership</c>).
/// </summary>
/// <remarks>
/// Orleans' <c>Watchdog.Start</c> starts its platform thread before it sets the component check's timestamp, so the
/// platform thread's first check may see that timestamp still 0 and measure the time since the timestamps' origin.
/// With <see cref="TimeProvider.System"/> that is the time since boot, and the silo logs "Participant check thread has
/// not completed for 00:21:16" (the machine's uptime) at start and records a stall in its health score. With this
/// clock the same check measures the time since the silo's services were created, below the warning's threshold
/// (twice <c>ClusterMembershipOptions.LocalHealthDegradationMonitoringPeriod</c>, 20 s by default). Only differences
/// of timestamps have a meaning, so moving their origin changes nothing else; wall-clock time and timers are the
/// system's.
/// </remarks>
public sealed class SiloStartClock : TimeProvider
{
    private readonly long _origin;

    /// <summary>Creates the clock; its timestamps start near 0 now.</summary>
    public SiloStartClock() => _origin = System.GetTimestamp() - 1;

    /// <inheritdoc />
    public override long GetTimestamp() => System.GetTimestamp() - _origin;
}
