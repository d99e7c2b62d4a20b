using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using RocksDbSharp;
using StreamGrains.State;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Serialization;

namespace StreamGrains.Benchmarks.Savepoints;

internal sealed record CanonicalSettings(int StateMb, int ValueBytes, int Parallelism, int RestoreParallelism, long Seed, int Runs)
{
    public long Keys => (long)StateMb * 1024 * 1024 / ValueBytes;
}

internal sealed record CanonicalRun(long FileBytes, long Entries, double WriteSeconds, long RawBytes, double RawWriteSeconds, long RestoredBytes, double RestoreSeconds, double RawRestoreSeconds);

/// <summary>
/// Canonical savepoint throughput: <c>--state-mb</c> of keyed state in real backends at <c>--parallelism</c> is written
/// as canonical files (from RocksDB checkpoints, as a subtask does) and restored at <c>--restore-parallelism</c>.
/// Baselines in the same run, on the same data: writing every key and value of the same checkpoints raw to a file, and
/// restoring by copying the entries of the target key groups from the source checkpoints into a new database with the
/// same write batches. Subtasks run one after the other, so the figures are per thread; <c>--runs</c> alternate the
/// canonical and raw paths and the summary reports medians.
/// </summary>
internal static class CanonicalSavepointBenchmark
{
    private const int MaxParallelism = KeyGroups.DefaultMaxParallelism;
    private static readonly ValueStateDescriptor<byte[]> Payload = new("payload");
    private static readonly MapStateDescriptor<string, long> Tags = new("tags");

