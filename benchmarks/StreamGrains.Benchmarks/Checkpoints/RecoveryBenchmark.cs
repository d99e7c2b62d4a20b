using StreamGrains.State.Snapshots;

namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record RecoverySettings(StateSettings State, bool Local, bool CopyOnRestore);

/// <summary>
/// Time to recover: a job holding <c>--state-mb</c> of keyed state is checkpointed, then a silo is killed (or, with
/// <c>--local</c>, user code throws with every silo alive) and the time until the first record is processed after the
/// restore is measured, against a raw download of the same bytes from the same storage in the same run.
/// </summary>
internal static class RecoveryBenchmark
{
    public static async Task<int> RunAsync(RecoverySettings settings, CancellationToken cancellationToken)
    {
        var fields = settings.State.Fields("recovery");
        fields["local"] = settings.Local;
        fields["link_on_restore"] = settings.State.Storage == "filesystem" && !settings.CopyOnRestore;
        await using var environment = await BenchEnvironment.StartAsync(settings.State, linkOnRestore: !settings.CopyOnRestore);
        var client = environment.Client;
        var name = "recovery-" + Guid.NewGuid().ToString("N")[..8];
        var jobId = await environment.LoadAsync(settings.State, name, spec => spec with
        {
            Checkpointing = new StreamGrains.CheckpointSettings { Interval = TimeSpan.FromDays(1), Timeout = TimeSpan.FromMinutes(20), LocalRecovery = settings.Local, RetainOnCancel = true },
            Restart = RestartStrategy.FixedDelay(3, TimeSpan.FromMilliseconds(100)),
        });
        var checkpoint = await environment.CheckpointAsync(jobId);
        Report.Line(new Dictionary<string, object?>(fields) { ["phase"] = "checkpoint", ["checkpoint_id"] = checkpoint.CheckpointId, ["full_size_bytes"] = checkpoint.FullSize });

        DateTimeOffset failedAt;
        string failure;
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
            var victim = environment.Cluster.Orleans.Silos.Skip(1).FirstOrDefault(s => before.Subtasks.Any(t => t.Silo == s.SiloAddress.ToString() && t.Chain.StartsWith("state", StringComparison.Ordinal)))
                ?? throw new InvalidOperationException("No silo but the first runs a keyed subtask; use more parallelism or silos.");
            failedAt = DateTimeOffset.UtcNow;
            await environment.Cluster.Orleans.KillSiloAsync(victim, cancellationToken);
            failure = "silo_killed";
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
                throw new InvalidOperationException($"The job did not resume: {status} (attempt {status.Attempt}).");
            }
        }

        var current = status.Subtasks.Where(s => s.Attempt == status.Attempt).ToList();
        var firstRecord = current.Where(static s => s.FirstRecordAt is not null).Min(static s => s.FirstRecordAt!.Value);
        var allReady = current.Max(static s => s.ReadyAt!.Value);
        var mttr = (firstRecord - failedAt).TotalSeconds;
        var downloaded = current.Sum(static s => s.Restore?.BytesDownloaded ?? 0);
        var linked = current.Sum(static s => s.Restore?.BytesLinked ?? 0);
        var downloading = current.Count(static s => s.Restore?.BytesDownloaded + s.Restore?.BytesLinked > 0);
        var manifestPath = status.RestoredFrom ?? throw new InvalidOperationException("The job did not restore from a checkpoint.");
        var manifest = ManifestJson.Deserialize((await environment.Storage.ReadAsync(manifestPath, cancellationToken))!, manifestPath);
        await client.CancelAsync(jobId, cancellationToken);

        // Baseline: the same bytes, downloaded raw from the same storage with as many parallel transfers as the
        // subtasks that took state from storage used together (a restore from filesystem storage links the SSTs instead
        // of copying them, which is what it is compared with). Nothing came from storage with local recovery: no baseline.
        var files = downloaded + linked == 0 ? [] : manifest.Files().ToList();
        var rawDownload = files.Count == 0 ? 0 : await environment.RawDownloadAsync(files, BenchEnvironment.TransfersPerSubtask * Math.Max(1, downloading));
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["failure"] = failure,
            ["mttr_s"] = Report.Round(mttr),
            ["ready_s"] = Report.Round((allReady - failedAt).TotalSeconds),
            ["bytes_downloaded"] = downloaded,
            ["bytes_linked"] = linked,
            ["raw_download_s"] = Report.Round(rawDownload),
            ["raw_bytes"] = files.Sum(static f => f.Length),
            ["mttr_over_raw_download"] = rawDownload > 0 ? Report.Round(mttr / rawDownload) : null,
            ["full_size_bytes"] = checkpoint.FullSize,
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }
}
