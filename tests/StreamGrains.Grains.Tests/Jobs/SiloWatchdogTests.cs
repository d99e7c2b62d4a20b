using StreamGrains.Grains.Jobs;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

public sealed class SiloWatchdogTests
{
    private static readonly JobId Job = new("watched");

    [Fact]
    public void A_subtask_of_the_attempt_on_a_silo_that_left_fails_the_attempt_with_kind_silo_lost()
    {
        var subtasks = new Dictionary<SubtaskId, SubtaskStatus>
        {
            [new SubtaskId(Job, 0, 0, 2)] = Status(0, 2, "silo-a"),
            [new SubtaskId(Job, 0, 1, 2)] = Status(1, 2, "silo-b"),
        };

        var failure = SiloWatchdog.FindLostSilo(subtasks, attempt: 2, new HashSet<string>(["silo-a"]));

        Assert.NotNull(failure);
        Assert.Equal(JobFailureKind.SiloLost, failure.Kind);
        Assert.Null(failure.ExceptionType);
        Assert.Equal(1, failure.SubtaskIndex);
        Assert.Contains("silo-b", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Subtasks_of_older_attempts_and_subtasks_without_a_silo_yet_do_not_count()
    {
        var subtasks = new Dictionary<SubtaskId, SubtaskStatus>
        {
            [new SubtaskId(Job, 0, 0, 1)] = Status(0, 1, "silo-gone"),
            [new SubtaskId(Job, 0, 0, 2)] = Status(0, 2, "silo-a"),
            [new SubtaskId(Job, 0, 1, 2)] = Status(1, 2, silo: null),
        };

        Assert.Null(SiloWatchdog.FindLostSilo(subtasks, attempt: 2, new HashSet<string>(["silo-a"])));
    }

    private static SubtaskStatus Status(int index, int attempt, string? silo) => new() { Chain = "c", Index = index, Attempt = attempt, Silo = silo };
}
