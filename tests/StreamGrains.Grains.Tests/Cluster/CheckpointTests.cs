using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using StreamGrains.Client;
using StreamGrains.Samples;
using StreamGrains.Snapshots;
using StreamGrains.State;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.TestInfrastructure;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

public sealed class CheckpointTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Every_completed_checkpoint_of_a_two_input_operator_fed_at_different_rates_is_consistent()
    {
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var jobId = await cluster.SubmitAsync<FastSlowJob>(configure: static s => s with
        {
            Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromMilliseconds(300), Retained = 20, RetainOnCancel = true },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);
        }

        var status = await client.CancelAsync(jobId);
        Assert.Equal(JobState.Canceled, status.State);

        var storage = StorageOf(cluster);
        var manifests = await ReadManifestsAsync(storage, jobId);
        Assert.True(manifests.Count >= 4, $"expected at least 4 retained checkpoints, found {manifests.Count}");
        foreach (var manifest in manifests)
        {
            var emitted = new Dictionary<string, long>
            {
                ["fast"] = Positions(manifest, "fast"),
                ["slow"] = Positions(manifest, "slow"),
            };
            var counted = await ReadCountsAsync(storage, manifest, "counter", FastSlowJob.Count, ["fast", "slow"]);
            Assert.True(emitted["fast"] > 0, $"checkpoint {manifest.CheckpointId}: the fast source emitted nothing");
            Assert.Equal(emitted["fast"], counted.GetValueOrDefault("fast"));
            Assert.Equal(emitted["slow"], counted.GetValueOrDefault("slow"));
        }
    }

    [Fact]
    public async Task After_updating_one_percent_of_the_keys_a_checkpoint_uploads_less_than_a_tenth_of_the_first()
    {
        const long Keys = 20_000;
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("keys", Keys).With("rate", 400);
        var jobId = await cluster.SubmitAsync<OverwriteJob>(parameters, parallelism: 2, configure: static s => s with
        {
            Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromDays(1) },
        });
        static long Written(JobStatus s) => s.Subtasks.Where(t => t.Chain.StartsWith("values", StringComparison.Ordinal)).Sum(static t => t.RecordsIn);

        await PollAsync(client, jobId, static s => Written(s) >= Keys);
        var first = await client.TriggerCheckpointAsync(jobId, Timeout);
        var afterFirst = Written(await client.GetStatusAsync(jobId));
        await PollAsync(client, jobId, s => Written(s) >= afterFirst + (Keys / 100));
        var second = await client.TriggerCheckpointAsync(jobId, Timeout);
        await client.CancelAsync(jobId);

        Assert.Equal(CheckpointOutcome.Completed, first.Outcome);
        Assert.Equal(CheckpointOutcome.Completed, second.Outcome);
        Assert.True(first.BytesUploaded > Keys * OverwriteJob.ValueBytes * 9 / 10, $"the first checkpoint uploaded only {first.BytesUploaded} bytes");
        Assert.Equal(first.BytesUploaded, first.FullSize);
        Assert.True(second.BytesUploaded < first.BytesUploaded / 10, $"the second checkpoint uploaded {second.BytesUploaded} bytes, the first {first.BytesUploaded}");
        Assert.True(second.FullSize > first.FullSize, $"the second checkpoint ({second.FullSize} bytes) should include the first one's files");
    }

    [Fact]
    public async Task Restart_after_a_user_exception_with_all_silos_alive_downloads_no_state()
    {
        var name = $"local-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 3 });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 20_000).With("rate", 100_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 3, configure: Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        var checkpoint = await client.TriggerCheckpointAsync(jobId, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, checkpoint.Outcome);

        ResultStore.Arm(name);
        var restarted = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        restarted = await client.GetStatusAsync(jobId);
        await client.CancelAsync(jobId);

        Assert.Equal(1, restarted.Restarts);
        var keyed = restarted.Subtasks.Where(static s => s.Chain.StartsWith("counts", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, keyed.Count);
        Assert.All(keyed, s =>
        {
            Assert.NotNull(s.Restore);
            Assert.True(s.Restore.FilesTotal > 0, "the keyed subtask restored no file");
            Assert.Equal(s.Restore.BytesTotal, s.Restore.BytesDone);
            Assert.Equal(0, s.Restore.BytesDownloaded);
        });
        Assert.EndsWith($"chk-{checkpoint.CheckpointId}/_manifest.json", restarted.RestoredFrom, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_subtask_processes_a_record_before_every_subtask_restored_its_state()
    {
        var name = $"gate-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 2,
            ConfigureServices = static services => services.AddSingleton<ICheckpointStorage>(sp => new SlowDownloadStorage(
                new FileSystemCheckpointStorage(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path),
                TimeSpan.FromMilliseconds(300))),
        });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 20_000).With("rate", 100_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static s => Checkpointed(s) with
        {
            Checkpointing = Checkpointed(s).Checkpointing with { LocalRecovery = false },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        ResultStore.Arm(name);
        await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        var status = await PollAsync(client, jobId, static s => s.Subtasks.Any(static t => t.IsSource && t.FirstRecordAt is not null) && s.Subtasks.Any(static t => !t.IsSource && t.FirstRecordAt is not null));
        await client.CancelAsync(jobId);

        var subtasks = status.Subtasks.Where(s => s.Attempt == status.Attempt).ToList();
        Assert.All(subtasks.Where(static s => s.Chain.StartsWith("counts", StringComparison.Ordinal)), static s => Assert.True(s.Restore?.BytesDownloaded > 0, "the keyed subtask did not download its state"));
        var allReady = subtasks.Max(static s => s.ReadyAt!.Value);
        var processing = subtasks.Where(static s => s.FirstRecordAt is not null).ToList();
        Assert.Contains(processing, static s => s.IsSource);
        Assert.All(processing, s => Assert.True(s.FirstRecordAt >= allReady, $"subtask {s.Chain}#{s.Index} processed a record at {s.FirstRecordAt:O}, before the last subtask was ready at {allReady:O}"));
    }

    [Fact]
    public async Task A_storage_outage_during_a_restore_fails_the_attempt_but_keeps_the_checkpoint_for_the_next_one()
    {
        var name = $"outage-{Guid.NewGuid():N}";
        var outage = new DownloadOutage();
        var (cluster, jobId, checkpoint) = await CheckpointedBehindOutageAsync(name, outage, checks: null);
        await using var _ = cluster;
        var client = cluster.Client;

        // The next restore's first download fails as an unreachable storage would (not a missing or corrupt file).
        outage.FailNext(1);
        ResultStore.Arm(name);
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 2 && s.State == JobState.Running, Timeout);
        var kept = await StorageOf(cluster).ExistsAsync(recovered.RestoredFrom!, CancellationToken.None);
        await client.CancelAsync(jobId);

        Assert.Equal(0, outage.Remaining);
        Assert.Contains(recovered.Warnings, static w => w.Contains(OutageStorage.Message, StringComparison.Ordinal));
        Assert.DoesNotContain(recovered.Warnings, static w => w.Contains("cannot be restored", StringComparison.Ordinal));
        Assert.EndsWith($"chk-{checkpoint.CheckpointId}/_manifest.json", recovered.RestoredFrom, StringComparison.Ordinal);
        Assert.True(kept, "the restored checkpoint's manifest was deleted");
    }

    [Fact]
    public async Task A_storage_outage_while_a_restart_checks_the_checkpoint_files_costs_a_restart_not_the_checkpoint()
    {
        var name = $"check-outage-{Guid.NewGuid():N}";
        var checks = new DownloadOutage();
        var (cluster, jobId, checkpoint) = await CheckpointedBehindOutageAsync(name, new DownloadOutage(), checks);
        await using var _ = cluster;
        var client = cluster.Client;

        // The restart's checks that the checkpoint's files exist fail as an unreachable storage's would: the listing (which
        // then only costs collecting the failed attempt's files) and the question for the first file asked one by one.
        checks.FailNext(2);
        ResultStore.Arm(name);
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt >= 2 && s.State == JobState.Running, Timeout);
        var kept = await StorageOf(cluster).ExistsAsync(recovered.RestoredFrom!, CancellationToken.None);
        await client.CancelAsync(jobId);

        Assert.Equal(0, checks.Remaining);
        Assert.Equal(2, recovered.Restarts); // the failure, then the restart whose check failed
        Assert.Contains(recovered.Warnings, static w => w.Contains(OutageStorage.Message, StringComparison.Ordinal));
        Assert.DoesNotContain(recovered.Warnings, static w => w.Contains("cannot be restored", StringComparison.Ordinal));
        Assert.EndsWith($"chk-{checkpoint.CheckpointId}/_manifest.json", recovered.RestoredFrom, StringComparison.Ordinal);
        Assert.True(kept, "the checkpoint's manifest was deleted");
    }

    [Fact]
    public async Task A_checkpoint_longer_than_a_grain_call_is_awaited_by_the_client_and_a_short_timeout_says_so()
    {
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 1,
            ConfigureServices = static services => services.AddSingleton<ICheckpointStorage>(sp => new SlowDownloadStorage(
                new FileSystemCheckpointStorage(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path),
                TimeSpan.Zero,
                uploadDelay: TimeSpan.FromSeconds(12))),
        });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 1_000).With("rate", 10_000).With("name", $"slow-{Guid.NewGuid():N}");
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, configure: static s => s with
        {
            Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromDays(1), Timeout = TimeSpan.FromMinutes(2) },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);

        await Assert.ThrowsAsync<TimeoutException>(() => client.TriggerCheckpointAsync(jobId, TimeSpan.FromSeconds(1)));
        var stats = await client.TriggerCheckpointAsync(jobId, Timeout);
        await client.CancelAsync(jobId);

        // The second call joined the checkpoint the first one started; it took longer than one bounded wait of the client.
        Assert.Equal(CheckpointOutcome.Completed, stats.Outcome);
        Assert.True(stats.Duration > TimeSpan.FromSeconds(10), $"the checkpoint took {stats.Duration}");
    }

    [Fact]
    public async Task A_missing_shared_file_makes_the_restore_fall_back_to_the_previous_checkpoint_with_a_warning()
    {
        const long Events = 1_000_000;
        const long Keys = 10_000;
        var name = $"fallback-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", 5).With("rate", 100_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        var previous = await client.TriggerCheckpointAsync(jobId, Timeout);
        var latest = await client.TriggerCheckpointAsync(jobId, Timeout);
        Assert.Equal((CheckpointOutcome.Completed, CheckpointOutcome.Completed), (previous.Outcome, latest.Outcome));
        var storage = StorageOf(cluster);
        var manifests = (await ReadManifestsAsync(storage, jobId)).ToDictionary(static m => m.CheckpointId);
        var olderFiles = manifests[previous.CheckpointId].Files().Select(static f => f.Path).ToHashSet();
        var onlyInLatest = manifests[latest.CheckpointId].Files().First(f => f.Shared && !olderFiles.Contains(f.Path));
        await storage.DeleteAsync(onlyInLatest.Path, CancellationToken.None);

        ResultStore.Arm(name);
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Contains(final.Warnings, w => w.Contains($"Checkpoint {latest.CheckpointId} ", StringComparison.Ordinal) && w.Contains(onlyInLatest.Path, StringComparison.Ordinal) && w.Contains("missing", StringComparison.Ordinal));
        Assert.Equal(JobState.Finished, final.State);
        AssertExactCounts(ClickCounts.ExpectedCounts(5, Keys, Events), ResultStore.Counts(name));
    }

    [Fact]
    public async Task An_unusable_checkpoint_storage_is_reported_at_submit()
    {
        var blocker = Path.GetTempFileName();
        try
        {
            await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
            {
                Silos = 1,
                ConfigureRuntime = runtime => runtime.CheckpointStorage.Path = Path.Combine(blocker, "checkpoints"),
            });

            var error = await Assert.ThrowsAsync<JobSubmissionException>(() => cluster.SubmitAsync<ResilientCountJob>(configure: Checkpointed));

            Assert.Contains($"Checkpoint storage file://{Path.Combine(blocker, "checkpoints")} is not usable", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(blocker);
        }
    }

    /// <summary>Refreshes the status (with subtask counters, which change without a state change) until it satisfies <paramref name="condition"/>.</summary>
    internal static async Task<JobStatus> PollAsync(StreamGrainsClient client, JobId jobId, Func<JobStatus, bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var status = await client.GetStatusAsync(jobId);
            if (condition(status))
            {
                return status;
            }

            Assert.True(DateTime.UtcNow < deadline, $"job {jobId} did not reach the condition within {Timeout}: {status}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Blob_storage_unreachable_for_a_few_seconds_aborts_that_checkpoint_and_a_later_one_completes()
    {
        var name = $"outage-{Guid.NewGuid():N}";
        await using var azurite = await AzuriteServer.StartAsync();
        await using var proxy = await TcpFaultProxy.StartAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, azurite.Port));
        var viaProxy = azurite.ConnectionString.Replace($":{azurite.Port}/", $":{proxy.Port}/", StringComparison.Ordinal);
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 2,
            ConfigureRuntime = o =>
            {
                UseBlob(o, viaProxy);
                o.CheckpointStorage.MaxRetries = 1;
                o.CheckpointStorage.NetworkTimeout = TimeSpan.FromSeconds(2);
            },
        });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 20_000).With("rate", 50_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static s => s with
        {
            Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(8), TolerableFailures = 5 },
            Restart = RestartStrategy.FixedDelay(3, TimeSpan.FromMilliseconds(200)),
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        proxy.Block();
        var during = await client.TriggerCheckpointAsync(jobId, Timeout);
        proxy.Unblock();
        var after = await client.TriggerCheckpointAsync(jobId, Timeout);
        var status = await client.GetStatusAsync(jobId);
        await client.CancelAsync(jobId);

        Assert.NotEqual(CheckpointOutcome.Completed, during.Outcome);
        Assert.Equal(CheckpointOutcome.Completed, after.Outcome);
        Assert.True(after.CheckpointId > during.CheckpointId, $"checkpoint {after.CheckpointId} is not later than {during.CheckpointId}");
        Assert.Equal(JobState.Running, status.State);
        Assert.Equal(1, status.Attempt);
        Assert.Equal(0, status.Restarts);
    }

    internal static void UseBlob(StreamGrainsOptions options, string connectionString)
    {
        options.CheckpointStorage.Kind = CheckpointStorageOptions.AzureBlobKind;
        options.CheckpointStorage.ConnectionString = connectionString;
        options.CheckpointStorage.Container = "checkpoints";
    }

    internal static JobSpec Checkpointed(JobSpec spec) => spec with
    {
        Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromSeconds(1), Timeout = TimeSpan.FromSeconds(30) },
        Restart = RestartStrategy.FixedDelay(20, TimeSpan.FromMilliseconds(200)),
    };

    internal static void AssertExactCounts(IReadOnlyDictionary<string, long> expected, IReadOnlyDictionary<string, long> actual)
    {
        var wrong = expected.Where(e => actual.GetValueOrDefault(e.Key) != e.Value).Take(5).Select(e => $"{e.Key}: expected {e.Value}, got {actual.GetValueOrDefault(e.Key)}").ToList();
        Assert.True(wrong.Count == 0, $"counts differ: {string.Join(", ", wrong)}");
        Assert.Equal(expected.Count, actual.Count);
    }

    internal static FileSystemCheckpointStorage StorageOf(StreamGrainsCluster cluster) => new(Path.Combine(cluster.RootDirectory, "checkpoints"));

    internal static async Task<List<CheckpointManifest>> ReadManifestsAsync(ICheckpointStorage storage, JobId jobId)
    {
        var manifests = new List<CheckpointManifest>();
        await foreach (var stored in storage.ListAsync(jobId.Value, CancellationToken.None))
        {
            if (SnapshotLayout.CheckpointIdOfManifest(jobId.Value, stored.Path) is not null)
            {
                manifests.Add(ManifestJson.Deserialize((await storage.ReadAsync(stored.Path, CancellationToken.None))!, stored.Path));
            }
        }

        return [.. manifests.OrderBy(static m => m.CheckpointId)];
    }

    private static long Positions(CheckpointManifest manifest, string uid) =>
        manifest.Operators.Single(o => o.Uid == uid).Subtasks.SelectMany(static s => s.SourceSplits!).Sum(static s => s.Position);

    /// <summary>Reads the value state of the given keys from a checkpoint, offline: each subtask's files are restored into a temporary directory and opened.</summary>
    private static async Task<Dictionary<string, long>> ReadCountsAsync(ICheckpointStorage storage, CheckpointManifest manifest, string uid, ValueStateDescriptor<long> descriptor, string[] keys)
    {
        var counts = new Dictionary<string, long>();
        using var resources = new RocksDbResources(new RocksDbResourceOptions { BlockCacheBytes = 8 << 20, WriteBufferBytes = 8 << 20, ColumnFamilyWriteBufferBytes = 1 << 20, BackgroundThreads = 1 });
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Orleans.Serialization.Serializer>();
        foreach (var subtask in manifest.Operators.Single(o => o.Uid == uid).Subtasks)
        {
            var handle = subtask.KeyedState!;
            var directory = Path.Combine(Path.GetTempPath(), "streamgrains-offline", Guid.NewGuid().ToString("N"));
            try
            {
                await KeyedStateRestorer.RestoreAsync(handle, manifest.CheckpointId, storage, directory, null, null, CancellationToken.None);
                using var backend = new RocksDbKeyedStateBackend<string>(
                    new KeyedStateBackendOptions { Directory = directory, KeyGroups = handle.KeyGroups, MaxParallelism = manifest.MaxParallelism, CacheCapacity = 0 },
                    KeySerializers.For<string>(null, serializer),
                    serializer,
                    resources);
                var state = backend.GetValueState(descriptor);
                foreach (var key in keys)
                {
                    var keyGroup = new State.Keys.KeyGroupAssigner<string>(KeySerializers.For<string>(null, serializer), manifest.MaxParallelism).KeyGroupOf(key);
                    if (handle.KeyGroups.Contains(keyGroup))
                    {
                        backend.SetCurrentKey(key);
                        counts[key] = state.Get();
                    }
                }
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }
        }

        return counts;
    }

    /// <summary>
    /// A 2-silo cluster whose checkpoint storage fails downloads (and existence checks) while the given outages last,
    /// running a resilient count job with one completed checkpoint (nothing linked, no local recovery).
    /// </summary>
    [Fact]
    public async Task A_listing_that_comes_back_empty_at_a_restart_does_not_count_as_missing_files()
    {
        var name = $"empty-listing-{Guid.NewGuid():N}";
        var empty = new DownloadOutage();
        var (cluster, jobId, checkpoint) = await CheckpointedBehindOutageAsync(name, new DownloadOutage(), checks: null, emptyListings: empty);
        await using var _ = cluster;
        var client = cluster.Client;

        // The restart's listing shows nothing, as a filesystem root that cannot be searched or a Blob container that is
        // gone would show; the files are there, and each file the listing did not show is asked for.
        empty.FailNext(1);
        ResultStore.Arm(name);
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt >= 2 && s.State == JobState.Running, Timeout);
        await client.CancelAsync(jobId);

        Assert.Equal(0, empty.Remaining);
        Assert.Equal(1, recovered.Restarts);
        Assert.DoesNotContain(recovered.Warnings, static w => w.Contains("cannot be restored", StringComparison.Ordinal));
        Assert.EndsWith($"chk-{checkpoint.CheckpointId}/_manifest.json", recovered.RestoredFrom, StringComparison.Ordinal);
    }

    private static async Task<(StreamGrainsCluster Cluster, JobId JobId, CheckpointStats Checkpoint)> CheckpointedBehindOutageAsync(string name, DownloadOutage downloads, DownloadOutage? checks, DownloadOutage? emptyListings = null)
    {
        var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 2,
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new OutageStorage(
                new FileSystemCheckpointStorage(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path) { LinkOnRestore = false },
                downloads,
                checks,
                emptyListings)),
        });
        try
        {
            var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 20_000).With("rate", 100_000).With("name", name);
            var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static s => Checkpointed(s) with
            {
                Checkpointing = Checkpointed(s).Checkpointing with { Interval = TimeSpan.FromDays(1), LocalRecovery = false },
            });
            await cluster.Client.WaitForStateAsync(jobId, JobState.Running, Timeout);
            var checkpoint = await cluster.Client.TriggerCheckpointAsync(jobId, Timeout);
            Assert.Equal(CheckpointOutcome.Completed, checkpoint.Outcome);
            return (cluster, jobId, checkpoint);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>How many downloads are still to fail, shared by the storages of every silo.</summary>
    private sealed class DownloadOutage
    {
        private int _remaining;

        public int Remaining => Volatile.Read(ref _remaining);

        public void FailNext(int downloads) => Volatile.Write(ref _remaining, downloads);

        public bool Take()
        {
            var remaining = Volatile.Read(ref _remaining);
            while (remaining > 0)
            {
                var seen = Interlocked.CompareExchange(ref _remaining, remaining - 1, remaining);
                if (seen == remaining)
                {
                    return true;
                }

                remaining = seen;
            }

            return false;
        }
    }

    /// <summary>
    /// Storage whose downloads (and, with <paramref name="checks"/>, listings and existence checks) fail, while an outage
    /// lasts, as an unreachable storage's do; with <paramref name="emptyListings"/>, listings show nothing meanwhile.
    /// </summary>
    private sealed class OutageStorage(ICheckpointStorage inner, DownloadOutage outage, DownloadOutage? checks = null, DownloadOutage? emptyListings = null) : DelegatingCheckpointStorage(inner)
    {
        public const string Message = "injected outage: the storage service is unreachable";

        public override Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) =>
            outage.Take()
                ? throw new CheckpointStorageException($"{Message} (downloading '{path}')", new IOException(Message))
                : Inner.DownloadFileAsync(path, localPath, expected, cancellationToken);

        public override Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) =>
            checks?.Take() == true
                ? throw new CheckpointStorageException($"{Message} (checking '{path}')", new IOException(Message))
                : Inner.ExistsAsync(path, cancellationToken);

        public override IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken) =>
            checks?.Take() == true ? throw new CheckpointStorageException($"{Message} (listing '{prefix}')", new IOException(Message))
            : emptyListings?.Take() == true ? AsyncEnumerable.Empty<StoredObject>()
            : Inner.ListAsync(prefix, cancellationToken);
    }

    /// <summary>
    /// Storage whose downloads take a while, so that restores are slow enough to race with sources; it declines links, so
    /// that every file a restore takes from storage goes through the slow download.
    /// </summary>
    private sealed class SlowDownloadStorage(ICheckpointStorage inner, TimeSpan delay, TimeSpan uploadDelay = default) : DelegatingCheckpointStorage(inner)
    {
        public override async Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken)
        {
            await Task.Delay(uploadDelay, cancellationToken);
            return await Inner.UploadFileAsync(localPath, path, cancellationToken);
        }

        public override async Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
        {
            // Fault injection, not synchronization: a slow download widens the window in which a source could start early.
            await Task.Delay(delay, cancellationToken);
            await Inner.DownloadFileAsync(path, localPath, expected, cancellationToken);
        }

        public override Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) => Task.FromResult(false);
    }
}
