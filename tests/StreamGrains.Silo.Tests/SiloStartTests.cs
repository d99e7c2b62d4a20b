using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using StreamGrains.Grains;

namespace StreamGrains.Silo.Tests;

public sealed class SiloStartTests(LocalSilo silo) : IClassFixture<LocalSilo>
{
    [Fact]
    public void A_started_silo_logs_no_participant_check_stall()
    {
        // The host's start returned after the watchdog started (before the silo joined the cluster), so its platform
        // thread's first check, the one that saw the unset timestamp, has run.
        var stalls = silo.Logs.Where(static l => l.Level >= LogLevel.Warning && l.Message.Contains("Participant check thread", StringComparison.Ordinal)).ToList();

        Assert.Empty(stalls);
        Assert.Contains(silo.Logs, static l => l.Category.StartsWith("Orleans", StringComparison.Ordinal));
    }

    [Fact]
    public void Membership_timestamps_count_from_the_silo_start_not_from_boot()
    {
        var clock = silo.Services.GetRequiredKeyedService<TimeProvider>(TimeProviderNames.Membership);

        Assert.IsType<SiloStartClock>(clock);

        // A timestamp left at 0 by Orleans' watchdog measures the time since the clock's origin: the silo's start.
        Assert.True(clock.GetElapsedTime(0) < TimeSpan.FromSeconds(20), $"elapsed since 0: {clock.GetElapsedTime(0)}");
        var before = clock.GetTimestamp();
        Assert.True(clock.GetElapsedTime(before) >= TimeSpan.Zero);
    }

    [Fact]
    public void The_silo_start_clock_moves_with_the_system_clock()
    {
        var clock = new SiloStartClock();
        var start = clock.GetTimestamp();
        var systemStart = TimeProvider.System.GetTimestamp();
        Thread.SpinWait(100_000);
        var elapsed = clock.GetElapsedTime(start);
        var systemElapsed = TimeProvider.System.GetElapsedTime(systemStart);

        Assert.True(start > 0);
        Assert.True(clock.GetElapsedTime(0) < TimeSpan.FromSeconds(1));
        Assert.True((elapsed - systemElapsed).Duration() < TimeSpan.FromMilliseconds(50), $"{elapsed} vs {systemElapsed}");
        Assert.Equal(TimeProvider.System.TimestampFrequency, clock.TimestampFrequency);
    }
}
