using System.Diagnostics;
using StreamGrains.Client;
using StreamGrains.Grains;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.TestInfrastructure;
using StreamGrains.Testing;

namespace StreamGrains.Benchmarks.Checkpoints;

/// <param name="Processes">Whether the silos run as processes of the real host (<c>src/Silo run</c>) instead of in this process.</param>
internal sealed record StateSettings(int StateMb, string Storage, int ValueBytes, double Rate, int Parallelism, int Silos, long Seed, bool Processes = false)
{
    public long Keys => (long)StateMb * 1024 * 1024 / ValueBytes;

    public JobParameters Parameters(string name) =>
        JobParameters.Empty.With("keys", Keys).With("valueBytes", ValueBytes).With("rate", Rate.ToString(System.Globalization.CultureInfo.InvariantCulture)).With("seed", Seed).With("name", name);

    public Dictionary<string, object?> Fields(string benchmark) => new()
    {
        ["benchmark"] = benchmark,
        ["storage"] = Storage,
        ["state_mb"] = StateMb,
        ["keys"] = Keys,
        ["value_bytes"] = ValueBytes,
        ["update_rate"] = Rate,
        ["parallelism"] = Parallelism,
        ["silos"] = Silos,
        ["processes"] = Processes,
    };
}

/// <summary>Checks of options that several benchmarks share; each throws with the option's name and value.</summary>
internal static class BenchChecks
{
    public static void Materialization(TimeSpan interval)
    {
        if (interval < TimeSpan.FromMilliseconds(100) || interval > TimeSpan.FromDays(1))
        {
            throw new ArgumentException($"--materialization-s must be between 0.1 and 86400, was {interval.TotalSeconds}.");
        }
    }

    public static void SegmentInterval(TimeSpan? interval)
    {
        if (interval is { } given && (given < TimeSpan.FromMilliseconds(10) || given > TimeSpan.FromMinutes(10)))
        {
            throw new ArgumentException($"--segment-interval-ms must be 0 (the engine's default) or between 10 and 600000, was {given.TotalMilliseconds}.");
        }
    }

    public static void Rounds(int rounds)
    {
        if (rounds is < 1 or > 100)
        {
            throw new ArgumentException($"--rounds must be between 1 and 100, was {rounds}.");
        }
    }

    public static void Settle(TimeSpan settle)
    {
        if (settle < TimeSpan.Zero || settle > TimeSpan.FromDays(1))
        {
            throw new ArgumentException($"--settle-s must be between 0 and 86400, was {settle.TotalSeconds}.");
        }
    }
}

/// <summary>
/// A multi-silo cluster with its checkpoint storage (a temp directory, or Blob Storage on an Azurite started here),
/// running <see cref="StateLoadJob"/> until its state is loaded. The silos run in this process, or with
/// <see cref="StateSettings.Processes"/> as processes of the real host (<see cref="SiloProcessCluster"/>).
/// </summary>
internal sealed class BenchEnvironment : IAsyncDisposable
{
    /// <summary>Parallel transfers per subtask in the snapshotter and restorer; raw baselines use as many per subtask.</summary>
    public const int TransfersPerSubtask = 4;

    private readonly AzuriteServer? _azurite;
    private readonly string? _fileRoot;

    private readonly StreamGrainsCluster? _inProcess;
    private readonly SiloProcessCluster? _processes;

    private BenchEnvironment(StreamGrainsCluster? inProcess, SiloProcessCluster? processes, AzuriteServer? azurite, string? fileRoot, ICheckpointStorage storage)
    {
        _inProcess = inProcess;
        _processes = processes;
        _azurite = azurite;
        _fileRoot = fileRoot;
        Storage = storage;
    }

    /// <summary>The in-process cluster.</summary>
    /// <exception cref="InvalidOperationException">When the silos run as processes.</exception>
    public StreamGrainsCluster Cluster => _inProcess ?? throw new InvalidOperationException("This benchmark does not support --processes.");

