using StreamGrains.Samples;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

public sealed class KeyedCountTests
{
    [Fact]
    public async Task Keyed_count_on_three_silos_gives_exact_counts_and_uses_every_silo()
    {
        const long Events = 2_000_000;
        const long Keys = 50_000;
        const long Seed = 7;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 3 });
        var parameters = new JobParameters([new("events", $"{Events}"), new("keys", $"{Keys}"), new("seed", $"{Seed}")]);

        var jobId = await cluster.SubmitAsync<ClickCounts>(parameters, parallelism: 4);
        var status = await cluster.Client.WaitForCompletionAsync(jobId, TimeSpan.FromMinutes(3));

        Assert.Equal(JobState.Finished, status.State);
        var counts = await cluster.Client.ReadCollectedAsync<UserCount>(jobId, ClickCounts.DefaultSink);
        var expected = ClickCounts.ExpectedCounts(Seed, Keys, Events);
        Assert.Equal(expected.Count, counts.Count);
        foreach (var count in counts)
        {
            Assert.Equal(expected[count.UserId], count.Count);
        }

        Assert.Equal(Events, status.SourceRecords);
        Assert.Equal(8, status.Subtasks.Count);
        Assert.Equal(3, status.Subtasks.Select(s => s.Silo).Distinct().Count());
    }
}
