using StreamGrains.Client;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;
using StreamGrains.TestInfrastructure;
using StreamGrains.Testing;

namespace StreamGrains.Grains.Tests;

public sealed class SavepointTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    internal const long Events = 200_000;
    private const long Keys = 1_000;
    private const long TimerUpTo = 100;

    [Fact]
    public async Task Stop_with_savepoint_and_restore_at_parallelism_2_5_1_3_gives_exact_state_and_fires_every_timer_once()
    {
        var name = $"rescale-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        string? restoreFrom = null;
        var parallelisms = new[] { 2, 5, 1, 3 };
        JobStatus? last = null;
        for (var step = 0; step < parallelisms.Length; step++)
        {
            var from = restoreFrom;
            var jobId = await cluster.SubmitAsync<RichStateJob>(RichParameters(name), parallelisms[step], spec => Checkpointed(spec) with { RestoreFrom = from });
            await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
            if (step < parallelisms.Length - 1)
            {
                // Stop in the middle of the input: a quarter further each time.
                var target = Events * (step + 1) / parallelisms.Length;
                await WaitUntilAsync(() => results.StateOutputs >= target, $"{target} outputs");
                var savepoint = await client.StopWithSavepointAsync(jobId, Timeout);
                var stopped = await client.GetStatusAsync(jobId);
                Assert.Equal(JobState.Finished, stopped.State);
                Assert.Equal(savepoint.Directory, stopped.FinalSavepoint);
                Assert.Equal(SavepointPhase.Completed, savepoint.Phase);
                Assert.True(results.StateOutputs < Events, "the job ran to its end before it was stopped");
                restoreFrom = savepoint.Directory;
            }
            else
            {
                last = await client.WaitForStateAsync(jobId, JobState.Finished, Timeout);
            }
        }

        Assert.Equal(JobState.Finished, last!.State);
        Assert.Equal(3, last.Subtasks.Count(static s => s.Chain.StartsWith("rich", StringComparison.Ordinal)));
        AssertExact(results);
    }

    [Fact]
    public async Task A_changed_job_restores_with_AllowNonRestoredState_and_without_it_the_error_names_the_removed_Uid()
    {
        var name = $"changed-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        var jobId = await cluster.SubmitAsync<RichStateJob>(RichParameters(name), 2, Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        await WaitUntilAsync(() => results.StateOutputs >= Events / 3, "a third of the outputs");
        var savepoint = await client.StopWithSavepointAsync(jobId, Timeout);
        var outputsAtStop = results.StateOutputs;

        var changed = RichParameters(name).With("variant", 2);
        var rejected = await Assert.ThrowsAsync<JobSubmissionException>(() => cluster.SubmitAsync<RichStateJob>(changed, 3, spec => Checkpointed(spec) with { RestoreFrom = savepoint.Directory }));
        Assert.Contains("'legacy'", rejected.Message, StringComparison.Ordinal);
        Assert.Contains("AllowNonRestoredState", rejected.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<JobNotFoundException>(() => client.GetStatusAsync(rejected.JobId));
        Assert.Equal(outputsAtStop, results.StateOutputs);

        var restored = await cluster.SubmitAsync<RichStateJob>(changed, 3, spec => Checkpointed(spec) with { RestoreFrom = savepoint.Directory, AllowNonRestoredState = true });
        var finished = await client.WaitForStateAsync(restored, JobState.Finished, Timeout);

        Assert.Equal(JobState.Finished, finished.State);
        Assert.Contains(finished.Subtasks, static s => s.Chain.Contains("filter", StringComparison.Ordinal));
        AssertExact(results);
    }

    [Fact]
    public async Task A_state_type_that_gained_a_field_restores_with_the_field_at_its_default()
    {
        var name = $"profiles-{Guid.NewGuid():N}";
        const long ProfileEvents = 20_000;
        const long ProfileKeys = 100;
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        var parameters = JobParameters.Empty.With("events", ProfileEvents).With("keys", ProfileKeys).With("rate", 10_000).With("name", name);
        var v1 = await cluster.SubmitAsync<ProfileJob>(parameters.With("version", 1), 2, Checkpointed);
        await client.WaitForStateAsync(v1, JobState.Running, Timeout);
        await WaitUntilAsync(() => results.Profiles.Count == ProfileKeys && results.Profiles.Values.Sum(static p => p.Count) >= ProfileEvents / 3, "a third of the profile updates");
        var savepoint = await client.StopWithSavepointAsync(v1, Timeout);
        Assert.All(results.Profiles.Values, static p => Assert.Equal(-1, p.Level));

        var v2 = await cluster.SubmitAsync<ProfileJob>(parameters.With("version", 2), 2, spec => Checkpointed(spec) with { RestoreFrom = savepoint.Directory });
        await client.WaitForStateAsync(v2, JobState.Finished, Timeout);

        Assert.Equal(ProfileKeys, results.Profiles.Count);
        Assert.All(results.Profiles, static p =>
        {
            Assert.Equal(ProfileEvents / ProfileKeys, p.Value.Count);
            Assert.Equal(7, p.Value.Level);
            Assert.Equal($"user-{p.Key}", p.Value.Name);
        });
    }

    [Theory]
    [InlineData(CheckpointStorageOptions.FileSystemKind)]
    [InlineData(CheckpointStorageOptions.AzureBlobKind)]
    public async Task A_native_savepoint_restores_after_every_checkpoint_of_its_job_was_deleted(string storageKind)
    {
        var name = $"native-{Guid.NewGuid():N}";
        await using var azurite = storageKind == CheckpointStorageOptions.AzureBlobKind ? await AzuriteServer.StartAsync() : null;
        await using var cluster = await StreamGrainsCluster.StartAsync(new StreamGrainsClusterOptions
        {
            Silos = 2,
            ConfigureRuntime = azurite is null ? null : o => CheckpointTests.UseBlob(o, azurite.ConnectionString),
        });
        var client = cluster.Client;
        var results = RichStore.Of(name);
        var jobId = await cluster.SubmitAsync<RichStateJob>(RichParameters(name), 2, Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        await WaitUntilAsync(() => results.StateOutputs >= Events / 4, "a quarter of the outputs");
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);
        var reports = new List<SavepointStatus>();
        var savepoint = await client.TriggerSavepointAsync(jobId, new SavepointRequest(), Timeout, new InlineProgress<SavepointStatus>(reports.Add));
        await client.CancelAsync(jobId);

        var storage = StorageOf(cluster, azurite);
        await storage.DeletePrefixAsync(jobId.Value, CancellationToken.None);
        await foreach (var left in storage.ListAsync(jobId.Value, CancellationToken.None))
        {
            Assert.Fail($"{left.Path} of the job is left in storage");
        }

        var listed = await client.ListSavepointsAsync(jobId);
        Assert.Single(listed, s => s.Directory == savepoint.Directory && s.Format == SavepointFormat.Native && s.CheckpointId == savepoint.CheckpointId);
        Assert.Equal(SavepointPhase.Completed, reports[^1].Phase);
        Assert.True(savepoint.FilesTotal > 0 && savepoint.FilesCopied == savepoint.FilesTotal, $"progress: {savepoint}");

        var fresh = RichStore.Of(name + "-restored");
        var restored = await cluster.SubmitAsync<RichStateJob>(RichParameters(name + "-restored"), 3, spec => Checkpointed(spec) with { RestoreFrom = savepoint.Directory });
        await client.WaitForStateAsync(restored, JobState.Finished, Timeout);

        AssertExactStates(fresh);
        Assert.True(fresh.StateOutputs < Events, "the restored job processed every record again");
        await client.DisposeSavepointAsync(savepoint.Directory);
        Assert.DoesNotContain(await client.ListSavepointsAsync(jobId), s => s.Directory == savepoint.Directory);
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.DisposeSavepointAsync(savepoint.Directory));
    }

    [Fact]
    public async Task A_canonical_savepoint_restores_at_another_parallelism_with_identical_state_for_every_key()
    {
        var name = $"canonical-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        // Timers far in the future: none fires while the state is compared (they are part of the state compared).
        var parameters = RichParameters(name).With("timerDelayMs", 3_600_000);
        var jobId = await cluster.SubmitAsync<RichStateJob>(parameters, 2, Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        await WaitUntilAsync(() => results.StateOutputs >= Events / 3, "a third of the outputs");
        var first = await client.StopWithSavepointAsync(jobId, Timeout, SavepointFormat.Canonical);

        // Restored at parallelism 3 with nothing reaching the keyed operator, then saved again: the state must be the same.
        var restored = await cluster.SubmitAsync<RichStateJob>(parameters.With("dropAll", 1), 3, spec => Checkpointed(spec) with { RestoreFrom = first.Directory });
        await client.WaitForStateAsync(restored, JobState.Running, Timeout);
        var second = await client.StopWithSavepointAsync(restored, Timeout, SavepointFormat.Canonical);

        var storage = CheckpointTests.StorageOf(cluster);
        var before = await SavepointReader.ReadAllAsync(storage, first.Directory, "rich");
        var after = await SavepointReader.ReadAllAsync(storage, second.Directory, "rich");
        Assert.True(before.Count > Keys, $"the first savepoint has only {before.Count} entries");
        Assert.Contains(before.Keys, static k => k.StartsWith("_timers/", StringComparison.Ordinal));
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
        Assert.All(before, entry => Assert.Equal(entry.Value, after[entry.Key]));
        Assert.Equal(SavepointFormat.Canonical, (await client.ListSavepointsAsync(restored)).Single().Format);
    }

    [Fact]
    public async Task A_failed_stop_with_savepoint_keeps_the_job_running_and_an_upgrade_can_fall_back_to_the_latest_checkpoint()
    {
        var name = $"failing-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        var jobId = await cluster.SubmitAsync<RichStateJob>(RichParameters(name), 2, Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        await WaitUntilAsync(() => results.StateOutputs >= Events / 5, "a fifth of the outputs");

        // A file where the savepoint's directory should go: the snapshot succeeds, copying into the directory cannot.
        var root = Path.Combine(cluster.RootDirectory, "checkpoints");
        await File.WriteAllTextAsync(Path.Combine(root, "not-a-directory"), "in the way");
        var failed = await Assert.ThrowsAsync<SavepointFailedException>(() => client.StopWithSavepointAsync(jobId, Timeout, directory: "not-a-directory/sp"));
        Assert.Contains("not-a-directory", failed.Message, StringComparison.Ordinal);
        Assert.Equal(JobState.Running, (await client.GetStatusAsync(jobId)).State);
        var outputsAfterFailure = results.StateOutputs;
        await WaitUntilAsync(() => results.StateOutputs > outputsAfterFailure + 1_000, "processing to resume after the failed savepoint");
        Assert.Equal(CheckpointOutcome.Completed, (await client.TriggerCheckpointAsync(jobId, Timeout)).Outcome);

        var upgrade = await client.UpgradeAsync(jobId, Spec(name, parallelism: 3), new UpgradeOptions { Directory = "not-a-directory/sp2", FallBackToLatestCheckpoint = true, Timeout = Timeout });

        Assert.NotNull(upgrade.Warning);
        Assert.Contains("/chk-", upgrade.RestoredFrom, StringComparison.Ordinal);
        Assert.Equal(JobState.Canceled, (await client.GetStatusAsync(jobId)).State);
        var finished = await client.WaitForStateAsync(upgrade.JobId, JobState.Finished, Timeout);
        Assert.Equal(upgrade.RestoredFrom, finished.RestoredFrom);
        AssertExactStates(results);
    }

    [Fact]
    public async Task NoClaim_uploads_the_first_checkpoint_in_full_and_Claim_builds_on_the_restored_files()
    {
        var name = $"claim-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        // Timers far in the future: none fires after the restore, so the restored state stays as it was.
        var parameters = RichParameters(name).With("timerDelayMs", 3_600_000);
        var jobId = await cluster.SubmitAsync<RichStateJob>(parameters, 2, Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        await WaitUntilAsync(() => results.StateOutputs >= Events / 3, "a third of the outputs");
        var savepoint = await client.StopWithSavepointAsync(jobId, Timeout);

        var first = new Dictionary<RestoreMode, CheckpointStats>();
        foreach (var mode in new[] { RestoreMode.NoClaim, RestoreMode.Claim })
        {
            // Nothing reaches the keyed operator, so its first checkpoint holds exactly the restored state.
            var restored = await cluster.SubmitAsync<RichStateJob>(parameters.With("dropAll", 1), 2, spec => Checkpointed(spec) with { RestoreFrom = savepoint.Directory, RestoreMode = mode });
            await client.WaitForStateAsync(restored, JobState.Running, Timeout);
            first[mode] = await client.TriggerCheckpointAsync(restored, Timeout);
            await client.CancelAsync(restored);
        }

        Assert.All(first.Values, static c => Assert.Equal(CheckpointOutcome.Completed, c.Outcome));
        Assert.True(first[RestoreMode.NoClaim].BytesUploaded > first[RestoreMode.NoClaim].FullSize * 9 / 10, $"NoClaim: {first[RestoreMode.NoClaim].BytesUploaded} of {first[RestoreMode.NoClaim].FullSize} bytes uploaded");
        // Claim uploads only each instance's private files (RocksDB MANIFEST, CURRENT, OPTIONS: tens of KB with six column
        // families, a third of this small state), no SST.
        Assert.True(first[RestoreMode.Claim].BytesUploaded < first[RestoreMode.NoClaim].BytesUploaded / 2, $"Claim: {first[RestoreMode.Claim].BytesUploaded} bytes uploaded, NoClaim {first[RestoreMode.NoClaim].BytesUploaded}");
    }

    [Fact]
    public async Task Bad_savepoint_requests_are_refused_with_the_reason_and_the_job_keeps_running()
    {
        var name = $"bad-{Guid.NewGuid():N}";
        var cluster = fixture.Cluster;
        var client = cluster.Client;
        var results = RichStore.Of(name);
        var uncheckpointed = await cluster.SubmitAsync<RichStateJob>(RichParameters(name + "-unchecked"), 1);
        await client.WaitForStateAsync(uncheckpointed, JobState.Running, Timeout);
        var disabled = await Assert.ThrowsAsync<InvalidOperationException>(() => client.StopWithSavepointAsync(uncheckpointed, Timeout));
        Assert.Contains("checkpointing disabled", disabled.Message, StringComparison.Ordinal);
        await client.CancelAsync(uncheckpointed);

        var jobId = await cluster.SubmitAsync<RichStateJob>(RichParameters(name), 2, Checkpointed);
        await client.WaitForStateAsync(jobId, JobState.Running, Timeout);
        var escaping = await Assert.ThrowsAsync<InvalidOperationException>(() => client.TriggerSavepointAsync(jobId, new SavepointRequest { Directory = "../outside" }, Timeout));
        Assert.Contains("'../outside' is not a valid savepoint directory", escaping.Message, StringComparison.Ordinal);
        var first = await client.TriggerSavepointAsync(jobId, new SavepointRequest { Directory = "mine/sp-a" }, Timeout);
        var taken = await Assert.ThrowsAsync<InvalidOperationException>(() => client.TriggerSavepointAsync(jobId, new SavepointRequest { Directory = first.Directory }, Timeout));
        Assert.Contains("already is a savepoint", taken.Message, StringComparison.Ordinal);
        var missing = await Assert.ThrowsAsync<JobSubmissionException>(() => cluster.SubmitAsync<RichStateJob>(RichParameters(name), 2, spec => Checkpointed(spec) with { RestoreFrom = "mine/none" }));
        Assert.Contains("there is no checkpoint or savepoint at 'mine/none'", missing.Message, StringComparison.Ordinal);

        Assert.Equal("mine/sp-a", first.Directory);
        Assert.Equal(JobState.Running, (await client.GetStatusAsync(jobId)).State);
        await client.CancelAsync(jobId);
    }

    internal static JobParameters RichParameters(string name) =>
        JobParameters.Empty.With("events", Events).With("keys", Keys).With("rate", 40_000).With("name", name).With("timerUpTo", TimerUpTo).With("timerDelayMs", 300);

    private static JobSpec Spec(string name, int parallelism) => Checkpointed(new JobSpec { JobType = typeof(RichStateJob).FullName!, Parameters = RichParameters(name), Parallelism = parallelism });

    internal static JobSpec Checkpointed(JobSpec spec) => spec with
    {
        Checkpointing = new CheckpointSettings { Interval = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(60) },
        Restart = RestartStrategy.None,
    };

    private static ICheckpointStorage StorageOf(StreamGrainsCluster cluster, AzuriteServer? azurite) =>
        azurite is null
            ? CheckpointTests.StorageOf(cluster)
            : new CheckpointStorageOptions { Kind = CheckpointStorageOptions.AzureBlobKind, ConnectionString = azurite.ConnectionString, Container = "checkpoints" }.Create();

    internal static void AssertExact(RichStore.Results results)
    {
        AssertExactStates(results);
        var (states, timers) = RichStore.Expected(Events, Keys, TimerUpTo);
        var wrongCounts = states.Where(e => results.Outputs.GetValueOrDefault(e.Key) != e.Value.Count).Take(5).Select(e => $"{e.Key}: {results.Outputs.GetValueOrDefault(e.Key)} outputs for {e.Value.Count} readings").ToList();
        Assert.True(wrongCounts.Count == 0, $"records processed more or less than once: {string.Join(", ", wrongCounts)}");
        var missing = timers.Where(t => !results.TimerFires.ContainsKey(t)).Take(5).ToList();
        Assert.True(missing.Count == 0, $"timers that never fired: {string.Join(", ", missing)}");
        var twice = results.TimerFires.Where(static t => t.Value != 1).Take(5).ToList();
        Assert.True(twice.Count == 0, $"timers that fired more than once: {string.Join(", ", twice)}");
        Assert.Equal(timers.Count, results.TimerFires.Count);
    }

    private static void AssertExactStates(RichStore.Results results)
    {
        var (states, _) = RichStore.Expected(Events, Keys, TimerUpTo);
        var wrong = states.Where(e => results.Latest.GetValueOrDefault(e.Key) != e.Value).Take(5).Select(e => $"{e.Key}: expected {e.Value}, got {results.Latest.GetValueOrDefault(e.Key)}").ToList();
        Assert.True(wrong.Count == 0, $"state differs: {string.Join("; ", wrong)}");
        Assert.Equal(states.Count, results.Latest.Count);
    }

    internal static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