    public StreamGrainsClient Client => _inProcess?.Client ?? _processes!.Client;

    /// <summary>
    /// Kills a silo other than the first (which holds the membership table with Localhost clustering) that runs a subtask
    /// of the keyed chain in <paramref name="status"/>: an in-process silo without shutdown, or a silo process with SIGKILL,
    /// then one that hosts neither the job grain nor the checkpoint coordinator when there is a choice (their loss is
    /// recovered too, but adds their reactivation to the time measured). Returns whether the victim hosted either.
    /// </summary>
    public async Task<bool> KillSiloWithKeyedSubtaskAsync(JobStatus status, CancellationToken cancellationToken)
    {
        var keyedSilos = status.Subtasks.Where(static t => t.Chain.StartsWith("state", StringComparison.Ordinal)).Select(static t => t.Silo).ToHashSet(StringComparer.Ordinal);
        if (_processes is { } processes)
        {
            var candidates = keyedSilos.Select(processes.IndexOf).OfType<int>().Where(static i => i > 0).Order().ToList();
            if (candidates.Count == 0)
            {
                throw new InvalidOperationException("No silo process but the first runs a keyed subtask; use more parallelism or silos.");
            }

            var grains = processes.Client.Grains;
            var busy = new int?[] { await processes.SiloOfAsync(grains.GetGrain<StreamGrains.Runtime.IJobGrain>(status.JobId.Value)), await processes.SiloOfAsync(grains.GetGrain<StreamGrains.Runtime.ICheckpointCoordinatorGrain>(status.JobId.Value)) };
            var index = candidates.Where(i => !busy.Contains((int?)i)).DefaultIfEmpty(candidates[0]).First();
            await processes.KillAsync(index);
            return busy.Contains((int?)index);
        }

        var victim = Cluster.Orleans.Silos.Skip(1).FirstOrDefault(s => keyedSilos.Contains(s.SiloAddress.ToString()))
            ?? throw new InvalidOperationException("No silo but the first runs a keyed subtask; use more parallelism or silos.");
        await Cluster.Orleans.KillSiloAsync(victim, cancellationToken);
        return false;
    }

    /// <summary>The same storage the silos use, for raw baselines.</summary>
    public ICheckpointStorage Storage { get; }

    /// <summary>Dirty page cache of the machine in MB (<c>/proc/meminfo</c>), 0 where that does not exist.</summary>
    public static double DirtyMegabytes()
    {
        if (!File.Exists("/proc/meminfo"))
        {
            return 0;
        }

        var line = File.ReadLines("/proc/meminfo").FirstOrDefault(static l => l.StartsWith("Dirty:", StringComparison.Ordinal));
        var kilobytes = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        return kilobytes is null ? 0 : Report.Round(long.Parse(kilobytes, System.Globalization.CultureInfo.InvariantCulture) / 1024.0, 1);
    }

    /// <summary>The storage emulator's process with <c>--storage blob</c>; null on the filesystem.</summary>
    public System.Diagnostics.Process? StorageServer => _azurite?.BlobProcess;

