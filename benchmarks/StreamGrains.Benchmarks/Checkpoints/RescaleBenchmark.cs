using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using StreamGrains.Snapshots;
using StreamGrains.State;
using StreamGrains.State.Keys;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record RescaleSettings(int StateMb, int ValueBytes, int From, int To, long Seed)
{
    public long Keys => (long)StateMb * 1024 * 1024 / ValueBytes;
}

/// <summary>
/// Restoring keyed state at another parallelism vs restoring it at the same one: <c>--state-mb</c> of values are written
/// by <c>--from</c> real RocksDB backends and checkpointed into filesystem storage; then every old subtask's state is
/// restored as it was (the baseline, <see cref="KeyedStateRestorer"/>), and every new subtask's range at <c>--to</c> is
/// restored with <see cref="RescalingRestorer"/>. Each restore runs alone and includes opening a backend on the result.
/// </summary>
internal static class RescaleBenchmark
{
    private const int MaxParallelism = KeyGroups.DefaultMaxParallelism;
    private static readonly ValueStateDescriptor<byte[]> Payload = new("payload");

    public static async Task<int> RunAsync(RescaleSettings settings, CancellationToken cancellationToken)
    {
        var fields = new Dictionary<string, object?>
        {
            ["benchmark"] = "rescale",
            ["storage"] = "filesystem",
            ["state_mb"] = settings.StateMb,
            ["keys"] = settings.Keys,
            ["value_bytes"] = settings.ValueBytes,
            ["from"] = settings.From,
            ["to"] = settings.To,
        };
        var root = Path.Combine(Path.GetTempPath(), "streamgrains-bench", "rescale-" + Guid.NewGuid().ToString("N")[..12]);
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        var keySerializer = KeySerializers.For<long>(null, serializer);
        using var resources = new RocksDbResources();
        var storage = new FileSystemCheckpointStorage(Path.Combine(root, "storage"));
        try
        {
            var watch = Stopwatch.StartNew();
            var handles = await LoadAndCheckpointAsync(settings, root, storage, resources, serializer, keySerializer, cancellationToken);
            Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "checkpointed", ["seconds"] = Report.Round(watch.Elapsed.TotalSeconds), ["full_size_bytes"] = handles.Sum(static h => h.FullSize) });

            var plain = new List<double>();
            foreach (var handle in handles)
            {
                var directory = Path.Combine(root, "plain");
                watch.Restart();
                await KeyedStateRestorer.RestoreAsync(handle, 1, storage, directory, localCopy: null, progress: null, cancellationToken);
                Open(directory, handle.KeyGroups, resources, serializer, keySerializer);
                plain.Add(watch.Elapsed.TotalSeconds);
                Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "plain", ["key_groups"] = handle.KeyGroups.ToString(), ["bytes"] = handle.FullSize, ["seconds"] = Report.Round(watch.Elapsed.TotalSeconds) });
                Directory.Delete(directory, recursive: true);
            }

            var rescaled = new List<double>();
            for (var subtask = 0; subtask < settings.To; subtask++)
            {
                var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, settings.To, subtask);
                var overlapping = handles.Where(h => !h.KeyGroups.Intersect(range).IsEmpty).ToList();
                var directory = Path.Combine(root, "rescaled");
                watch.Restart();
                var progress = await RescalingRestorer.RestoreAsync(overlapping, range, 1, storage, directory, Path.Combine(root, "scratch"), resources, progress: null, cancellationToken);
                var restoreSeconds = watch.Elapsed.TotalSeconds;
                Open(directory, range, resources, serializer, keySerializer);
                rescaled.Add(watch.Elapsed.TotalSeconds);
                Report.Line(new Dictionary<string, object?>(fields)
                {
                    ["phase"] = "rescaled",
                    ["key_groups"] = range.ToString(),
                    ["handles"] = overlapping.Count,
                    ["bytes"] = progress.BytesTotal,
                    ["restore_seconds"] = Report.Round(restoreSeconds),
                    ["seconds"] = Report.Round(watch.Elapsed.TotalSeconds),
                    ["live_sst_bytes"] = new DirectoryInfo(directory).EnumerateFiles("*.sst").Sum(static f => f.Length),
                });
                Directory.Delete(directory, recursive: true);
            }

            Report.Line(new Dictionary<string, object?>(fields)
            {
                ["phase"] = "summary",
                ["plain_max_s"] = Report.Round(plain.Max()),
                ["plain_total_s"] = Report.Round(plain.Sum()),
                ["rescaled_max_s"] = Report.Round(rescaled.Max()),
                ["rescaled_total_s"] = Report.Round(rescaled.Sum()),
            });
            return 0;
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static async Task<List<KeyedStateHandle>> LoadAndCheckpointAsync(
        RescaleSettings settings,
        string root,
        ICheckpointStorage storage,
        RocksDbResources resources,
        Serializer serializer,
        IKeySerializer<long> keySerializer,
        CancellationToken cancellationToken)
    {
        var assigner = new KeyGroupAssigner<long>(keySerializer, MaxParallelism);
        var random = new Random((int)settings.Seed);
        var handles = new List<KeyedStateHandle>();
        var backends = new List<RocksDbKeyedStateBackend<long>>();
        try
        {
            for (var subtask = 0; subtask < settings.From; subtask++)
            {
                var range = KeyGroups.ComputeKeyGroupRangeForOperatorIndex(MaxParallelism, settings.From, subtask);
                backends.Add(new RocksDbKeyedStateBackend<long>(
                    new KeyedStateBackendOptions { Directory = Path.Combine(root, $"old-{subtask}"), KeyGroups = range, MaxParallelism = MaxParallelism, CacheCapacity = 4_096 },
                    keySerializer,
                    serializer,
                    resources));
            }

            for (long key = 0; key < settings.Keys; key++)
            {
                var backend = backends[KeyGroups.ComputeOperatorIndexForKeyGroup(MaxParallelism, settings.From, assigner.KeyGroupOf(key))];
                backend.SetCurrentKey(key);
                // A new array per key (the write-back cache keeps the reference); half random, so it compresses about 2:1.
                var value = new byte[settings.ValueBytes];
                random.NextBytes(value.AsSpan(0, value.Length / 2));
                backend.GetValueState(Payload).Update(value);
                if (key % 100 == 0)
                {
                    backend.RegisterProcessingTimeTimer(key);
                }
            }

            for (var subtask = 0; subtask < settings.From; subtask++)
            {
                var backend = backends[subtask];
                var snapshotter = new IncrementalSnapshotter(backend, storage, new SnapshotOwner("bench", "state", subtask, backend.KeyGroupRange), Path.Combine(root, $"old-{subtask}-local"), restored: null, keepLocalCopies: false);
                handles.Add((await snapshotter.UploadAsync(snapshotter.TakeLocalSnapshot(1), cancellationToken)).Handle);
                snapshotter.Completed(1);
            }

            return handles;
        }
        finally
        {
            foreach (var backend in backends)
            {
                backend.Dispose();
            }
        }
    }

    private static void Open(string directory, KeyGroupRange range, RocksDbResources resources, Serializer serializer, IKeySerializer<long> keySerializer)
    {
        using var backend = new RocksDbKeyedStateBackend<long>(
            new KeyedStateBackendOptions { Directory = directory, KeyGroups = range, MaxParallelism = MaxParallelism, CacheCapacity = 4_096 },
            keySerializer,
            serializer,
            resources);
        _ = backend.TimerCount;
    }
}
