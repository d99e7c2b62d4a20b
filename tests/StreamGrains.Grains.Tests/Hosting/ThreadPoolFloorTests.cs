namespace StreamGrains.Grains.Tests;

public sealed class ThreadPoolFloorTests
{
    [Fact]
    public void The_floor_is_only_ever_raised()
    {
        // Above the silos' default (64): silos starting in parallel tests never raise the floor past that.
        ThreadPool.GetMinThreads(out var before, out var io);
        var target = Math.Max(before, 64) + 1;

        var raised = ThreadPoolFloor.Raise(target);
        var lowered = ThreadPoolFloor.Raise(target - 1);
        ThreadPool.GetMinThreads(out var after, out var ioAfter);

        Assert.NotNull(raised);
        Assert.Equal(target, raised.Value.After);
        Assert.True(raised.Value.Before < target);
        Assert.Null(lowered);
        Assert.Equal((target, io), (after, ioAfter));
    }
}