    /// <param name="settings">What to run.</param>
    /// <param name="linkOnRestore">For filesystem storage: whether restores may hard-link stored SSTs (the default) or must copy them.</param>
    public static async Task<BenchEnvironment> StartAsync(StateSettings settings, bool linkOnRestore = true)
    {
        AzuriteServer? azurite = null;
        string? fileRoot = null;
        CheckpointStorageOptions storage;
        if (settings.Storage == "blob")
        {
            azurite = await AzuriteServer.StartAsync();
            storage = new CheckpointStorageOptions
            {
                Kind = CheckpointStorageOptions.AzureBlobKind,
                ConnectionString = azurite.ConnectionString,
                Container = "bench",
            };
        }
        else if (settings.Storage == "filesystem")
        {
            fileRoot = Path.Combine(Path.GetTempPath(), "streamgrains-bench", Guid.NewGuid().ToString("N")[..12]);
            storage = new CheckpointStorageOptions { Kind = CheckpointStorageOptions.FileSystemKind, Path = fileRoot, LinkOnRestore = linkOnRestore };
        }
        else
        {
            throw new ArgumentException($"--storage must be filesystem or blob, was '{settings.Storage}'.");
        }

        if (settings.Processes)
        {
            var processes = await SiloProcessCluster.StartAsync(
                new SiloProcessClusterOptions
                {
                    HostPath = SiloHostPath,
                    BlobConnectionString = azurite?.ConnectionString,
                    BlobContainer = "bench",
                    CheckpointDirectory = fileRoot,
                    JobAssemblies = [typeof(StateLoadJob).Assembly.Location],
                    Settings = new Dictionary<string, string>
                    {
                        ["StreamGrains:StateCacheEntries"] = "4096",
                        ["StreamGrains:CheckpointStorage:LinkOnRestore"] = linkOnRestore ? "true" : "false",
                        ["Logging:LogLevel:Default"] = "Warning",
                    },
                },
                settings.Silos);
            var processStorage = storage.Create();
            await processStorage.CheckAccessAsync(CancellationToken.None);
            return new BenchEnvironment(null, processes, azurite, fileRoot, processStorage);
        }

        var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = (short)settings.Silos,
            ConfigureRuntime = o =>
            {
                o.CheckpointStorage = storage;
                o.StateCacheEntries = 4_096;
            },
        });
        var created = storage.Create();
        await created.CheckAccessAsync(CancellationToken.None);
        return new BenchEnvironment(cluster, null, azurite, fileRoot, created);
    }

    /// <summary>Submits the job and waits until every key has been written once; prints progress lines.</summary>
    public async Task<JobId> LoadAsync(StateSettings settings, string name, Func<JobSpec, JobSpec> configure)
    {
        var jobId = await Client.SubmitAsync(configure(new JobSpec
        {
            JobType = typeof(StateLoadJob).FullName!,
            Parameters = settings.Parameters(name),
            Parallelism = settings.Parallelism,
        }));
        var watch = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        while (true)
        {
            var status = await Client.GetStatusAsync(jobId);
            if (status.State.IsTerminal())
            {
                throw new InvalidOperationException($"The job ended while loading state: {status}");
            }

            var written = KeyedRecords(status);
            if (written >= settings.Keys)
            {
                Report.Line(new Dictionary<string, object?>(settings.Fields("load")) { ["phase"] = "loaded", ["seconds"] = Report.Round(watch.Elapsed.TotalSeconds) });
                return jobId;
            }

            if (watch.Elapsed - lastReport >= TimeSpan.FromSeconds(5))
            {
                lastReport = watch.Elapsed;
                Report.Line(new Dictionary<string, object?>(settings.Fields("load")) { ["phase"] = "loading", ["keys_written"] = written, ["seconds"] = Report.Round(watch.Elapsed.TotalSeconds) });
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Records the keyed operator's subtasks of the current attempt have processed.</summary>
    public static long KeyedRecords(JobStatus status) =>
        status.Subtasks.Where(s => s.Attempt == status.Attempt && s.Chain.StartsWith("state", StringComparison.Ordinal)).Sum(static s => s.RecordsIn);

    /// <summary>Triggers a checkpoint and throws unless it completed.</summary>
    public async Task<CheckpointStats> CheckpointAsync(JobId jobId)
    {
        var stats = await Client.TriggerCheckpointAsync(jobId, TimeSpan.FromMinutes(20));
        if (stats.Outcome != CheckpointOutcome.Completed)
        {
            throw new InvalidOperationException($"Checkpoint {stats.CheckpointId} did not complete: {stats.FailureReason} {stats.FailureMessage}");
        }

        return stats;
    }

    /// <summary>Uploads local files to a fresh prefix of the storage, <paramref name="parallel"/> at a time; returns seconds.</summary>
    public async Task<double> RawUploadAsync(IReadOnlyList<string> files, string localRoot, int parallel)
    {
        var prefix = "raw-" + Guid.NewGuid().ToString("N")[..8];
        var watch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (file, ct) =>
        {
            var relative = Path.GetRelativePath(localRoot, file).Replace('\\', '/');
            await Storage.UploadFileAsync(file, $"{prefix}/{relative}", ct);
        });
        var seconds = watch.Elapsed.TotalSeconds;
        await Storage.DeletePrefixAsync(prefix, CancellationToken.None);
        return seconds;
    }

    /// <summary>
    /// Downloads stored files into a temp directory, <paramref name="parallel"/> at a time, as a restore transfers them
    /// (checked against their recorded XxHash64, which on Blob Storage replaces the SDK's per-range MD5); returns seconds.
    /// </summary>
    public async Task<double> RawDownloadAsync(IReadOnlyList<StateFile> files, int parallel)
    {
        var target = Path.Combine(Path.GetTempPath(), "streamgrains-bench", "raw-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(target);
        try
        {
            var watch = Stopwatch.StartNew();
            await Parallel.ForEachAsync(files.Select(static (f, i) => (f, i)), new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (item, ct) =>
                await Storage.DownloadFileAsync(item.f.Path, Path.Combine(target, $"{item.i}-{item.f.Name}"), new StoredObject(item.f.Path, item.f.Length, item.f.Checksum), ct));
            return watch.Elapsed.TotalSeconds;
        }
        finally
        {
            Directory.Delete(target, recursive: true);
        }
    }

    /// <summary>The files of the local copies of checkpoint <paramref name="checkpointId"/> on every silo: the full state as it sits on local disk.</summary>
    public IReadOnlyList<string> LocalStateFiles(JobId jobId, long checkpointId)
    {
        var separator = Path.DirectorySeparatorChar;
        var local = $"{separator}{jobId.Value}{separator}local{separator}";
        var checkpoint = $"{separator}chk-{checkpointId}{separator}";
        return [.. Directory.EnumerateFiles(Cluster.RootDirectory, "*", SearchOption.AllDirectories)
            .Where(f => f.Contains(local, StringComparison.Ordinal) && f.Contains(checkpoint, StringComparison.Ordinal))];
    }

    /// <summary>Changelog mode: the files of each keyed subtask's latest local materialization.</summary>
    public IReadOnlyList<string> LocalMaterializedFiles(JobId jobId)
    {
        var separator = Path.DirectorySeparatorChar;
        var local = $"{separator}{jobId.Value}{separator}local{separator}";
        return [.. Directory.EnumerateDirectories(Cluster.RootDirectory, "chk-*", SearchOption.AllDirectories)
            .Where(d => d.Contains(local, StringComparison.Ordinal) && Path.GetFileName(Path.GetDirectoryName(d)) == "materialized")
            .GroupBy(static d => Path.GetDirectoryName(d)!, StringComparer.Ordinal)
            .Select(static g => g.MaxBy(static d => long.Parse(Path.GetFileName(d).AsSpan(4), System.Globalization.CultureInfo.InvariantCulture))!)
            .SelectMany(static d => Directory.EnumerateFiles(d))];
    }

    /// <summary>The silo host that <see cref="StateSettings.Processes"/> starts: the <c>src/Silo</c> build of this configuration.</summary>
    private static string SiloHostPath { get; } = Path.GetFullPath(
        typeof(BenchEnvironment).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(static a => a.Key == "SiloHostPath").Value!);

    public async ValueTask DisposeAsync()
    {
        if (_inProcess is not null)
        {
            await _inProcess.DisposeAsync();
        }

        if (_processes is not null)
        {
            await _processes.DisposeAsync();
        }

        if (_azurite is not null)
        {
            await _azurite.DisposeAsync();
        }

        if (_fileRoot is not null && Directory.Exists(_fileRoot))
        {
            Directory.Delete(_fileRoot, recursive: true);
        }
    }

    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(p * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }
}
