using System.Diagnostics;
using StreamGrains.ProcessTestJobs;
using StreamGrains.Samples;
using StreamGrains.Snapshots;
using Xunit.Abstractions;

namespace StreamGrains.Testing.Tests.Processes;

/// <summary>
/// A SIGKILLed silo process is declared dead as soon as its port refuses connections, not after Orleans' membership
/// probes: with probes slowed down to one every 20 s (which would take a minute or more to declare it dead), the job
/// recovers with exact counts, the killed silo leaves the membership long before a single probe period, and a surviving
/// silo says why.
/// </summary>
[Collection(nameof(SiloProcessesCollection))]
public sealed class CrashedSiloDetectionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan SlowProbes = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_killed_silo_is_declared_dead_at_once_because_its_port_refuses_connections()
    {
        const long Events = 300_000;
        const long Keys = 5_000;
        const long Seed = 31;
        await using var cluster = await SiloProcessCluster.StartAsync(
            new SiloProcessClusterOptions
            {
                HostPath = SiloHost.Path,
                JobAssemblies = [typeof(FileCountJob).Assembly.Location],
                Settings = new Dictionary<string, string> { ["Cluster:Membership:ProbeTimeout"] = SlowProbes.ToString("c", System.Globalization.CultureInfo.InvariantCulture) },
            },
            silos: 3);
        var results = Path.Combine(cluster.RootDirectory, "results");
        try
        {
            var client = cluster.Client;
            var jobId = await client.SubmitAsync(new JobSpec
            {
                JobType = typeof(FileCountJob).FullName!,
                Parallelism = 3,
                Parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 30_000).With("dir", results),
                Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromSeconds(1), Timeout = TimeSpan.FromSeconds(30) },
                Restart = RestartStrategy.FixedDelay(5, TimeSpan.FromMilliseconds(200)),
            });
            await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
            Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);
            var before = await client.GetStatusAsync(jobId);

            // Silo 0 holds the membership table (Localhost clustering): kill another one that runs subtasks.
            var victim = before.Subtasks.Select(s => cluster.IndexOf(s.Silo)).OfType<int>().Where(static i => i > 0).Order().First();
            var port = cluster.Silos[victim].Layout.SiloPort;
            var management = cluster.Client.Grains.GetGrain<IManagementGrain>(0);
            await cluster.KillAsync(victim);
            var killed = Stopwatch.StartNew();

            // Polling: membership changes offer nothing a client can await.
            while ((await management.GetHosts(onlyActive: true)).Keys.Any(a => a.Endpoint.Port == port))
            {
                Assert.True(killed.Elapsed < SlowProbes, $"silo {victim} was still Active {killed.Elapsed.TotalSeconds:0.0} s after it was killed");
                await Task.Delay(100);
            }

            var declaredAfter = killed.Elapsed;
            var final = await client.WaitForAsync(jobId, static s => s.State.IsTerminal(), Timeout);

            output.WriteLine($"silo {victim} left the membership {declaredAfter.TotalSeconds:0.00} s after SIGKILL; job {final.State} after {final.Restarts} restarts");
            Assert.Equal(JobState.Finished, final.State);
            Assert.True(final.Restarts >= 1, "the job restarted after the kill");
            Assert.Contains(
                cluster.Silos.Where(s => !s.HasExited),
                s => s.LogTail().Contains($"127.0.0.1:{port}", StringComparison.Ordinal) && s.LogTail().Contains("refuses connections on its silo port", StringComparison.Ordinal));
            var expected = ClickCounts.ExpectedCounts(Seed, Keys, Events);
            var actual = FileUpsertResults.Read(results);
            Assert.Equal(expected.Count, actual.Count);
            Assert.All(expected, e => Assert.Equal(e.Value, actual.GetValueOrDefault(e.Key)));
        }
        catch
        {
            output.WriteLine(cluster.DescribeLogs());
            throw;
        }
    }
}
