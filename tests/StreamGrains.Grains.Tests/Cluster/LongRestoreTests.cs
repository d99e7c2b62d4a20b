using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using StreamGrains.Samples;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

/// <summary>A restore that takes far longer than a grain call may (Orleans' response timeout, 30 s) completes, and the job runs on.</summary>
[Collection(nameof(LongRestoreCollection))]
public sealed class LongRestoreTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private static readonly TimeSpan RestoreHold = TimeSpan.FromSeconds(62);

    [Fact]
    public async Task A_restore_longer_than_a_minute_completes_in_one_attempt_and_the_job_finishes_with_exact_counts()
    {
        const long Events = 1_000_000;
        const long Keys = 10_000;
        const long Seed = 23;
        var name = $"long-restore-{Guid.NewGuid():N}";
        var throttle = new RestoreThrottle(RestoreHold);
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 2,
            ConfigureServices = services => services.AddSingleton<ICheckpointStorage>(sp => new ThrottledRestoreStorage(
                new FileSystemCheckpointStorage(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Path) { LinkOnRestore = false },
                throttle)),
        });
        var client = cluster.Client;
        var parameters = JobParameters.Empty.With("events", Events).With("keys", Keys).With("seed", Seed).With("rate", 100_000).With("name", name);
        var jobId = await cluster.SubmitAsync<ResilientCountJob>(parameters, parallelism: 2, configure: static s => CheckpointTests.Checkpointed(s) with
        {
            Checkpointing = CheckpointTests.Checkpointed(s).Checkpointing with { Interval = TimeSpan.FromDays(1), LocalRecovery = false },
        });
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        // Every download of the restore after the user exception waits until 62 s after the first one began.
        throttle.Arm();
        ResultStore.Arm(name);
        var restoring = Stopwatch.StartNew();
        var during = await CheckpointTests.PollAsync(client, jobId, static s => s.Attempt == 2 && s.Subtasks.Any(static t => t.Attempt == 2 && t.Restore is { Completed: false, BytesTotal: > 0 }));
        var running = await client.WaitForAsync(jobId, static s => s.Attempt >= 2 && s.State == JobState.Running, Timeout);
        restoring.Stop();
        var final = await client.WaitForCompletionAsync(jobId, Timeout);

        Assert.Equal(JobState.Finished, final.State);
        Assert.Equal((2, 1, 2), (running.Attempt, final.Restarts, final.Attempt));
        Assert.Contains(during.Subtasks, static t => t.Attempt == 2 && t.State == SubtaskState.Created && t.OpenedAt is not null);
        Assert.True(throttle.Held > 0, "no download of the restore was held");
        Assert.True(restoring.Elapsed > RestoreHold, $"the restart took {restoring.Elapsed}, not longer than the hold");
        var keyed = final.Subtasks.Where(static s => s.Attempt == 2 && s.Chain.StartsWith("counts", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, keyed.Count);
        Assert.All(keyed, s =>
        {
            Assert.True(s.Restore is { Completed: true, BytesDownloaded: > 0 }, $"subtask {s.Index} did not download its state: {s.Restore}");
            var took = s.ReadyAt!.Value - s.OpenedAt!.Value;
            Assert.True(took > TimeSpan.FromSeconds(60), $"subtask {s.Index} restored in {took}, not over a minute");
        });
        CheckpointTests.AssertExactCounts(ClickCounts.ExpectedCounts(Seed, Keys, Events), ResultStore.Counts(name));
    }

    /// <summary>When the downloads of the armed restore may proceed: not before <c>hold</c> after the first of them began.</summary>
    private sealed class RestoreThrottle(TimeSpan hold)
    {
        private readonly object _lock = new();
        private bool _armed;
        private DateTimeOffset? _releaseAt;
        private int _held;

        /// <summary>Number of downloads that were held.</summary>
        public int Held => Volatile.Read(ref _held);

        public void Arm()
        {
            lock (_lock)
            {
                _armed = true;
            }
        }

        /// <summary>How long the download starting now must wait (zero when not armed, or once the hold is over).</summary>
        public TimeSpan Wait()
        {
            lock (_lock)
            {
                if (!_armed)
                {
                    return TimeSpan.Zero;
                }

                var now = DateTimeOffset.UtcNow;
                _releaseAt ??= now + hold;
                var wait = _releaseAt.Value - now;
                if (wait > TimeSpan.Zero)
                {
                    _held++;
                }

                return wait;
            }
        }
    }

    /// <summary>
    /// Storage whose downloads are throttled while a <see cref="RestoreThrottle"/> is armed, as a restore of a large state
    /// from a remote store would be; it declines links, so that every file a restore takes goes through the download.
    /// </summary>
    private sealed class ThrottledRestoreStorage(ICheckpointStorage inner, RestoreThrottle throttle) : DelegatingCheckpointStorage(inner)
    {
        public override async Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
        {
            // Fault injection, not synchronization: the transfer of a large state takes this long.
            if (throttle.Wait() is var wait && wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken);
            }

            await Inner.DownloadFileAsync(path, localPath, expected, cancellationToken);
        }

        public override Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) => Task.FromResult(false);
    }
}

/// <summary>The collection of <see cref="LongRestoreTests"/>: its test waits over a minute on one restore, so it starts first.</summary>
[CollectionDefinition(nameof(LongRestoreCollection))]
[LongRunning]
public sealed class LongRestoreCollection;