    public static Task<int> RunAsync(CanonicalSettings settings, CancellationToken cancellationToken)
    {
        var fields = new Dictionary<string, object?>
        {
            ["benchmark"] = "canonical",
            ["state_mb"] = settings.StateMb,
            ["keys"] = settings.Keys,
            ["value_bytes"] = settings.ValueBytes,
            ["parallelism"] = settings.Parallelism,
            ["restore_parallelism"] = settings.RestoreParallelism,
            ["processors"] = Environment.ProcessorCount,
        };
        var root = Path.Combine(Path.GetTempPath(), "streamgrains-bench", "canonical-" + Guid.NewGuid().ToString("N")[..8]);
        using var resources = new RocksDbResources();
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        try
        {
            var checkpoints = Load(settings, root, resources, serializer, fields);
            var runs = new List<CanonicalRun>();
            for (var run = 1; run <= settings.Runs; run++)
            {
                runs.Add(Measure(settings, checkpoints, root, resources, cancellationToken));
                var last = runs[^1];
                Report.Line(new Dictionary<string, object?>(fields)
                {
                    ["phase"] = "run",
                    ["run"] = run,
                    ["canonical_bytes"] = last.FileBytes,
                    ["entries"] = last.Entries,
                    ["write_seconds"] = Report.Round(last.WriteSeconds),
                    ["raw_write_bytes"] = last.RawBytes,
                    ["raw_write_seconds"] = Report.Round(last.RawWriteSeconds),
                    ["restore_bytes_read"] = last.RestoredBytes,
                    ["restore_seconds"] = Report.Round(last.RestoreSeconds),
                    ["raw_restore_seconds"] = Report.Round(last.RawRestoreSeconds),
                });
            }

            Report.Line(new Dictionary<string, object?>(fields)
            {
                ["phase"] = "summary",
                ["runs"] = settings.Runs,
                ["write_mb_per_s"] = Report.Round(Median(runs, static r => Mb(r.FileBytes) / r.WriteSeconds), 1),
                ["raw_write_mb_per_s"] = Report.Round(Median(runs, static r => Mb(r.RawBytes) / r.RawWriteSeconds), 1),
                ["restore_mb_per_s"] = Report.Round(Median(runs, static r => Mb(r.RestoredBytes) / r.RestoreSeconds), 1),
                ["raw_restore_mb_per_s"] = Report.Round(Median(runs, static r => Mb(r.RestoredBytes) / r.RawRestoreSeconds), 1),
                ["write_ratio"] = Report.Round(Median(runs, static r => r.RawWriteSeconds / r.WriteSeconds)),
                ["restore_ratio"] = Report.Round(Median(runs, static r => r.RawRestoreSeconds / r.RestoreSeconds)),
                ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
            });
            return Task.FromResult(0);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static double Mb(long bytes) => bytes / 1024.0 / 1024.0;

    private static double Median(List<CanonicalRun> runs, Func<CanonicalRun, double> value)
    {
        var sorted = runs.Select(value).Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>One run: canonical write of every subtask, raw write, restore of every target subtask, raw restore.</summary>
    private static CanonicalRun Measure(CanonicalSettings settings, string[] checkpoints, string root, RocksDbResources resources, CancellationToken cancellationToken)
    {
        var files = new List<CanonicalStateFile>();
        var watch = Stopwatch.StartNew();
        for (var subtask = 0; subtask < settings.Parallelism; subtask++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, settings.Parallelism, subtask);
            files.Add(CanonicalStateWriter.WriteFromDirectory(checkpoints[subtask], range, MaxParallelism, Path.Combine(root, $"savepoint-{subtask}.canonical"), cancellationToken));
        }

        var writeSeconds = watch.Elapsed.TotalSeconds;
        var rawWriteSeconds = RawWrite(checkpoints, Path.Combine(root, "raw.bin"), out var rawBytes);
        File.Delete(Path.Combine(root, "raw.bin"));

        double restoreSeconds = 0, rawRestoreSeconds = 0;
        long restoredBytes = 0;
        for (var subtask = 0; subtask < settings.RestoreParallelism; subtask++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, settings.RestoreParallelism, subtask);
            var request = new CanonicalRestoreRequest
            {
                Files = files.Select(static f => f.Path).ToList(),
                KeyGroups = range,
                MaxParallelism = MaxParallelism,
                TargetDirectory = Path.Combine(root, $"restored-{subtask}"),
            };
            watch.Restart();
            var result = CanonicalStateReader.Restore(request, resources, cancellationToken: cancellationToken);
            restoreSeconds += watch.Elapsed.TotalSeconds;
            restoredBytes += result.Progress.BytesDone;
            Directory.Delete(request.TargetDirectory, recursive: true);

            watch.Restart();
            var rawEntries = RawRestore(checkpoints, range, Path.Combine(root, $"raw-restored-{subtask}"), resources);
            rawRestoreSeconds += watch.Elapsed.TotalSeconds;
            if (rawEntries != result.TotalEntries)
            {
                throw new InvalidOperationException($"The restore of {range} wrote {result.TotalEntries} entries, the raw copy {rawEntries}.");
            }
        }

        return new CanonicalRun(files.Sum(static f => f.Length), files.Sum(static f => f.TotalEntries), writeSeconds, rawBytes, rawWriteSeconds, restoredBytes, restoreSeconds, rawRestoreSeconds);
    }

    /// <summary>
    /// Every key gets a value of <c>--value-bytes</c> random bytes; every fourth key also 4 map entries and a timer.
    /// Returns one RocksDB checkpoint directory per subtask.
    /// </summary>
    private static string[] Load(CanonicalSettings settings, string root, RocksDbResources resources, Serializer serializer, Dictionary<string, object?> fields)
    {
        var watch = Stopwatch.StartNew();
        var checkpoints = new string[settings.Parallelism];
        var random = new Random((int)settings.Seed);
        var assigner = new State.Keys.KeyGroupAssigner<string>(KeySerializers.For<string>(null, serializer), MaxParallelism);
        for (var subtask = 0; subtask < settings.Parallelism; subtask++)
        {
            var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, settings.Parallelism, subtask);
            using var backend = new RocksDbKeyedStateBackend<string>(
                new KeyedStateBackendOptions { Directory = Path.Combine(root, $"source-{subtask}"), KeyGroups = range, MaxParallelism = MaxParallelism, CacheCapacity = 1024 },
                KeySerializers.For<string>(null, serializer),
                serializer,
                resources);
            var payload = backend.GetValueState(Payload);
            var tags = backend.GetMapState(Tags);
            for (long i = 0; i < settings.Keys; i++)
            {
                var key = $"key-{i}";
                if (!range.Contains(assigner.KeyGroupOf(key)))
                {
                    continue;
                }

                backend.SetCurrentKey(key);
                var value = new byte[settings.ValueBytes];
                random.NextBytes(value);
                payload.Update(value);
                if (i % 4 == 0)
                {
                    for (var t = 0; t < 4; t++)
                    {
                        tags.Put($"tag-{t}", i);
                    }

                    backend.RegisterProcessingTimeTimer(1_700_000_000_000 + i);
                }
            }

            backend.Flush();
            checkpoints[subtask] = Path.Combine(root, $"checkpoint-{subtask}");
            using var checkpoint = backend.Database.Checkpoint();
            checkpoint.Save(checkpoints[subtask], 0);
        }

        Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "load", ["seconds"] = Report.Round(watch.Elapsed.TotalSeconds) });
        return checkpoints;
    }

    /// <summary>Baseline: every key and value of the checkpoints, length-prefixed, to one file.</summary>
    private static double RawWrite(string[] checkpoints, string path, out long bytes)
    {
        var watch = Stopwatch.StartNew();
        bytes = 0;
        using var output = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> length = stackalloc byte[4];
        foreach (var directory in checkpoints)
        {
            using var database = OpenReadOnly(directory, out var families);
            var readOptions = new ReadOptions().SetFillCache(false);
            foreach (var family in families)
            {
                using var iterator = database.NewIterator(family, readOptions);
                for (iterator.SeekToFirst(); iterator.Valid(); iterator.Next())
                {
                    var key = iterator.GetKeySpan();
                    var value = iterator.GetValueSpan();
                    System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(length, key.Length);
                    output.Write(length);
                    output.Write(key);
                    System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(length, value.Length);
                    output.Write(length);
                    output.Write(value);
                    bytes += 8 + key.Length + value.Length;
                }
            }
        }

        output.Flush();
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>Baseline: the entries of <paramref name="range"/> copied from the checkpoints into a new database in 4 MiB write batches, WAL off, flushed.</summary>
    private static long RawRestore(string[] checkpoints, KeyGroupRange range, string target, RocksDbResources resources)
    {
        var names = new[] { "_timers", Payload.Name, Tags.Name };
        var columnFamilyOptions = resources.CreateColumnFamilyOptions();
        var columnFamilies = new ColumnFamilies(columnFamilyOptions);
        foreach (var name in names)
        {
            columnFamilies.Add(name, columnFamilyOptions);
        }

        long entries = 0;
        using (var database = RocksDbSharp.RocksDb.Open(resources.CreateDbOptions(), target, columnFamilies))
        {
            var writeOptions = new WriteOptions().DisableWal(1);
            using var batch = new WriteBatch();
            long batchBytes = 0;
            var (start, end) = State.Keys.StateKeys.Bounds(range);
            foreach (var directory in checkpoints)
            {
                using var source = OpenReadOnly(directory, out _);
                var readOptions = new ReadOptions().SetFillCache(false);
                foreach (var name in names)
                {
                    var targetFamily = database.GetColumnFamily(name);
                    using var iterator = source.NewIterator(source.GetColumnFamily(name), readOptions);
                    for (iterator.Seek(start); iterator.Valid() && iterator.GetKeySpan().SequenceCompareTo(end) < 0; iterator.Next())
                    {
                        var key = iterator.GetKeySpan();
                        var value = iterator.GetValueSpan();
                        batch.Put(key, value, targetFamily);
                        entries++;
                        batchBytes += key.Length + value.Length + 12;
                        if (batchBytes >= CanonicalRestoreRequest.DefaultWriteBatchBytes)
                        {
                            database.Write(batch, writeOptions);
                            batch.Clear();
                            batchBytes = 0;
                        }
                    }
                }
            }

            database.Write(batch, writeOptions);
            var flush = new FlushOptions();
            foreach (var name in names)
            {
                Native.Instance.rocksdb_flush_cf(database.Handle, flush.Handle, database.GetColumnFamily(name).Handle);
            }

            GC.KeepAlive(flush);
        }

        Directory.Delete(target, recursive: true);
        return entries;
    }

    private static RocksDbSharp.RocksDb OpenReadOnly(string directory, out List<ColumnFamilyHandle> families)
    {
        var options = new DbOptions();
        var names = RocksDbSharp.RocksDb.ListColumnFamilies(options, directory).Where(static n => n != "default").ToList();
        var columnFamilies = new ColumnFamilies(new ColumnFamilyOptions());
        foreach (var name in names)
        {
            columnFamilies.Add(name, new ColumnFamilyOptions());
        }

        var database = RocksDbSharp.RocksDb.OpenReadOnly(options, directory, columnFamilies, errIfLogFileExists: false);
        families = names.Select(database.GetColumnFamily).ToList();
        return database;
    }
}
