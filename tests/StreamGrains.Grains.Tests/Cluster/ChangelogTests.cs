using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

public sealed class ChangelogTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_checkpoint_completes_while_the_keyed_subtasks_mailbox_is_busy_after_the_barrier()
    {
        var name = $"busy-mailbox-{Guid.NewGuid():N}";
        var gate = MaterializationGate.For(name);
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 1,
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new GatedStorage(sp.GetRequiredService<IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Create(), gate)),
        });
        var client = cluster.Client;

        // Segments are sealed only at barriers, so the first changelog upload after checkpoint 1 is checkpoint 2's tail.
        var jobId = await cluster.SubmitAsync<BusyMailboxJob>(JobParameters.Empty.With("name", name), parallelism: 1, configure: static s => ChangelogCheckpointed(s) with
        {
            Checkpointing = ChangelogCheckpointed(s).Checkpointing with { Interval = TimeSpan.FromDays(1), MaterializationInterval = TimeSpan.FromMinutes(10), ChangelogSegmentInterval = TimeSpan.FromMinutes(10), ChangelogSegmentBytes = 256 << 20 },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);
        var tailHeld = gate.Hold(static path => path.Contains($"/changelog/{BusyMailboxJob.KeyedUid}/0/log/", StringComparison.Ordinal));
        var checkpoint = client.TriggerCheckpointAsync(jobId, Timeout);
        await tailHeld.WaitAsync(Timeout);

        // The barrier has passed the keyed subtask (its tail is uploading). Now user code holds its mailbox, as a long
        // RocksDB write stall or a materialization's local checkpoint would; then the tail's upload finishes.
        var busy = BusyMailboxJob.HoldNextRecord(name);
        await busy.Held.WaitAsync(Timeout);
        gate.Release();
        var completed = await checkpoint;
        var completedWhileBusy = !busy.Released.IsCompleted;
        busy.Release();

        Assert.True(completed.Outcome == CheckpointOutcome.Completed, $"checkpoint {completed.CheckpointId}: {completed.Outcome} ({completed.FailureMessage})");
        Assert.True(completedWhileBusy, "the checkpoint was acknowledged only once the mailbox was free again");
    }

    [Fact]
    public async Task Stop_with_savepoint_in_changelog_mode_restores_at_parallelism_2_5_1_3_across_mode_switches_with_exact_state_and_timers_once()
    {
        var name = $"changelog-rescale-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        string? restoreFrom = null;
        var steps = new[] { (2, CheckpointMode.Changelog), (5, CheckpointMode.Incremental), (1, CheckpointMode.Changelog), (3, CheckpointMode.Changelog) };
        JobStatus? last = null;
        for (var step = 0; step < steps.Length; step++)
        {
            var (parallelism, mode) = steps[step];
            var from = restoreFrom;
            var jobId = await cluster.SubmitAsync<RichStateJob>(SavepointTests.RichParameters(name), parallelism, spec => SavepointTests.Checkpointed(spec) with
            {
                RestoreFrom = from,
                Checkpointing = SavepointTests.Checkpointed(spec).Checkpointing with { Mode = mode, MaterializationInterval = TimeSpan.FromMilliseconds(200) },
            });
            await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
            if (step < steps.Length - 1)
            {
                var target = SavepointTests.Events * (step + 1) / steps.Length;
                await SavepointTests.WaitUntilAsync(() => results.StateOutputs >= target / 2, $"{target / 2} outputs");

                // A checkpoint between materializations leaves a changelog tail for the savepoint to carry.
                var checkpoint = await client.TriggerCheckpointAsync(jobId, Timeout);
                Assert.Equal(CheckpointOutcome.Completed, checkpoint.Outcome);
                await SavepointTests.WaitUntilAsync(() => results.StateOutputs >= target, $"{target} outputs");
                var savepoint = await client.StopWithSavepointAsync(jobId, Timeout);
                Assert.Equal(SavepointPhase.Completed, savepoint.Phase);
                Assert.True(results.StateOutputs < SavepointTests.Events, "the job ran to its end before it was stopped");
                if (mode == CheckpointMode.Changelog)
                {
                    Assert.All(checkpoint.Subtasks.Where(static s => s.Chain.StartsWith("rich", StringComparison.Ordinal)), static s => Assert.NotNull(s.MaterializationId));
                }

                restoreFrom = savepoint.Directory;
            }
            else
            {
                last = await client.WaitForStateAsync(jobId, JobState.Finished, Timeout);
            }
        }

        Assert.Equal(JobState.Finished, last!.State);
        SavepointTests.AssertExact(results);
    }

    [Fact]
    public async Task Changelog_storage_stays_bounded_over_a_long_run_with_a_short_materialization_interval()
    {
        var name = $"changelog-bounded-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var storage = CheckpointTests.StorageOf(cluster);
        var parameters = JobParameters.Empty.With("events", 1_000_000_000).With("keys", 20_000).With("rate", 40_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static spec => spec with
        {
            Checkpointing = new CheckpointSettings
            {
                Interval = TimeSpan.FromHours(1),
                Timeout = TimeSpan.FromSeconds(30),
                Retained = 2,
                Mode = CheckpointMode.Changelog,
                MaterializationInterval = TimeSpan.FromMilliseconds(300),
                ChangelogSegmentBytes = 64 << 10,
                ChangelogSegmentInterval = TimeSpan.FromMilliseconds(50),
            },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);

        // Checkpoints every ~100 ms until 30 materializations have happened (each truncates the changelog).
        const int Materializations = 30;
        var samples = new List<(long Segments, long Bytes, long Written, long Materialization)>();
        long written = 0;
        var deadline = DateTime.UtcNow + Timeout;
        while (samples.Count == 0 || samples[^1].Materialization < Materializations)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {samples.LastOrDefault().Materialization} materializations within {Timeout}");
            await Task.Delay(100); // pacing: updates continue between checkpoints
            var stats = await client.TriggerCheckpointAsync(jobId, Timeout);
            Assert.Equal(CheckpointOutcome.Completed, stats.Outcome);
            written += stats.ChangelogBytes;
            long segments = 0;
            long bytes = 0;
            await foreach (var stored in storage.ListAsync($"{jobId.Value}/changelog", CancellationToken.None))
            {
                if (stored.Path.Contains("/log/", StringComparison.Ordinal))
                {
                    segments++;
                    bytes += stored.Length;
                }
            }

            samples.Add((segments, bytes, written, stats.Subtasks.Where(static s => s.MaterializationId is not null).Min(static s => s.MaterializationId!.Value)));
        }

        await client.CancelAsync(jobId);

        // Changelog kept being written, materializations kept truncating it, and what storage holds stopped growing: the
        // last third of the run holds no more than 1.5 times the middle third's peak.
        var third = samples.Count / 3;
        var middle = samples.Skip(third).Take(third).ToList();
        var late = samples.Skip(2 * third).ToList();
        var summary = string.Join(" ", samples.Select(static s => $"{s.Segments}/{s.Bytes}/{s.Written}/{s.Materialization}"));
        Assert.True(late[^1].Written - late[0].Written > 2 * late.Max(static s => s.Bytes), $"too little changelog written to tell: {summary}");
        Assert.True(late.Max(static s => s.Segments) <= 1.5 * middle.Max(static s => s.Segments), $"segment count keeps growing: {summary}");
        Assert.True(late.Max(static s => s.Bytes) <= 1.5 * middle.Max(static s => s.Bytes), $"changelog bytes keep growing: {summary}");
    }

    [Fact]
    public async Task Failing_materializations_show_in_the_job_status_as_a_warning_until_one_succeeds()
    {
        var name = $"changelog-warning-{Guid.NewGuid():N}";
        var outage = new MaterializationOutage();
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 1,
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new FailingMaterializationStorage(sp.GetRequiredService<IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Create(), outage)),
        });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 20_000).With("rate", 50_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: ChangelogCheckpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        outage.Failing = true;
        var warned = await PollAsync(client, jobId, static s => s.Subtasks.Any(static t => t.Warning is not null));
        var checkpointDuringOutage = await client.TriggerCheckpointAsync(jobId, Timeout);
        outage.Failing = false;
        var cleared = await PollAsync(client, jobId, static s => s.Subtasks.All(static t => t.Warning is null));
        await client.CancelAsync(jobId);

        Assert.Contains(warned.Warnings, static w => w.Contains("materialization failed", StringComparison.Ordinal) && w.Contains(FailingMaterializationStorage.Message, StringComparison.Ordinal) && w.StartsWith("counts", StringComparison.Ordinal));
        Assert.Equal(CheckpointOutcome.Completed, checkpointDuringOutage.Outcome); // the changelog keeps checkpoints going
        Assert.DoesNotContain(cleared.Warnings, static w => w.Contains("materialization failed", StringComparison.Ordinal));
        Assert.Equal(1, cleared.Attempt);
    }

    [Fact]
    public async Task A_restart_deletes_what_the_failed_attempt_uploaded_that_no_retained_checkpoint_refers_to()
    {
        var name = $"changelog-orphans-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var storage = CheckpointTests.StorageOf(cluster);
        var (jobId, orphans) = await RunPastACheckpointAsync(cluster, name);
        ResultStore.Arm(name);
        var restarted = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        await WaitUntilAsync(async () => (await ExistingAsync(storage, orphans)).Count == 0, "the failed attempt's segments to be deleted");
        var after = await client.TriggerCheckpointAsync(jobId, Timeout);
        var referenced = (await CheckpointTests.ReadManifestsAsync(storage, jobId)).SelectMany(static m => m.Files()).Select(static f => f.Path).Distinct(StringComparer.Ordinal).ToList();
        var missing = referenced.Except(await ExistingAsync(storage, referenced)).ToList();
        await client.CancelAsync(jobId);

        Assert.Equal(2, restarted.Attempt);
        Assert.Equal(CheckpointOutcome.Completed, after.Outcome);
        Assert.Empty(missing);
    }

    [Fact]
    public async Task A_restart_deletes_nothing_while_storage_holds_a_manifest_the_coordinator_could_not_read()
    {
        var name = $"changelog-unread-{Guid.NewGuid():N}";
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions { Silos = 1 });
        var client = cluster.Client;
        var storage = CheckpointTests.StorageOf(cluster);
        var (jobId, orphans) = await RunPastACheckpointAsync(cluster, name);

        // A manifest of a newer format (as after rolling back to an older version): the coordinator skips it, and its
        // files, which this version cannot tell, must stay.
        await storage.WriteAsync(State.Snapshots.SnapshotLayout.ManifestPath(jobId.Value, 999), "{\"formatVersion\": 99}"u8.ToArray(), overwrite: false, CancellationToken.None);
        ResultStore.Arm(name);
        await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, Timeout);
        var checkpoint = await client.TriggerCheckpointAsync(jobId, Timeout); // the restart, collection included, is over
        var remaining = (await ExistingAsync(storage, orphans)).Count;
        await client.CancelAsync(jobId);

        Assert.Equal(CheckpointOutcome.Completed, checkpoint.Outcome);
        Assert.Equal(orphans.Count, remaining);
    }

    /// <summary>
    /// Runs a changelog job (no periodic checkpoints) past one completed checkpoint until at least four segments were
    /// sealed after it (every 200 ms): those belong to no checkpoint, and a failed attempt leaves them behind. Segments
    /// already in storage when the checkpoint completed do not count: those its materialization covers are deleted by
    /// the subtask itself once the completion reaches it, which may be after this returns.
    /// </summary>
    private static async Task<(JobId JobId, List<string> Unreferenced)> RunPastACheckpointAsync(StreamGrainsCluster cluster, string name)
    {
        var parameters = JobParameters.Empty.With("events", 100_000_000).With("keys", 20_000).With("rate", 50_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static s => ChangelogCheckpointed(s) with
        {
            Checkpointing = ChangelogCheckpointed(s).Checkpointing with { Interval = TimeSpan.FromDays(1), LocalRecovery = false },
        });
        await cluster.Client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, (await cluster.Client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);
        var storage = CheckpointTests.StorageOf(cluster);
        var beforeCompletion = (await UnreferencedAsync(storage, jobId)).ToHashSet(StringComparer.Ordinal);
        var unreferenced = new List<string>();
        await WaitUntilAsync(async () => (unreferenced = (await UnreferencedAsync(storage, jobId)).Where(p => !beforeCompletion.Contains(p)).ToList()).Count >= 4, "segments written after the checkpoint");
        return (jobId, unreferenced);
    }

    /// <summary>Those of <paramref name="paths"/> that exist in storage.</summary>
    private static async Task<List<string>> ExistingAsync(FileSystemCheckpointStorage storage, IReadOnlyList<string> paths)
    {
        var exists = await Task.WhenAll(paths.Select(path => storage.ExistsAsync(path, CancellationToken.None)));
        return paths.Where((_, i) => exists[i]).ToList();
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        // Polling storage: deletions run in the background and announce nothing.
        var deadline = DateTime.UtcNow + Timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    /// <summary>Objects under the job's changelog directory that no checkpoint manifest in storage refers to.</summary>
    private static async Task<List<string>> UnreferencedAsync(FileSystemCheckpointStorage storage, JobId jobId)
    {
        var referenced = (await CheckpointTests.ReadManifestsAsync(storage, jobId)).SelectMany(static m => m.Files()).Select(static f => f.Path).ToHashSet(StringComparer.Ordinal);
        var unreferenced = new List<string>();
        await foreach (var stored in storage.ListAsync(State.Snapshots.SnapshotLayout.ChangelogDirectory(jobId.Value), CancellationToken.None))
        {
            if (!referenced.Contains(stored.Path) && stored.Path.EndsWith(".log", StringComparison.Ordinal))
            {
                unreferenced.Add(stored.Path);
            }
        }

        return unreferenced;
    }

    private static async Task<JobStatus> PollAsync(StreamGrains.Client.StreamGrainsClient client, JobId jobId, Func<JobStatus, bool> condition)
    {
        // Polling: a subtask's warning is read from the subtask when the status is asked for; no event announces it.
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var status = await client.GetStatusAsync(jobId);
            if (condition(status))
            {
                return status;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out; warnings: {string.Join(" | ", status.Warnings)}");
            await Task.Delay(100);
        }
    }

    internal static JobSpec ChangelogCheckpointed(JobSpec spec) => spec with
    {
        Checkpointing = new CheckpointSettings
        {
            Interval = TimeSpan.FromSeconds(1),
            Timeout = TimeSpan.FromSeconds(30),
            Mode = CheckpointMode.Changelog,
            MaterializationInterval = TimeSpan.FromMilliseconds(500),
            ChangelogSegmentBytes = 256 << 10,
            ChangelogSegmentInterval = TimeSpan.FromMilliseconds(200),
        },
        Restart = RestartStrategy.FixedDelay(20, TimeSpan.FromMilliseconds(200)),
    };

    /// <summary>Holds uploads that match a predicate until released (the test cluster runs in this process).</summary>
    internal sealed class MaterializationGate
    {
        private static readonly ConcurrentDictionary<string, MaterializationGate> Gates = new();
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource? _held;
        private Func<string, bool>? _match;

        public static MaterializationGate For(string name) => Gates.GetOrAdd(name, static _ => new MaterializationGate());

        /// <summary>Holds the next upload whose path matches; the task completes when one is held.</summary>
        public Task Hold(Func<string, bool> match)
        {
            _held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _match, match);
            return _held.Task;
        }

        public void Release()
        {
            Volatile.Write(ref _match, null);
            _released.TrySetResult();
        }

        public Task BeforeUploadAsync(string path)
        {
            if (Volatile.Read(ref _match) is { } match && match(path))
            {
                _held!.TrySetResult();
                return _released.Task;
            }

            return Task.CompletedTask;
        }
    }

    private sealed class MaterializationOutage
    {
        private volatile bool _failing;

        public bool Failing
        {
            get => _failing;
            set => _failing = value;
        }
    }

    /// <summary>Storage that refuses materialization uploads while the outage lasts (segments still go through).</summary>
    private sealed class FailingMaterializationStorage(ICheckpointStorage inner, MaterializationOutage outage) : DelegatingCheckpointStorage(inner)
    {
        public const string Message = "injected: materialization uploads are refused";

        public override Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken) =>
            outage.Failing && path.Contains("/mat/", StringComparison.Ordinal)
                ? throw new CheckpointStorageException(Message)
                : Inner.UploadFileAsync(localPath, path, cancellationToken);
    }

    internal sealed class GatedStorage(ICheckpointStorage inner, MaterializationGate gate) : DelegatingCheckpointStorage(inner)
    {
        public override async Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken)
        {
            await gate.BeforeUploadAsync(path);
            return await Inner.UploadFileAsync(localPath, path, cancellationToken);
        }

        public override async Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken)
        {
            await gate.BeforeUploadAsync(path);
            await Inner.WriteAsync(path, content, overwrite, cancellationToken);
        }
    }
}
