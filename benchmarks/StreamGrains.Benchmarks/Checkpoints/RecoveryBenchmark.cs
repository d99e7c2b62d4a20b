using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record RecoverySettings(StateSettings State, bool Local, bool CopyOnRestore, string Mode, TimeSpan Every, TimeSpan Materialization, TimeSpan Settle = default, int Rounds = 1, bool ColdCache = false);

/// <summary>
/// Time to recover: a job holding <c>--state-mb</c> of keyed state is checkpointed, then a silo is killed (or, with
/// <c>--local</c>, user code throws with every silo alive) and the time until the first record is processed after the
/// restore is measured. <c>--mode incremental</c> compares it with a raw download of the same bytes from the same
/// storage in the same run; <c>--mode changelog</c> measures a changelog-mode job and an incremental-mode job, each in a
/// fresh environment (a killed silo does not come back), <c>--rounds</c> times in alternating order, and compares the
/// medians.
/// </summary>
internal static class RecoveryBenchmark
{
    public static async Task<int> RunAsync(RecoverySettings settings, CancellationToken cancellationToken)
    {
        BenchChecks.Settle(settings.Settle);
        if (settings.State.Processes && settings.Local)
        {
            throw new ArgumentException("--local injects a failure into user code in this process: it cannot be combined with --processes.");
        }

        var fields = settings.State.Fields("recovery");
        fields["mode"] = settings.Mode;
        fields["local"] = settings.Local;
        fields["link_on_restore"] = settings.State.Storage == "filesystem" && !settings.CopyOnRestore;
        fields["settle_s"] = settings.Settle.TotalSeconds;
        fields["cold_cache"] = settings.ColdCache;
        switch (settings.Mode)
        {
            case "incremental":
                return await RunIncrementalAsync(settings, fields, cancellationToken);
            case "changelog":
                BenchChecks.Materialization(settings.Materialization);
                fields["materialization_interval_s"] = settings.Materialization.TotalSeconds;
                fields["tail_s"] = settings.Every.TotalSeconds;
                return await RunChangelogAsync(settings, fields, cancellationToken);
            default:
                throw new ArgumentException($"--mode must be incremental or changelog, was '{settings.Mode}'.");
        }
    }

    private static async Task<int> RunIncrementalAsync(RecoverySettings settings, Dictionary<string, object?> fields, CancellationToken cancellationToken)
    {
        var run = await MeasureAsync(settings, CheckpointMode.Incremental, fields, rawDownload: true, cancellationToken);
        var raw = run.RawDownload!;
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["failure"] = run.Failure,
            ["mttr_s"] = Report.Round(run.Mttr),
            ["ready_s"] = Report.Round(run.Ready),
            ["bytes_downloaded"] = run.Downloaded,
            ["bytes_linked"] = run.Linked,
            ["raw_download_s"] = Report.Round(raw.Seconds),
            ["raw_bytes"] = raw.Bytes,
            ["page_cache_dropped"] = run.PageCacheDropped,
            ["mttr_over_raw_download"] = raw.Seconds > 0 ? Report.Round(run.Mttr / raw.Seconds) : null,
            ["full_size_bytes"] = run.Checkpoint.FullSize,
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }

    private static async Task<int> RunChangelogAsync(RecoverySettings settings, Dictionary<string, object?> fields, CancellationToken cancellationToken)
    {
        // The same measurement for both modes, one job after the other, each in a fresh environment: same state, update
        // rate and failure. Rounds alternate which mode goes first, so that neither always meets a warmer (or a more
        // cluttered) machine; the summary compares medians.
        BenchChecks.Rounds(settings.Rounds);
        var changelogRuns = new List<Recovery>();
        var incrementalRuns = new List<Recovery>();
        for (var round = 0; round < settings.Rounds; round++)
        {
            var roundFields = new Dictionary<string, object?>(fields) { ["round"] = round };
            if (round % 2 == 0)
            {
                changelogRuns.Add(await MeasureAsync(settings, CheckpointMode.Changelog, roundFields, rawDownload: false, cancellationToken));
                incrementalRuns.Add(await MeasureAsync(settings, CheckpointMode.Incremental, roundFields, rawDownload: false, cancellationToken));
            }
            else
            {
                incrementalRuns.Add(await MeasureAsync(settings, CheckpointMode.Incremental, roundFields, rawDownload: false, cancellationToken));
                changelogRuns.Add(await MeasureAsync(settings, CheckpointMode.Changelog, roundFields, rawDownload: false, cancellationToken));
            }
        }

        var changelog = MedianRun(changelogRuns);
        var incremental = MedianRun(incrementalRuns);
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["rounds"] = settings.Rounds,
            ["failure"] = changelog.Failure,
            ["mttr_s"] = Report.Round(changelog.Mttr),
            ["ready_s"] = Report.Round(changelog.Ready),
            ["incremental_mttr_s"] = Report.Round(incremental.Mttr),
            ["incremental_ready_s"] = Report.Round(incremental.Ready),
            ["mttr_over_incremental"] = incremental.Mttr > 0 ? Report.Round(changelog.Mttr / incremental.Mttr) : null,
            ["mttr_rounds_s"] = changelogRuns.Select(static r => Report.Round(r.Mttr)).ToArray(),
            ["incremental_mttr_rounds_s"] = incrementalRuns.Select(static r => Report.Round(r.Mttr)).ToArray(),
            ["bytes_downloaded"] = changelog.Downloaded,
            ["bytes_linked"] = changelog.Linked,
            ["incremental_bytes_downloaded"] = incremental.Downloaded,
            ["incremental_bytes_linked"] = incremental.Linked,
            ["changelog_bytes"] = changelog.Checkpoint.ChangelogBytes,
            ["full_size_bytes"] = changelog.Checkpoint.FullSize,
            ["incremental_full_size_bytes"] = incremental.Checkpoint.FullSize,
            ["restored_from_latest"] = changelogRuns.All(static r => r.RestoredFromLatest),
            ["incremental_restored_from_latest"] = incrementalRuns.All(static r => r.RestoredFromLatest),
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }

    /// <summary>
    /// Runs one job in <paramref name="mode"/> in a fresh environment: load, a checkpoint (in changelog mode, the first
    /// materialization, then <see cref="RecoverySettings.Every"/> of updates and a second checkpoint, so that the restore
    /// has a changelog tail to replay), the failure, and the wait for the first record after the restore. With
    /// <paramref name="rawDownload"/> the bytes of the restored checkpoint are then downloaded raw from the same storage.
    /// </summary>
    private static async Task<Recovery> MeasureAsync(RecoverySettings settings, CheckpointMode mode, Dictionary<string, object?> summaryFields, bool rawDownload, CancellationToken cancellationToken)
    {
        var changelog = mode == CheckpointMode.Changelog;
        var fields = new Dictionary<string, object?>(summaryFields) { ["mode"] = changelog ? "changelog" : "incremental" };
        if (!changelog)
        {
            // Settings of the changelog job only.
            fields.Remove("materialization_interval_s");
            fields.Remove("tail_s");
        }
        await using var environment = await BenchEnvironment.StartAsync(settings.State, linkOnRestore: !settings.CopyOnRestore);
        using var traffic = new StorageTraffic(environment.StorageServer);
        var client = environment.Client;
        var name = "recovery-" + Guid.NewGuid().ToString("N")[..8];
        var checkpointing = new StreamGrains.CheckpointSettings { Interval = TimeSpan.FromDays(1), Timeout = TimeSpan.FromMinutes(20), LocalRecovery = settings.Local, RetainOnCancel = true, Mode = mode };
        if (changelog)
        {
            checkpointing = checkpointing with { MaterializationInterval = settings.Materialization };
        }

        var jobId = await environment.LoadAsync(settings.State, name, spec => spec with
        {
            Checkpointing = checkpointing,
            Restart = RestartStrategy.FixedDelay(3, TimeSpan.FromMilliseconds(100)),
        });
        var checkpoint = await environment.CheckpointAsync(jobId);
        Report.Line(CheckpointLine(fields, checkpoint, changelog));
        if (settings.Settle > TimeSpan.Zero)
        {
            // Pacing: keys keep being updated while the load's compactions run out (same for both modes), then the
            // checkpoint the failure restores from (incremental) or the steady state below starts from (changelog).
            await Task.Delay(settings.Settle, cancellationToken);
            checkpoint = await environment.CheckpointAsync(jobId);
            Report.Line(CheckpointLine(fields, checkpoint, changelog));
        }

        if (changelog)
        {
            // Steady state: the first materializations ran during the load, so their tails hold part of the load. Wait
            // (checkpoint by checkpoint) until every keyed subtask refers to a materialization started after the first
            // checkpoint; then, after the configured pause of updates, the last checkpoint refers to it plus a changelog
            // tail that the restore replays, as in a job that has been running for a while.
            var loaded = checkpoint.Subtasks.Where(static s => s.MaterializationId is not null).ToDictionary(static s => s.SubtaskIndex, static s => s.MaterializationId!.Value);
            var deadline = DateTime.UtcNow + (settings.Materialization * 4) + TimeSpan.FromMinutes(2);
            while (checkpoint.Subtasks.Any(s => s.MaterializationId is { } id && loaded.TryGetValue(s.SubtaskIndex, out var before) && id <= before + 1))
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new InvalidOperationException("No materialization after the load completed in time.");
                }

                // Pacing, not synchronization: materializations run on their own interval; checkpoints report them.
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                checkpoint = await environment.CheckpointAsync(jobId);
            }

