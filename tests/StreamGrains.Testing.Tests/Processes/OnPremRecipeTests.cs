using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using StreamGrains.Client;
using StreamGrains.Samples;
using Xunit.Abstractions;

namespace StreamGrains.Testing.Tests.Processes;

/// <summary>Runs the on-prem recipe of docs/deploy.md (scripts/deploy-onprem-check.sh) and checks the cluster it forms.</summary>
[Collection(nameof(SiloProcessesCollection))]
public sealed class OnPremRecipeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task The_on_prem_recipe_forms_a_cluster_of_three_silo_processes_that_runs_the_sample_job_exactly()
    {
        var script = Path.Combine(RepositoryRoot(), "scripts", "deploy-onprem-check.sh");
        var work = Path.Combine(Path.GetTempPath(), "streamgrains-onprem", Guid.NewGuid().ToString("N")[..12]);
        var (siloPort, gatewayPort) = ThreeFreePortPairs();
        List<int> pids = [];
        try
        {
            var (exitCode, scriptOutput) = await RunScriptAsync(script, SiloHost.Path, work, siloPort, gatewayPort);
            pids = File.Exists(Path.Combine(work, "pids")) ? [.. File.ReadAllLines(Path.Combine(work, "pids")).Select(static p => int.Parse(p, CultureInfo.InvariantCulture))] : [];
            Assert.True(exitCode == 0, $"the recipe script failed with {exitCode}:{Environment.NewLine}{scriptOutput}");
            Assert.Equal(3, pids.Count);

            await using var client = await StreamGrainsClient.ConnectAsync(new StreamGrainsClientOptions
            {
                ClusterId = "prod",
                Gateways = [.. Enumerable.Range(0, 3).Select(i => new IPEndPoint(IPAddress.Loopback, gatewayPort + i))],
            });
            await WaitForActiveSilosAsync(client, [siloPort, siloPort + 1, siloPort + 2]);

            var jobId = await client.SubmitAsync(new JobSpec
            {
                JobType = typeof(ClickCounts).FullName!,
                Parallelism = 3,
                Parameters = JobParameters.Empty.With("events", 100_000).With("keys", 1_000).With("seed", 5),
            });
            var final = await client.WaitForCompletionAsync(jobId, Timeout);
            var counts = await client.ReadCollectedAsync<UserCount>(jobId, ClickCounts.DefaultSink);

            Assert.Equal(JobState.Finished, final.State);
            Assert.Equal(3, final.Subtasks.Where(s => s.Attempt == final.Attempt).Select(static s => s.Silo).Distinct().Count());
            var expected = ClickCounts.ExpectedCounts(5, 1_000, 100_000);
            Assert.Equal(expected.Count, counts.Count);
            Assert.All(counts, c => Assert.Equal(expected[c.UserId], c.Count));
            Assert.NotEmpty(Directory.EnumerateFileSystemEntries(Path.Combine(work, "checkpoints")));
        }
        catch
        {
            foreach (var log in Directory.Exists(work) ? Directory.GetFiles(work, "silo*.log") : [])
            {
                output.WriteLine($"===== {log}{Environment.NewLine}{File.ReadAllText(log)}");
            }

            throw;
        }
        finally
        {
            foreach (var pid in pids)
            {
                try
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                    await process.WaitForExitAsync();
                }
                catch (ArgumentException)
                {
                    // Already gone.
                }
            }

            if (Directory.Exists(work))
            {
                Directory.Delete(work, recursive: true);
            }
        }
    }

    /// <summary>Runs the script with this process as the silos' parent (so they stop if this test process dies).</summary>
    private static async Task<(int ExitCode, string Output)> RunScriptAsync(string script, string host, string work, int siloPort, int gatewayPort)
    {
        var start = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { script, host, work, siloPort.ToString(CultureInfo.InvariantCulture), gatewayPort.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["STREAMGRAINS_PARENT_PID"] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(Timeout);
        return (process.ExitCode, await stdout + await stderr);
    }

    private static async Task WaitForActiveSilosAsync(StreamGrainsClient client, int[] siloPorts)
    {
        var management = client.Grains.GetGrain<IManagementGrain>(0);
        var elapsed = Stopwatch.StartNew();
        HashSet<int> active = [];
        while (elapsed.Elapsed < Timeout)
        {
            active = [.. (await management.GetHosts(true, CancellationToken.None)).Keys.Select(static a => a.Endpoint.Port)];
            if (active.SetEquals(siloPorts))
            {
                return;
            }

            // Polling: membership changes offer nothing a client can await.
            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }

        Assert.Fail($"active silo ports [{string.Join(", ", active)}], expected [{string.Join(", ", siloPorts)}]");
    }

    /// <summary>A first silo port and a first gateway port such that both runs of three consecutive ports are free now.</summary>
    private static (int SiloPort, int GatewayPort) ThreeFreePortPairs()
    {
        var random = new Random(Environment.ProcessId);
        while (true)
        {
            var silo = random.Next(20_000, 30_000);
            var gateway = silo + 10_000;
            if (Enumerable.Range(silo, 3).Concat(Enumerable.Range(gateway, 3)).All(IsFree))
            {
                return (silo, gateway);
            }
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "scripts", "deploy-onprem-check.sh")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No directory above {AppContext.BaseDirectory} contains scripts/deploy-onprem-check.sh.");
    }
}
