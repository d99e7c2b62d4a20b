using StreamGrains.Grains.Jobs;
using StreamGrains.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

public sealed class JobSubmissionTests : IDisposable
{
    private readonly TempStorage _storage = new();

    public void Dispose() => _storage.Dispose();

    [Fact]
    public async Task A_valid_spec_is_accepted_with_its_plan()
    {
        var check = await Submission(_storage.Storage).CheckAsync(PlannerJobs.Spec());

        Assert.True(check.Accepted);
        Assert.NotNull(check.Plan);
        Assert.Null(check.Restore);
    }

    [Fact]
    public async Task A_source_that_cannot_enumerate_its_splits_is_refused_before_anything_runs()
    {
        var check = await Submission(_storage.Storage).CheckAsync(PlannerJobs.Spec(JobParameters.Empty.With("failSplits", 1)));

        Assert.False(check.Accepted);
        Assert.Contains(check.Errors, static e => e.Contains("'numbers' could not enumerate its splits", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Unusable_checkpoint_storage_is_refused_with_its_location()
    {
        var check = await Submission(new NoAccessStorage(_storage.Storage)).CheckAsync(PlannerJobs.Spec());

        var error = Assert.Single(check.Errors);
        Assert.Contains("is not usable", error, StringComparison.Ordinal);
        Assert.Contains(_storage.Storage.Location, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_restore_point_that_does_not_exist_or_does_not_fit_is_refused_and_one_that_fits_is_read()
    {
        var fitting = PlannerJobs.Manifest(2, 2, checkpointId: 5) with { Kind = SnapshotKind.Savepoint };
        var misfit = PlannerJobs.Manifest(2, 2, checkpointId: 6, maxParallelism: 64) with { Kind = SnapshotKind.Savepoint };
        await _storage.PutAsync("savepoints/fits/_manifest.json", System.Text.Encoding.UTF8.GetString(State.Snapshots.ManifestJson.Serialize(fitting)));
        await _storage.PutAsync("savepoints/misfit/_manifest.json", System.Text.Encoding.UTF8.GetString(State.Snapshots.ManifestJson.Serialize(misfit)));
        var submission = Submission(_storage.Storage);

        var gone = await submission.CheckAsync(PlannerJobs.Spec() with { RestoreFrom = "savepoints/nothing" });
        var wrong = await submission.CheckAsync(PlannerJobs.Spec() with { RestoreFrom = "savepoints/misfit" });
        var right = await submission.CheckAsync(PlannerJobs.Spec() with { RestoreFrom = "savepoints/fits" });

        Assert.Contains("there is no checkpoint or savepoint at 'savepoints/nothing'", Assert.Single(gone.Errors), StringComparison.Ordinal);
        Assert.Contains(wrong.Errors, static e => e.Contains("max parallelism 64", StringComparison.Ordinal));
        Assert.True(right.Accepted);
        Assert.Equal(5, right.Restore!.CheckpointId);
        Assert.Equal("savepoints/fits/_manifest.json", right.Restore.ManifestPath);
    }

    private static JobSubmission Submission(ICheckpointStorage storage) => new(storage, new RestorePointReader(storage));

    private sealed class NoAccessStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public override Task CheckAccessAsync(CancellationToken cancellationToken) => throw new CheckpointStorageException("access denied (test)");
    }
}
