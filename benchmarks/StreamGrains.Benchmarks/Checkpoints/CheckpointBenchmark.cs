namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record CheckpointSettings(StateSettings State, string Mode, int Checkpoints, TimeSpan Every);

/// <summary>
/// Incremental checkpoints of a job holding <c>--state-mb</c> of keyed state while keys keep being updated, against a
/// raw copy of the full local state to the same storage in the same run.
/// </summary>
internal static class CheckpointBenchmark
{
    public static async Task<int> RunAsync(CheckpointSettings settings, CancellationToken cancellationToken)
    {
        if (settings.Mode != "incremental")
        {
            throw new ArgumentException($"--mode {settings.Mode} is not available; this build has incremental checkpoints only.");
        }

        var fields = settings.State.Fields("checkpoint");
        fields["mode"] = settings.Mode;
        fields["checkpoint_every_s"] = settings.Every.TotalSeconds;
        await using var environment = await BenchEnvironment.StartAsync(settings.State);
        var name = "checkpoint-" + Guid.NewGuid().ToString("N")[..8];
        var jobId = await environment.LoadAsync(settings.State, name, static spec => spec with
        {
            Checkpointing = new StreamGrains.CheckpointSettings { Interval = TimeSpan.FromDays(1), Timeout = TimeSpan.FromMinutes(20) },
        });

        var first = await environment.CheckpointAsync(jobId);
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "first_checkpoint",
            ["checkpoint_id"] = first.CheckpointId,
            ["checkpoint_s"] = Report.Round(first.Duration!.Value.TotalSeconds),
            ["bytes_uploaded"] = first.BytesUploaded,
            ["full_size_bytes"] = first.FullSize,
        });

        var latest = first.CheckpointId;
        var durations = new List<double>();
        var bytes = new List<double>();
        for (var i = 0; i < settings.Checkpoints; i++)
        {
            // Pacing, not synchronization: keys are updated at the configured rate between checkpoints.
            await Task.Delay(settings.Every, cancellationToken);
            var stats = await environment.CheckpointAsync(jobId);
            latest = stats.CheckpointId;
            durations.Add(stats.Duration!.Value.TotalSeconds);
            bytes.Add(stats.BytesUploaded);
            Report.Line(new Dictionary<string, object?>(fields)
            {
                ["phase"] = "checkpoint",
                ["checkpoint_id"] = stats.CheckpointId,
                ["checkpoint_s"] = Report.Round(stats.Duration!.Value.TotalSeconds),
                ["sync_s"] = Report.Round(stats.MaxSynchronous.TotalSeconds),
                ["async_s"] = Report.Round(stats.MaxAsynchronous.TotalSeconds),
                ["alignment_s"] = Report.Round(stats.MaxAlignment.TotalSeconds),
                ["bytes_uploaded"] = stats.BytesUploaded,
                ["full_size_bytes"] = stats.FullSize,
            });
        }

        // Baseline: the full state as it sits on local disk, uploaded to a fresh prefix of the same storage with the
        // same number of parallel transfers the subtasks use together, while the job keeps updating keys.
        var files = environment.LocalStateFiles(jobId, latest);
        var rawBytes = files.Sum(static f => new FileInfo(f).Length);
        var rawCopy = await environment.RawUploadAsync(files, environment.Cluster.RootDirectory, BenchEnvironment.TransfersPerSubtask * settings.State.Parallelism);
        Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "raw_copy", ["raw_copy_s"] = Report.Round(rawCopy), ["raw_bytes"] = rawBytes, ["files"] = files.Count });
        await environment.Client.CancelAsync(jobId, cancellationToken);

        var p50 = BenchEnvironment.Percentile(durations, 0.5);
        var p99 = BenchEnvironment.Percentile(durations, 0.99);
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["checkpoints"] = durations.Count,
            ["p50_checkpoint_s"] = Report.Round(p50),
            ["p99_checkpoint_s"] = Report.Round(p99),
            ["bytes_per_checkpoint"] = (long)BenchEnvironment.Percentile(bytes, 0.5),
            ["first_checkpoint_s"] = Report.Round(first.Duration!.Value.TotalSeconds),
            ["full_size_bytes"] = first.FullSize,
            ["raw_copy_s"] = Report.Round(rawCopy),
            ["raw_bytes"] = rawBytes,
            ["p99_over_raw_copy"] = Report.Round(p99 / rawCopy),
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }
}
