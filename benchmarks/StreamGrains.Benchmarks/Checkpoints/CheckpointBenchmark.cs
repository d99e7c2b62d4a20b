using StreamGrains.Snapshots;

namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record CheckpointSettings(StateSettings State, string Mode, int Checkpoints, TimeSpan Every, TimeSpan Materialization, TimeSpan Settle = default, TimeSpan? EagerUpload = null, TimeSpan? SegmentInterval = null);

/// <summary>
/// Checkpoints of a job holding <c>--state-mb</c> of keyed state while keys keep being updated. <c>--mode incremental</c>
/// compares incremental checkpoints with a raw copy of the full local state to the same storage in the same run;
/// <c>--mode changelog</c> runs the same measurement with a changelog-mode job and then with an incremental-mode job,
/// each in a fresh environment, and compares the two.
/// </summary>
internal static class CheckpointBenchmark
{
    public static async Task<int> RunAsync(CheckpointSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Checkpoints < 1)
        {
            throw new ArgumentException($"--checkpoints must be at least 1, was {settings.Checkpoints}.");
        }

        BenchChecks.Settle(settings.Settle);
        var fields = settings.State.Fields("checkpoint");
        fields["mode"] = settings.Mode;
        fields["checkpoint_every_s"] = settings.Every.TotalSeconds;
        fields["settle_s"] = settings.Settle.TotalSeconds;
        fields["eager_upload_s"] = settings.EagerUpload?.TotalSeconds ?? 0;
        switch (settings.Mode)
        {
            case "incremental":
                return await RunIncrementalAsync(settings, fields, cancellationToken);
            case "changelog":
                BenchChecks.Materialization(settings.Materialization);
                fields["materialization_interval_s"] = settings.Materialization.TotalSeconds;
                BenchChecks.SegmentInterval(settings.SegmentInterval);
                fields["segment_interval_s"] = SegmentInterval(settings).TotalSeconds;
                return await RunChangelogAsync(settings, fields, cancellationToken);
            default:
                throw new ArgumentException($"--mode must be incremental or changelog, was '{settings.Mode}'.");
        }
    }

    private static async Task<int> RunIncrementalAsync(CheckpointSettings settings, Dictionary<string, object?> fields, CancellationToken cancellationToken)
    {
        var run = await MeasureAsync(settings, CheckpointMode.Incremental, fields, rawCopy: true, cancellationToken);
        var rawCopy = run.RawCopy!;
        var p99 = run.P99;
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["checkpoints"] = run.Durations.Count,
            ["p50_checkpoint_s"] = Report.Round(run.P50),
            ["p99_checkpoint_s"] = Report.Round(p99),
            ["bytes_per_checkpoint"] = run.BytesPerCheckpoint,
            ["first_checkpoint_s"] = Report.Round(run.First.Duration!.Value.TotalSeconds),
            ["full_size_bytes"] = run.First.FullSize,
            ["raw_copy_s"] = Report.Round(rawCopy.Seconds),
            ["raw_bytes"] = rawCopy.Bytes,
            ["p99_over_raw_copy"] = Report.Round(p99 / rawCopy.Seconds),
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }

    private static async Task<int> RunChangelogAsync(CheckpointSettings settings, Dictionary<string, object?> fields, CancellationToken cancellationToken)
    {
        // The same measurement twice, one job after the other, each in a fresh environment: changelog mode, then the
        // incremental mode it is compared with. Same state, update rate and pacing; only the mode differs.
        var changelog = await MeasureAsync(settings, CheckpointMode.Changelog, fields, rawCopy: false, cancellationToken);
        var incremental = await MeasureAsync(settings, CheckpointMode.Incremental, fields, rawCopy: false, cancellationToken);

        // Every subtask reports the materialization its checkpoint refers to; each one counts once.
        var materializations = changelog.All
            .SelectMany(static c => c.Subtasks)
            .Where(static s => s.MaterializationId is not null)
            .GroupBy(static s => (s.Chain, s.SubtaskIndex, s.MaterializationId))
            .Select(static g => g.First())
            .ToList();
        var initial = changelog.First.Subtasks.Where(static s => s.MaterializationId is not null).Select(static s => (s.Chain, s.SubtaskIndex, s.MaterializationId)).ToHashSet();
        var durations = materializations.Where(static m => m.MaterializationDuration is not null).Select(static m => m.MaterializationDuration!.Value.TotalSeconds).ToList();
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["checkpoints"] = changelog.Durations.Count,
            ["p50_checkpoint_s"] = Report.Round(changelog.P50),
            ["p99_checkpoint_s"] = Report.Round(changelog.P99),
            ["incremental_p50_checkpoint_s"] = Report.Round(incremental.P50),
            ["incremental_p99_checkpoint_s"] = Report.Round(incremental.P99),
            ["p99_over_incremental_p99"] = incremental.P99 > 0 ? Report.Round(changelog.P99 / incremental.P99) : null,
            ["changelog_bytes_per_checkpoint"] = (long)BenchEnvironment.Percentile(changelog.ChangelogBytes, 0.5),
            ["bytes_per_checkpoint"] = changelog.BytesPerCheckpoint,
            ["incremental_bytes_per_checkpoint"] = incremental.BytesPerCheckpoint,
            ["first_checkpoint_s"] = Report.Round(changelog.First.Duration!.Value.TotalSeconds),
            ["incremental_first_checkpoint_s"] = Report.Round(incremental.First.Duration!.Value.TotalSeconds),
            ["full_size_bytes"] = changelog.First.FullSize,
            ["incremental_full_size_bytes"] = incremental.First.FullSize,
            ["materializations_seen"] = materializations.Count,
            ["materializations_after_first"] = materializations.Count(m => !initial.Contains((m.Chain, m.SubtaskIndex, m.MaterializationId))),
            ["max_materialization_s"] = durations.Count > 0 ? Report.Round(durations.Max()) : null,
            ["max_materialized_size_bytes"] = materializations.Count > 0 ? materializations.Max(static m => m.MaterializedSize) : null,
            ["gc_pause_s"] = Report.Round(changelog.Gc.Pause.TotalSeconds),
            ["incremental_gc_pause_s"] = Report.Round(incremental.Gc.Pause.TotalSeconds),
            ["gen2_collections"] = changelog.Gc.Gen2Collections,
            ["incremental_gen2_collections"] = incremental.Gc.Gen2Collections,
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }

    /// <summary>The changelog job's segment interval: <c>--segment-interval-ms</c>, or the engine's default.</summary>
    private static TimeSpan SegmentInterval(CheckpointSettings settings) => settings.SegmentInterval ?? new StreamGrains.CheckpointSettings().ChangelogSegmentInterval;

    /// <summary>
    /// Runs one job in <paramref name="mode"/> in a fresh environment: load, a first (full) checkpoint, then
    /// <see cref="CheckpointSettings.Checkpoints"/> measured checkpoints <see cref="CheckpointSettings.Every"/> apart,
    /// with a raw copy of the full local state to the same storage at the end when <paramref name="rawCopy"/> is set.
    /// Prints one line per checkpoint.
    /// </summary>
    private static async Task<JobRun> MeasureAsync(CheckpointSettings settings, CheckpointMode mode, Dictionary<string, object?> summaryFields, bool rawCopy, CancellationToken cancellationToken)
    {
        var changelog = mode == CheckpointMode.Changelog;
        var fields = new Dictionary<string, object?>(summaryFields) { ["mode"] = changelog ? "changelog" : "incremental" };
        if (!changelog)
        {
            // Settings of the changelog job only.
            fields.Remove("materialization_interval_s");
            fields.Remove("segment_interval_s");
        }
        await using var environment = await BenchEnvironment.StartAsync(settings.State);
        var name = "checkpoint-" + Guid.NewGuid().ToString("N")[..8];
        var checkpointing = new StreamGrains.CheckpointSettings { Interval = TimeSpan.FromDays(1), Timeout = TimeSpan.FromMinutes(20), Mode = mode, EagerUploadInterval = settings.EagerUpload };
        if (changelog)
        {
            checkpointing = checkpointing with { MaterializationInterval = settings.Materialization, ChangelogSegmentInterval = SegmentInterval(settings) };
        }

        var jobId = await environment.LoadAsync(settings.State, name, spec => spec with { Checkpointing = checkpointing });

        // The first checkpoint after the load uploads the whole state (in changelog mode: the first materialization);
        // it is reported but not measured.
        var (first, firstPause) = await CheckpointAsync(environment, jobId);
        Report.Line(Line(fields, "first_checkpoint", first, changelog, firstPause));
        var settling = System.Diagnostics.Stopwatch.StartNew();
        while (settling.Elapsed < settings.Settle)
        {
            // Keys keep being updated at the configured rate while the load's compactions run out, so the measured
            // checkpoints see the steady state rather than the bulk load's aftermath (same for both modes). The job
            // checkpoints at the same pace meanwhile, as a running job does: in changelog mode a materialization is
            // only confirmed by a checkpoint, so without them the first measured checkpoints would overlap one that
            // catches up on the whole settling period.
            await Task.Delay(settings.Every, cancellationToken);
            var (settled, settledPause) = await CheckpointAsync(environment, jobId);
            Report.Line(Line(fields, "settle_checkpoint", settled, changelog, settledPause));
        }

        var latest = first.CheckpointId;
        var measured = new List<CheckpointStats>();
        var pausedBefore = GC.GetTotalPauseDuration();
        var gen2Before = GC.CollectionCount(2);
        for (var i = 0; i < settings.Checkpoints; i++)
        {
            // Pacing, not synchronization: keys are updated at the configured rate between checkpoints.
            await Task.Delay(settings.Every, cancellationToken);
            var (stats, paused) = await CheckpointAsync(environment, jobId);
            latest = stats.CheckpointId;
            measured.Add(stats);
            Report.Line(Line(fields, "checkpoint", stats, changelog, paused));
        }

        var gc = new GcDuringMeasurement(GC.GetTotalPauseDuration() - pausedBefore, GC.CollectionCount(2) - gen2Before);

        RawCopy? raw = null;
        if (rawCopy)
        {
            // Baseline: the full state as it sits on local disk, uploaded to a fresh prefix of the same storage with the
            // same number of parallel transfers the subtasks use together, while the job keeps updating keys.
            var files = environment.LocalStateFiles(jobId, latest);
            var rawBytes = files.Sum(static f => new FileInfo(f).Length);
            var seconds = await environment.RawUploadAsync(files, environment.Cluster.RootDirectory, BenchEnvironment.TransfersPerSubtask * settings.State.Parallelism);
            raw = new RawCopy(seconds, rawBytes);
            Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "raw_copy", ["raw_copy_s"] = Report.Round(seconds), ["raw_bytes"] = rawBytes, ["files"] = files.Count });
        }

        await environment.Client.CancelAsync(jobId, cancellationToken);
        return new JobRun(first, measured, raw, gc);
    }

    /// <summary>A checkpoint, and how long the process was paused for garbage collection while it ran (the cluster is in this process).</summary>
    private static async Task<(CheckpointStats Stats, TimeSpan GcPause)> CheckpointAsync(BenchEnvironment environment, JobId jobId)
    {
        var before = GC.GetTotalPauseDuration();
        var stats = await environment.CheckpointAsync(jobId);
        return (stats, GC.GetTotalPauseDuration() - before);
    }

    private static Dictionary<string, object?> Line(Dictionary<string, object?> fields, string phase, CheckpointStats stats, bool changelog, TimeSpan gcPause)
    {
        var line = new Dictionary<string, object?>(fields)
        {
            ["phase"] = phase,
            ["checkpoint_id"] = stats.CheckpointId,
            ["checkpoint_s"] = Report.Round(stats.Duration!.Value.TotalSeconds),
            ["sync_s"] = Report.Round(stats.MaxSynchronous.TotalSeconds),
            ["async_s"] = Report.Round(stats.MaxAsynchronous.TotalSeconds),
            ["alignment_s"] = Report.Round(stats.MaxAlignment.TotalSeconds),
            // Where the rest of the duration went: the barrier's way from the trigger to the last subtask it reached,
            // and the last acknowledgement (after that: the manifest).
            ["barrier_s"] = Report.Round(LatestSinceTrigger(stats, static s => s.BarrierAt)),
            ["acked_s"] = Report.Round(LatestSinceTrigger(stats, static s => s.AcknowledgedAt)),
            ["bytes_uploaded"] = stats.BytesUploaded,
            ["full_size_bytes"] = stats.FullSize,
            ["gc_pause_s"] = Report.Round(gcPause.TotalSeconds),
        };
        if (changelog)
        {
            var materialized = stats.Subtasks.Where(static s => s.MaterializationId is not null).ToList();
            line["changelog_bytes"] = stats.ChangelogBytes;
            line["materialization_ids"] = materialized.Select(static s => s.MaterializationId!.Value).Distinct().Order().ToArray();
            line["max_materialization_s"] = materialized.Any(static s => s.MaterializationDuration is not null)
                ? Report.Round(materialized.Max(static s => s.MaterializationDuration?.TotalSeconds ?? 0))
                : null;
            line["materialized_size_bytes"] = materialized.Sum(static s => s.MaterializedSize);
        }

        return line;
    }

    /// <summary>Seconds from the trigger to the latest of <paramref name="at"/> over the subtasks (0 when none has it).</summary>
    private static double LatestSinceTrigger(CheckpointStats stats, Func<SubtaskCheckpointStats, DateTimeOffset?> at) =>
        stats.Subtasks.Select(at).OfType<DateTimeOffset>().Select(t => (t - stats.TriggeredAt).TotalSeconds).DefaultIfEmpty().Max();

    private sealed record RawCopy(double Seconds, long Bytes);

    /// <summary>Garbage collection in the process from the first measured checkpoint's pacing to the last checkpoint.</summary>
    private sealed record GcDuringMeasurement(TimeSpan Pause, int Gen2Collections);

    /// <summary>What one job measured: its first (full) checkpoint, the measured ones after it, and the GC meanwhile.</summary>
    private sealed record JobRun(CheckpointStats First, IReadOnlyList<CheckpointStats> Measured, RawCopy? RawCopy, GcDuringMeasurement Gc)
    {
        public IEnumerable<CheckpointStats> All => Measured.Prepend(First);

        public List<double> Durations => [.. Measured.Select(static s => s.Duration!.Value.TotalSeconds)];

        public List<double> ChangelogBytes => [.. Measured.Select(static s => (double)s.ChangelogBytes)];

        public double P50 => BenchEnvironment.Percentile(Durations, 0.5);

        public double P99 => BenchEnvironment.Percentile(Durations, 0.99);

        public long BytesPerCheckpoint => (long)BenchEnvironment.Percentile([.. Measured.Select(static s => (double)s.BytesUploaded)], 0.5);
    }
}