            await Task.Delay(settings.Every, cancellationToken);
            checkpoint = await environment.CheckpointAsync(jobId);
            Report.Line(CheckpointLine(fields, checkpoint, changelog));
        }

        var dirtyAtFailure = BenchEnvironment.DirtyMegabytes();
        var cacheDropped = settings.ColdCache && PageCache.Drop();
        DateTimeOffset failedAt;
        string failure;
        var trafficAtFailure = traffic.Now;
        var threadsAtFailure = ThreadCpu.Sample();
        var ioAtFailure = ProcessIo.Sample();
        var failureClock = traffic.Elapsed;
        if (settings.Local)
        {
            StateLoadJob.Failure.Arm(name);
            await client.WaitForAsync(jobId, static s => s.Attempt > 1, TimeSpan.FromMinutes(5), cancellationToken);
            failedAt = StateLoadJob.Failure.ThrownAt(name) ?? throw new InvalidOperationException("The injected failure was not thrown.");
            failure = "user_exception";
        }
        else
        {
            var before = await client.GetStatusAsync(jobId, cancellationToken: cancellationToken);
            failedAt = DateTimeOffset.UtcNow;
            failure = await environment.KillSiloWithKeyedSubtaskAsync(before, cancellationToken) ? "silo_killed_with_job_grain_or_coordinator" : "silo_killed";
        }

        // The status carries when each subtask of the new attempt became ready and processed its first record.
        var recovered = await client.WaitForAsync(jobId, static s => s.Attempt > 1 && s.State == JobState.Running, TimeSpan.FromMinutes(20), cancellationToken);
        var status = recovered;
        while (!status.Subtasks.Any(s => s.Attempt == status.Attempt && s.FirstRecordAt is not null))
        {
            await Task.Delay(100, cancellationToken);
            status = await client.GetStatusAsync(jobId, cancellationToken: cancellationToken);
            if (status.State.IsTerminal() || status.Attempt != recovered.Attempt)
            {
                throw new InvalidOperationException($"The job did not resume: {status} (attempt {status.Attempt}); warnings: {string.Join(" | ", status.Warnings)}");
            }
        }

        var trafficAtRecovery = traffic.Now;
        var threadsAtRecovery = ThreadCpu.Sample();
        var ioAtRecovery = ProcessIo.Sample();
        var current = status.Subtasks.Where(s => s.Attempt == status.Attempt).ToList();
        var firstRecord = current.Where(static s => s.FirstRecordAt is not null).Min(static s => s.FirstRecordAt!.Value);
        var allReady = current.Max(static s => s.ReadyAt!.Value);
        var downloaded = current.Sum(static s => s.Restore?.BytesDownloaded ?? 0);
        var linked = current.Sum(static s => s.Restore?.BytesLinked ?? 0);
        var replayed = current.Sum(static s => s.Restore?.ChangelogBytesReplayed ?? 0);
        var downloading = current.Count(static s => s.Restore?.BytesDownloaded + s.Restore?.BytesLinked > 0);
        var manifestPath = status.RestoredFrom ?? throw new InvalidOperationException("The job did not restore from a checkpoint.");
        var result = new Recovery(failure, (firstRecord - failedAt).TotalSeconds, (allReady - failedAt).TotalSeconds, downloaded, linked, checkpoint, manifestPath == checkpoint.ManifestPath, null);
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "recovered",
            ["failure"] = failure,
            ["mttr_s"] = Report.Round(result.Mttr),
            ["ready_s"] = Report.Round(result.Ready),
            ["bytes_downloaded"] = downloaded,
            ["bytes_linked"] = linked,
            ["changelog_bytes_replayed"] = replayed,
            ["restored_from"] = manifestPath,
            ["restored_from_latest"] = result.RestoredFromLatest,
            // Everything the process moved to and from storage between the failure and the first record: the restore's
            // downloads, and uploads still running for the failed attempt (which compete with them).
            ["storage_written_bytes"] = trafficAtRecovery.Written - trafficAtFailure.Written,
            ["storage_read_bytes"] = trafficAtRecovery.Read - trafficAtFailure.Read,
            ["storage_mb_per_second"] = traffic.PerSecondSince(failureClock, (int)Math.Ceiling(result.Mttr) + 1),
            ["cpu_s_by_thread"] = ThreadCpu.Between(threadsAtFailure, threadsAtRecovery),
            ["process_io"] = ProcessIo.Between(ioAtFailure, ioAtRecovery),
            ["dirty_mb_at_failure"] = dirtyAtFailure,
            ["subtasks"] = current.Where(static s => s.Restore is not null).OrderBy(static s => s.Chain, StringComparer.Ordinal).ThenBy(static s => s.Index).Select(s => Phases(s, failedAt)).ToArray(),
        });
        var manifest = rawDownload ? ManifestJson.Deserialize((await environment.Storage.ReadAsync(manifestPath, cancellationToken))!, manifestPath) : null;
        await client.CancelAsync(jobId, cancellationToken);
        if (manifest is null)
        {
            return result;
        }

        // Baseline: the same bytes, downloaded raw from the same storage with as many parallel transfers as the
        // subtasks that took state from storage used together (a restore from filesystem storage links the SSTs instead
        // of copying them, which is what it is compared with). Nothing came from storage with local recovery: no baseline.
        var files = downloaded + linked == 0 ? [] : manifest.Files().ToList();
        var rawCold = settings.ColdCache && PageCache.Drop();
        var seconds = files.Count == 0 ? 0 : await environment.RawDownloadAsync(files, BenchEnvironment.TransfersPerSubtask * Math.Max(1, downloading));
        return result with { RawDownload = new RawDownload(seconds, files.Sum(static f => f.Length)), PageCacheDropped = cacheDropped && rawCold };
    }

    /// <summary>The run with the median time to recover (the lower middle one of an even count).</summary>
    private static Recovery MedianRun(List<Recovery> runs) => runs.OrderBy(static r => r.Mttr).ElementAt((runs.Count - 1) / 2);

    /// <summary>Where a restored subtask's time went, in seconds after the failure: opened, files in place, ready, first record.</summary>
    private static Dictionary<string, object?> Phases(SubtaskStatus subtask, DateTimeOffset failedAt)
    {
        double? After(DateTimeOffset? at) => at is { } time ? Report.Round((time - failedAt).TotalSeconds) : null;
        return new Dictionary<string, object?>
        {
            ["chain"] = subtask.Chain,
            ["index"] = subtask.Index,
            ["silo"] = subtask.Silo,
            ["opened_s"] = After(subtask.OpenedAt),
            ["files_restored_s"] = After(subtask.Restore?.FilesRestoredAt),
            ["ready_s"] = After(subtask.ReadyAt),
            ["first_record_s"] = After(subtask.FirstRecordAt),
            ["bytes_downloaded"] = subtask.Restore?.BytesDownloaded,
            ["changelog_bytes_replayed"] = subtask.Restore?.ChangelogBytesReplayed,
        };
    }

    private static Dictionary<string, object?> CheckpointLine(Dictionary<string, object?> fields, CheckpointStats stats, bool changelog)
    {
        var line = new Dictionary<string, object?>(fields)
        {
            ["phase"] = "checkpoint",
            ["checkpoint_id"] = stats.CheckpointId,
            ["checkpoint_s"] = Report.Round(stats.Duration!.Value.TotalSeconds),
            ["full_size_bytes"] = stats.FullSize,
        };
        if (changelog)
        {
            line["bytes_uploaded"] = stats.BytesUploaded;
            line["changelog_bytes"] = stats.ChangelogBytes;
            line["materialization_ids"] = stats.Subtasks.Where(static s => s.MaterializationId is not null).Select(static s => s.MaterializationId!.Value).Distinct().Order().ToArray();
        }

        return line;
    }

    private sealed record RawDownload(double Seconds, long Bytes);

    /// <summary>What one job measured; <see cref="Checkpoint"/> is the last checkpoint taken before the failure.</summary>
    private sealed record Recovery(string Failure, double Mttr, double Ready, long Downloaded, long Linked, CheckpointStats Checkpoint, bool RestoredFromLatest, RawDownload? RawDownload)
    {
        /// <summary>Whether the page cache was dropped before the failure and before the raw download (<c>--cold-cache</c>).</summary>
        public bool PageCacheDropped { get; init; }
    }
}
