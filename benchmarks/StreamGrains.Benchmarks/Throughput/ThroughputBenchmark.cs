using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using RocksDbSharp;
using StreamGrains.Client;
using StreamGrains.Grains;
using StreamGrains.Samples;
using StreamGrains.State.RocksDb;

namespace StreamGrains.Benchmarks.Throughput;

internal sealed record ThroughputSettings(long Events, long Keys, int Parallelism, int CacheEntries, long Seed, int Runs);

/// <summary>
/// Keyed count (ClickCounts, output discarded) on an embedded one-silo cluster, against a single-threaded RocksDB
/// get+put loop over the same key sequence with the same RocksDB options, WAL off, in the same process.
/// </summary>
internal static class ThroughputBenchmark
{
    public static async Task<int> RunAsync(ThroughputSettings settings, CancellationToken cancellationToken)
    {
        var common = new Dictionary<string, object?>
        {
            ["benchmark"] = "throughput",
            ["events"] = settings.Events,
            ["keys"] = settings.Keys,
            ["parallelism"] = settings.Parallelism,
            ["state_cache_entries"] = settings.CacheEntries,
            ["processors"] = Environment.ProcessorCount,
        };

        // Warm up both paths (JIT, RocksDB files) on a small input before measuring.
        await RunEngineAsync(settings with { Events = Math.Min(settings.Events, 200_000) }, cancellationToken);
        RunRaw(settings with { Events = Math.Min(settings.Events, 200_000) });

        var engine = new List<double>();
        var raw = new List<double>();
        for (var run = 1; run <= settings.Runs; run++)
        {
            var engineSeconds = await RunEngineAsync(settings, cancellationToken);
            var rawSeconds = RunRaw(settings);
            engine.Add(settings.Events / engineSeconds);
            raw.Add(settings.Events / rawSeconds);
            Report.Line(new Dictionary<string, object?>(common)
            {
                ["phase"] = "run",
                ["run"] = run,
                ["engine_seconds"] = Report.Round(engineSeconds),
                ["raw_rocksdb_seconds"] = Report.Round(rawSeconds),
                ["engine_records_per_s"] = Math.Round(engine[^1]),
                ["raw_rocksdb_records_per_s"] = Math.Round(raw[^1]),
                ["ratio"] = Report.Round(engine[^1] / raw[^1]),
            });
        }

        var engineMedian = Median(engine);
        var rawMedian = Median(raw);
        Report.Line(new Dictionary<string, object?>(common)
        {
            ["phase"] = "summary",
            ["runs"] = settings.Runs,
            ["engine_records_per_s"] = Math.Round(engineMedian),
            ["raw_rocksdb_records_per_s"] = Math.Round(rawMedian),
            ["ratio"] = Report.Round(engineMedian / rawMedian),
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }

    private static async Task<double> RunEngineAsync(ThroughputSettings settings, CancellationToken cancellationToken)
    {
        await using var cluster = await EmbeddedCluster.StartAsync(new EmbeddedClusterOptions { ConfigureRuntime = o => o.StateCacheEntries = settings.CacheEntries }, cancellationToken);
        var client = new StreamGrainsClient(cluster.Grains);
        var spec = new JobSpec
        {
            JobType = typeof(ClickCounts).FullName!,
            Parallelism = settings.Parallelism,
            Parameters = JobParameters.Empty.With("events", settings.Events).With("keys", settings.Keys).With("seed", settings.Seed).With("sink", "none"),
        };
        var watch = Stopwatch.StartNew();
        var jobId = await client.SubmitAsync(spec, cancellationToken);
        var status = await client.WaitForCompletionAsync(jobId, TimeSpan.FromMinutes(30), cancellationToken: cancellationToken);
        var seconds = watch.Elapsed.TotalSeconds;
        if (status.SourceRecords != settings.Events)
        {
            throw new InvalidOperationException($"The engine read {status.SourceRecords} records, expected {settings.Events}.");
        }

        return seconds;
    }

    /// <summary>One thread: for each event, derive the same user key the job uses, get its count, put count + 1.</summary>
    private static double RunRaw(ThroughputSettings settings)
    {
        var directory = Path.Combine(Path.GetTempPath(), "streamgrains-bench", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        using var resources = new RocksDbResources();
        try
        {
            var columnFamilies = new ColumnFamilies(resources.CreateColumnFamilyOptions());
            using var db = RocksDb.Open(resources.CreateDbOptions(), directory, columnFamilies);
            var cf = db.CreateColumnFamily(resources.CreateColumnFamilyOptions(), "count");
            var write = new WriteOptions().DisableWal(1);
            var key = new byte[64];
            var value = new byte[8];
            var watch = Stopwatch.StartNew();
            for (long i = 0; i < settings.Events; i++)
            {
                var user = ClickCounts.Generate(settings.Seed, settings.Keys, i).UserId;
                var length = Encoding.UTF8.GetBytes(user, key);
                var keySpan = key.AsSpan(0, length);
                var current = db.Get(keySpan, cf);
                var count = current is null ? 0 : BinaryPrimitives.ReadInt64LittleEndian(current);
                BinaryPrimitives.WriteInt64LittleEndian(value, count + 1);
                db.Put(keySpan, value, cf, write);
            }

            return watch.Elapsed.TotalSeconds;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
