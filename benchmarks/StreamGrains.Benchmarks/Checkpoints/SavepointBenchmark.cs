using StreamGrains.Snapshots;

namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record SavepointSettings(StateSettings State, int Rounds, TimeSpan Every);

/// <summary>
/// Native savepoints of a job holding <c>--state-mb</c> of keyed state while keys keep being updated, against an
/// incremental checkpoint of the same job and a raw copy of the full state to the same storage, in the same run.
/// Rounds alternate checkpoint and savepoint with the same pause before each, so both see the same amount of change.
/// </summary>
internal static class SavepointBenchmark
{
    public static async Task<int> RunAsync(SavepointSettings settings, CancellationToken cancellationToken)
    {
        var fields = settings.State.Fields("savepoint");
        fields["every_s"] = settings.Every.TotalSeconds;
        await using var environment = await BenchEnvironment.StartAsync(settings.State);
        var name = "savepoint-" + Guid.NewGuid().ToString("N")[..8];
        var jobId = await environment.LoadAsync(settings.State, name, static spec => spec with
        {
            Checkpointing = new StreamGrains.CheckpointSettings { Interval = TimeSpan.FromDays(1), Timeout = TimeSpan.FromMinutes(20) },
        });
        var first = await environment.CheckpointAsync(jobId);
        Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "first_checkpoint", ["checkpoint_s"] = Report.Round(first.Duration!.Value.TotalSeconds), ["full_size_bytes"] = first.FullSize });

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

        var files = environment.LocalStateFiles(jobId, latest);
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
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }
}
