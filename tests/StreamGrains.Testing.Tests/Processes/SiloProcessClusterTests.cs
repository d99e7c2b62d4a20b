using System.Diagnostics;
using System.Globalization;
using StreamGrains.ProcessTestJobs;
using StreamGrains.Runtime;
using StreamGrains.Samples;
using StreamGrains.Snapshots;
using StreamGrains.TestInfrastructure;
using Xunit.Abstractions;

namespace StreamGrains.Testing.Tests.Processes;

/// <summary>Silos of the real host as separate processes: cluster forming, SIGKILL, SIGTERM, replacement, orphans.</summary>
[Collection(nameof(SiloProcessesCollection))]
public sealed class SiloProcessClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Three_silo_processes_with_localhost_clustering_recover_a_killed_silo_with_exact_counts()
    {
        // Localhost clustering: silo 0 holds the membership table, so the test kills another silo.
        await KilledSiloRecoversExactCountsAsync(Options(), mayKillPrimary: false);
    }

    [Fact]
    public async Task Three_silo_processes_with_azure_table_clustering_and_blob_storage_recover_a_killed_silo_with_exact_counts()
    {
        // Azurite must start here; when it cannot (no Node.js), this test fails, it is never skipped.
        await using var azurite = await AzuriteServer.StartAsync(startTableService: true);
        await KilledSiloRecoversExactCountsAsync(
            Options() with
            {
                Clustering = SiloProcessClustering.AzureStorage,
                AzureStorageConnectionString = azurite.ConnectionString,
                BlobConnectionString = azurite.ConnectionString,
                BlobContainer = "kit-checkpoints",
            },
            mayKillPrimary: true);
    }

    [Fact]
    public async Task Silos_stop_when_their_parent_process_is_gone_and_a_stopped_silo_is_replaced()
    {
        using var parent = Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;
        var options = Options() with
        {
            Environment = new Dictionary<string, string> { ["STREAMGRAINS_PARENT_PID"] = parent.Id.ToString(CultureInfo.InvariantCulture) },
        };
        await using var cluster = await SiloProcessCluster.StartAsync(options, silos: 2);
        try
        {
            // SIGTERM: the host stops gracefully and exits with 0; a replacement joins on new ports.
            Assert.Equal(0, await cluster.StopAsync(1));
            var replacement = await cluster.StartReplacementAsync();
            Assert.Equal(2, replacement.Index);
            Assert.NotEqual(cluster.Silos[1].Layout.SiloPort, replacement.Layout.SiloPort);

            // The stand-in parent dies: both running silos notice and exit on their own.
            parent.Kill();
            await parent.WaitForExitAsync();
            await Task.WhenAll(cluster.Silos[0].Exited, replacement.Exited).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Contains("STREAMGRAINS_PARENT_PID", cluster.Silos[0].LogTail(), StringComparison.Ordinal);
            Assert.Contains("STREAMGRAINS_PARENT_PID", replacement.LogTail(), StringComparison.Ordinal);
        }
        catch
        {
            output.WriteLine(cluster.DescribeLogs());
            throw;
        }
    }

    [Fact]
    public async Task Dispose_kills_every_silo_process()
    {
        var cluster = await SiloProcessCluster.StartAsync(Options(), silos: 1);
        var silo = cluster.Silos[0];
        Assert.False(silo.HasExited);

        await cluster.DisposeAsync();

        Assert.True(silo.Exited.IsCompleted);
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(silo.ProcessId).Dispose());
        Assert.False(Directory.Exists(cluster.RootDirectory));
    }

    private static SiloProcessClusterOptions Options() => new()
    {
        HostPath = SiloHost.Path,
        JobAssemblies = [typeof(FileCountJob).Assembly.Location],
    };

    /// <summary>
    /// A checkpointed keyed count on three silo processes; after a completed checkpoint one silo with subtasks (not the
    /// one of the job grain or the coordinator when there is a choice) is SIGKILLed; the job restarts, finishes, and
    /// the newest attempt's count of every key is exact.
    /// </summary>
    private async Task KilledSiloRecoversExactCountsAsync(SiloProcessClusterOptions options, bool mayKillPrimary)
    {
        const long Events = 600_000;
        const long Keys = 20_000;
        const long Seed = 17;
        await using var cluster = await SiloProcessCluster.StartAsync(options, silos: 3);
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
                Restart = RestartStrategy.FixedDelay(20, TimeSpan.FromMilliseconds(200)),
            });
            await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
            Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

            var status = await client.GetStatusAsync(jobId);
            var jobSilo = await cluster.SiloOfAsync(client.Grains.GetGrain<IJobGrain>(jobId.Value));
            var coordinatorSilo = await cluster.SiloOfAsync(client.Grains.GetGrain<ICheckpointCoordinatorGrain>(jobId.Value));
            var candidates = status.Subtasks
                .Where(s => s.Attempt == status.Attempt)
                .Select(s => cluster.IndexOf(s.Silo))
                .OfType<int>()
                .Distinct()
                .Where(i => mayKillPrimary || i != 0)
                .Order()
                .ToList();
            Assert.NotEmpty(candidates);
            var victim = candidates.Where(i => i != jobSilo && i != coordinatorSilo).DefaultIfEmpty(candidates[0]).First();
            output.WriteLine($"job grain on silo {jobSilo}, coordinator on silo {coordinatorSilo}, subtasks on [{string.Join(", ", candidates)}]; killing silo {victim}");

            await cluster.KillAsync(victim);
            Assert.True(cluster.Silos[victim].HasExited);
            var recovered = await FailoverWait.UntilAsync(cluster, jobId, s => s.Attempt > status.Attempt && s.State is JobState.Running or JobState.Finished, Timeout);
            var final = recovered.State == JobState.Finished ? recovered : await FailoverWait.UntilAsync(cluster, jobId, static s => s.State.IsTerminal(), Timeout);

            Assert.Equal(JobState.Finished, final.State);
            Assert.True(final.Restarts >= 1, $"expected a restart, saw {final.Restarts}: {string.Join(" | ", final.Warnings)}");
            Assert.DoesNotContain(final.Subtasks, s => cluster.IndexOf(s.Silo) == victim && s.Attempt == final.Attempt);
            AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), FileUpsertResults.Read(results));
        }
        catch
        {
            output.WriteLine(cluster.DescribeLogs());
            throw;
        }
    }

    internal static void AssertExactCounts(Dictionary<string, long> expected, Dictionary<string, long> actual)
    {
        var wrong = expected.Where(e => actual.GetValueOrDefault(e.Key) != e.Value).Take(5).Select(e => $"{e.Key}: expected {e.Value}, got {actual.GetValueOrDefault(e.Key)}").ToList();
        Assert.True(wrong.Count == 0, $"counts differ: {string.Join(", ", wrong)}");
        Assert.Equal(expected.Count, actual.Count);
    }
}
