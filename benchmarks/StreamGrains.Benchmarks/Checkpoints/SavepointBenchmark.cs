using StreamGrains.Snapshots;

namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record SavepointSettings(StateSettings State, int Rounds, TimeSpan Every, string Mode = "incremental", TimeSpan? Materialization = null, TimeSpan Settle = default, TimeSpan? EagerUpload = null);

/// <summary>
/// Native savepoints of a job holding <c>--state-mb</c> of keyed state while keys keep being updated, against an
/// incremental checkpoint of the same job and a raw copy of the full state to the same storage, in the same run.
/// Rounds alternate checkpoint and savepoint with the same pause before each, so both see the same amount of change.
/// With <c>--mode changelog</c> the job runs in changelog mode: its checkpoints seal the changelog tail, and a native
/// savepoint copies the latest materialization and the segments after it; the raw copy baseline is then the latest
/// materialization on local disk. With <c>--settle-s</c>, keys keep being updated that long after the first checkpoint
/// before the rounds, so that the load's compactions have run out (their output is what an incremental snapshot
/// uploads).
/// </summary>
internal static class SavepointBenchmark
{
    public static async Task<int> RunAsync(SavepointSettings settings, CancellationToken cancellationToken)
    {
        var changelog = settings.Mode switch
        {
            "incremental" => false,
            "changelog" => true,
            _ => throw new ArgumentException($"--mode must be incremental or changelog, was '{settings.Mode}'."),
        };
        var fields = settings.State.Fields("savepoint");
        fields["mode"] = settings.Mode;
        fields["every_s"] = settings.Every.TotalSeconds;
        fields["settle_s"] = settings.Settle.TotalSeconds;
        fields["eager_upload_s"] = settings.EagerUpload?.TotalSeconds ?? 0;
        BenchChecks.Settle(settings.Settle);
        await using var environment = await BenchEnvironment.StartAsync(settings.State);
        var name = "savepoint-" + Guid.NewGuid().ToString("N")[..8];
        var jobId = await environment.LoadAsync(settings.State, name, spec => spec with
        {
            Checkpointing = new StreamGrains.CheckpointSettings
            {
                Interval = TimeSpan.FromDays(1),
                Timeout = TimeSpan.FromMinutes(20),
                Mode = changelog ? CheckpointMode.Changelog : CheckpointMode.Incremental,
                MaterializationInterval = settings.Materialization ?? TimeSpan.FromMinutes(3),
                EagerUploadInterval = settings.EagerUpload,
            },
        });
        var first = await environment.CheckpointAsync(jobId);
        Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "first_checkpoint", ["checkpoint_s"] = Report.Round(first.Duration!.Value.TotalSeconds), ["full_size_bytes"] = first.FullSize });
        if (settings.Settle > TimeSpan.Zero)
        {
            // Pacing, not synchronization: the job keeps updating keys at the configured rate meanwhile.
            await Task.Delay(settings.Settle, cancellationToken);
        }

        using var traffic = new StorageTraffic();
        var checkpoints = new List<double>();
        var savepoints = new List<double>();
        var latest = first.CheckpointId;
        for (var round = 0; round < settings.Rounds; round++)
        {
            // Pacing, not synchronization: keys are updated at the configured rate before each snapshot.
            await Task.Delay(settings.Every, cancellationToken);
            var checkpoint = await environment.CheckpointAsync(jobId);
            latest = checkpoint.CheckpointId;
            checkpoints.Add(checkpoint.Duration!.Value.TotalSeconds);
            Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "checkpoint", ["round"] = round, ["checkpoint_s"] = Report.Round(checkpoint.Duration!.Value.TotalSeconds), ["bytes_uploaded"] = checkpoint.BytesUploaded });

            await Task.Delay(settings.Every, cancellationToken);
            var savepoint = await environment.Client.TriggerSavepointAsync(jobId, new SavepointRequest(), TimeSpan.FromMinutes(20), cancellationToken: cancellationToken);
            latest = savepoint.CheckpointId;
            savepoints.Add(savepoint.Duration.TotalSeconds);
            Report.Line(new Dictionary<string, object?>(fields)
            {
                ["phase"] = "savepoint",
                ["round"] = round,
                ["savepoint_s"] = Report.Round(savepoint.Duration.TotalSeconds),
                ["bytes_uploaded"] = savepoint.BytesUploaded,
                ["files_copied"] = savepoint.FilesCopied,
                ["full_size_bytes"] = savepoint.FullSize,
            });
        }

        // Everything the rounds wrote to storage: the snapshots' own uploads plus, with eager uploads, what was uploaded
        // ahead of them (including files compacted away before any snapshot took them).
        var roundsWritten = traffic.Now.Written;
        var files = changelog ? environment.LocalMaterializedFiles(jobId) : environment.LocalStateFiles(jobId, latest);
        var rawBytes = files.Sum(static f => new FileInfo(f).Length);
        var rawCopy = await environment.RawUploadAsync(files, environment.Cluster.RootDirectory, BenchEnvironment.TransfersPerSubtask * settings.State.Parallelism);
        await environment.Client.CancelAsync(jobId, cancellationToken);

        var savepointS = BenchEnvironment.Percentile(savepoints, 0.5);
        var checkpointS = BenchEnvironment.Percentile(checkpoints, 0.5);
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["rounds"] = settings.Rounds,
            ["savepoint_s"] = Report.Round(savepointS),
            ["checkpoint_s"] = Report.Round(checkpointS),
            ["raw_copy_s"] = Report.Round(rawCopy),
            ["raw_bytes"] = rawBytes,
            ["savepoint_over_checkpoint"] = Report.Round(savepointS / checkpointS),
            ["savepoint_over_raw_copy"] = Report.Round(savepointS / rawCopy),
            ["max_savepoint_s"] = Report.Round(savepoints.Max()),
            ["rounds_storage_written_mb"] = Report.Round(roundsWritten / 1e6),
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }
}
