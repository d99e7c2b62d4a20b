using System.Diagnostics;
using System.Globalization;
using StreamGrains.Client;
using StreamGrains.Grains;
using StreamGrains.Samples;

namespace StreamGrains.Silo;

internal sealed record DemoSettings(long Events, long Keys, int Parallelism, long Seed);

/// <summary>The <c>demo</c> command: the click-count sample, end to end, in one process, checked against an independent count.</summary>
internal static class DemoCommand
{
    public static async Task<int> RunAsync(DemoSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Events < 1 || settings.Keys < 1 || settings.Parallelism < 1)
        {
            await Console.Error.WriteLineAsync("--events, --keys and --parallelism must be at least 1.");
            return 2;
        }

        var total = Stopwatch.StartNew();
        Console.WriteLine($"Starting an in-process silo...");
        await using var cluster = await EmbeddedCluster.StartAsync(cancellationToken: cancellationToken);
        var client = new StreamGrainsClient(cluster.Grains);
        var spec = new JobSpec
        {
            JobType = typeof(ClickCounts).FullName!,
            Parallelism = settings.Parallelism,
            Parameters = JobParameters.Empty
                .With("events", settings.Events)
                .With("keys", settings.Keys)
                .With("seed", settings.Seed),
        };
        var jobId = await client.SubmitAsync(spec, cancellationToken);
        Console.WriteLine($"Submitted job {jobId}: {N(settings.Events)} clicks over {N(settings.Keys)} users, parallelism {settings.Parallelism}.");

        var run = Stopwatch.StartNew();
        var status = await client.WaitForCompletionAsync(
            jobId,
            TimeSpan.FromMinutes(10),
            new ConsoleProgress(settings.Events, run),
            TimeSpan.FromSeconds(1),
            cancellationToken);
        var seconds = run.Elapsed.TotalSeconds;

        Console.WriteLine("Reading the results and counting the clicks independently...");
        var counts = await client.ReadCollectedAsync<UserCount>(jobId, ClickCounts.DefaultSink, cancellationToken);
        var expected = ClickCounts.ExpectedCounts(settings.Seed, settings.Keys, settings.Events);
        var mismatches = counts.Count(c => !expected.TryGetValue(c.UserId, out var e) || e != c.Count) + Math.Max(0, expected.Count - counts.Count);
        var processed = status.SourceRecords;
        var ok = mismatches == 0 && processed == settings.Events;
        Console.WriteLine($"Total time {total.Elapsed.TotalSeconds:F1} s.");
        Console.WriteLine(ok
            ? $"Processed {N(processed)} records in {seconds:F1} s; {N(counts.Count)} keys; every key's count matched the independent computation: YES"
            : $"Processed {N(processed)} records in {seconds:F1} s; {N(counts.Count)} keys; every key's count matched the independent computation: NO ({N(mismatches)} keys differ)");
        return ok ? 0 : 1;
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private sealed class ConsoleProgress(long expected, Stopwatch run) : IProgress<JobStatus>
    {
        public void Report(JobStatus value)
        {
            var read = value.SourceRecords;
            var rate = run.Elapsed.TotalSeconds > 0 ? read / run.Elapsed.TotalSeconds : 0;
            Console.WriteLine($"[{run.Elapsed.TotalSeconds,5:F1} s] {value.State,-9} {N(read),13} / {N(expected)} records read ({read * 100.0 / expected,5:F1}%), {N((long)rate)} records/s");
        }
    }
}
