using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Benchmarks.Checkpoints;

internal sealed record RescaleSettings(StateSettings State, int From, int To, int Rounds, TimeSpan Settle = default);

/// <summary>
/// Restore of one native savepoint of <c>--state-mb</c> of keyed state taken at parallelism <c>--from</c>: at
/// parallelism <c>--to</c> (rescaled: clipped and merged) against at <c>--from</c> (plain), alternating, same run.
/// The restore time runs from the submit to the moment the last subtask reported its state ready. With
/// <c>--settle-s</c>, keys keep being updated that long after the load before the savepoint, so that the load's
/// compactions have run out; without it the savepoint holds the load's compaction debt (many level-0 files, each
/// spanning every key group of its subtask, which every new subtask overlapping that subtask must fetch).
/// </summary>
internal static class RescaleBenchmark
{
    public static async Task<int> RunAsync(RescaleSettings settings, CancellationToken cancellationToken)
    {
        var state = settings.State with { Parallelism = settings.From };
        var fields = state.Fields("rescale");
        fields["from"] = settings.From;
        fields["to"] = settings.To;
        fields["settle_s"] = settings.Settle.TotalSeconds;
        BenchChecks.Settle(settings.Settle);
        await using var environment = await BenchEnvironment.StartAsync(state);
        var client = environment.Client;
        var name = "rescale-" + Guid.NewGuid().ToString("N")[..8];
        Func<JobSpec, JobSpec> checkpointed = static spec => spec with
        {
            Checkpointing = new StreamGrains.CheckpointSettings { Interval = TimeSpan.FromDays(1), Timeout = TimeSpan.FromMinutes(20), LocalRecovery = false },
        };
        var jobId = await environment.LoadAsync(state, name, checkpointed);
        if (settings.Settle > TimeSpan.Zero)
        {
            // Pacing, not synchronization: the job keeps updating keys at the configured rate meanwhile.
            await Task.Delay(settings.Settle, cancellationToken);
        }

        var savepoint = await client.StopWithSavepointAsync(jobId, TimeSpan.FromMinutes(20), cancellationToken: cancellationToken);
        var layout = await LayoutAsync(environment, savepoint.Directory, settings.To);
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "savepoint",
            ["savepoint_s"] = Report.Round(savepoint.Duration.TotalSeconds),
            ["full_size_bytes"] = savepoint.FullSize,
            ["directory"] = savepoint.Directory,
            ["sst_mb_by_level"] = layout.MbByLevel,
            ["sst_files"] = layout.Files,
            ["rescale_fetch_bytes"] = layout.RescaleFetchBytes,
        });

        var plain = new List<double>();
        var rescaled = new List<double>();
        for (var round = 0; round < settings.Rounds; round++)
        {
            foreach (var (parallelism, kind, into) in new[] { (settings.From, "plain", plain), (settings.To, "rescale", rescaled) })
            {
                var restored = await environment.Cluster.SubmitAsync<StateLoadJob>(state.Parameters(name), parallelism, spec => checkpointed(spec) with { RestoreFrom = savepoint.Directory });
                var status = await client.WaitForStateAsync(restored, JobState.Running, TimeSpan.FromMinutes(20), cancellationToken);
                status = await client.GetStatusAsync(restored, cancellationToken: cancellationToken);
                var keyed = status.Subtasks.Where(static s => s.Chain.StartsWith("state", StringComparison.Ordinal)).ToList();
                var seconds = (status.Subtasks.Max(static s => s.ReadyAt!.Value) - status.SubmittedAt).TotalSeconds;
                into.Add(seconds);
                Report.Line(new Dictionary<string, object?>(fields)
                {
                    ["phase"] = kind,
                    ["round"] = round,
                    ["parallelism"] = parallelism,
                    ["restore_s"] = Report.Round(seconds),
                    ["bytes_restored"] = keyed.Sum(static s => s.Restore?.BytesTotal ?? 0),
                    ["bytes_downloaded"] = keyed.Sum(static s => s.Restore?.BytesDownloaded ?? 0),
                    ["bytes_linked"] = keyed.Sum(static s => s.Restore?.BytesLinked ?? 0),
                });
                await client.CancelAsync(restored, cancellationToken);
            }
        }

        var rescale = BenchEnvironment.Percentile(rescaled, 0.5);
        var plainS = BenchEnvironment.Percentile(plain, 0.5);
        Report.Line(new Dictionary<string, object?>(fields)
        {
            ["phase"] = "summary",
            ["rounds"] = settings.Rounds,
            ["rescale_restore_s"] = Report.Round(rescale),
            ["plain_restore_s"] = Report.Round(plainS),
            ["rescale_over_plain"] = Report.Round(rescale / plainS),
            ["full_size_bytes"] = savepoint.FullSize,
            ["peak_working_set_mb"] = Report.PeakWorkingSetMb(),
        });
        return 0;
    }

    /// <summary>
    /// The savepoint's SSTs: MB per LSM level, file count, and the bytes the subtasks at <paramref name="to"/> fetch
    /// between them (an SST counts once for every new subtask whose key groups it overlaps).
    /// </summary>
    private static async Task<(Dictionary<string, long> MbByLevel, int Files, long? RescaleFetchBytes)> LayoutAsync(BenchEnvironment environment, string directory, int to)
    {
        var path = SnapshotLayout.ManifestPathOf(directory);
        var manifest = ManifestJson.Deserialize((await environment.Storage.ReadAsync(path, CancellationToken.None))!, path);
        var ssts = manifest.Operators.SelectMany(static o => o.Subtasks).SelectMany(static s => s.KeyedState?.Files ?? []).Where(static f => f.Sst is not null).ToList();
        var byLevel = ssts.GroupBy(static f => f.Sst!.Level).OrderBy(static g => g.Key)
            .ToDictionary(static g => $"L{g.Key}", static g => g.Sum(static f => f.Length) >> 20);
        var ranges = Enumerable.Range(0, to).Select(i => KeyGroups.ComputeKeyGroupRangeForOperatorIndex(manifest.MaxParallelism, to, i)).ToList();
        long fetch = ssts.Sum(f => f.Length * ranges.Count(r => !r.Intersect(f.Sst!.KeyGroups).IsEmpty));
        return (byLevel, ssts.Count, fetch);
    }
}
