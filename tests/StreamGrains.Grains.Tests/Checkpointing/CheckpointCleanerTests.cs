using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

public sealed class CheckpointCleanerTests : IDisposable
{
    private readonly TempStorage _storage = new();

    public void Dispose() => _storage.Dispose();

    [Fact]
    public async Task Orphans_are_the_shared_and_changelog_files_no_retained_checkpoint_refers_to_and_only_they_are_deleted()
    {
        var retained = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 9));
        await _storage.PutAsync(retained);
        await _storage.PutAsync("planner/shared/left-by-failed-attempt.sst");
        await _storage.PutAsync("planner/changelog/counts/0/log/0000000001.log");
        await _storage.PutAsync("planner/_job.record");
        await _storage.PutAsync("other-job/shared/not-ours.sst");

        var collection = await Cleaner().CollectOrphansAsync("planner", [retained]);
        await collection.Deletion;

        Assert.NotNull(collection.Listed);
        Assert.Contains("planner/shared/left-by-failed-attempt.sst", collection.Listed);
        Assert.False(await Exists("planner/shared/left-by-failed-attempt.sst"));
        Assert.False(await Exists("planner/changelog/counts/0/log/0000000001.log"));
        Assert.True(await Exists("planner/_job.record"));
        Assert.True(await Exists("other-job/shared/not-ours.sst"));
        Assert.True(await Exists(retained.ManifestPath));
        foreach (var file in retained.Manifest.Files())
        {
            Assert.True(await Exists(file.Path), file.Path);
        }
    }

    [Fact]
    public async Task A_manifest_in_storage_that_is_not_among_the_retained_checkpoints_keeps_every_file()
    {
        var retained = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 9));
        var unknown = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 10));
        await _storage.PutAsync(retained);
        await _storage.PutAsync(unknown);

        var collection = await Cleaner().CollectOrphansAsync("planner", [retained]);
        await collection.Deletion;

        Assert.Null(collection.Listed);
        foreach (var file in unknown.Manifest.Files())
        {
            Assert.True(await Exists(file.Path), file.Path);
        }
    }

    [Fact]
    public async Task Deleting_a_checkpoint_removes_its_manifest_its_directory_and_the_shared_files_it_alone_used()
    {
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2, checkpointId: 9));
        await _storage.PutAsync(checkpoint);
        await _storage.PutAsync("planner/chk-9/private-file");
        var onlyItsOwn = checkpoint.Manifest.Files().First().Path;

        await Cleaner().DeleteCheckpointAsync("planner", checkpoint, [onlyItsOwn]);

        Assert.False(await Exists(checkpoint.ManifestPath));
        Assert.False(await Exists("planner/chk-9/private-file"));
        Assert.False(await Exists(onlyItsOwn));
        Assert.True(await Exists(checkpoint.Manifest.Files().Last().Path));
    }

    [Fact]
    public async Task Disposing_a_savepoint_deletes_its_manifest_and_directory_and_reports_a_storage_failure()
    {
        await _storage.PutAsync("savepoints/sp/_manifest.json");
        await _storage.PutAsync("savepoints/sp/counts/0.state");

        await Cleaner().DeleteSavepointAsync("savepoints/sp/_manifest.json");

        Assert.False(await Exists("savepoints/sp/_manifest.json"));
        Assert.False(await Exists("savepoints/sp/counts/0.state"));
        var refusing = new RefusingStorage(_storage.Storage);
        await Assert.ThrowsAsync<CheckpointStorageException>(() => new CheckpointCleaner(refusing, NullLogger.Instance).DeleteSavepointAsync("savepoints/other/_manifest.json"));
        await new CheckpointCleaner(refusing, NullLogger.Instance).DeletePrefixAsync("savepoints/other");
    }

    private CheckpointCleaner Cleaner() => new(_storage.Storage, NullLogger.Instance);

    private Task<bool> Exists(string path) => _storage.Storage.ExistsAsync(path, CancellationToken.None);

    private sealed class RefusingStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public override Task DeleteAsync(string path, CancellationToken cancellationToken) => throw new CheckpointStorageException($"Deleting '{path}' was refused (test).");

        public override Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken) => throw new CheckpointStorageException($"Deleting '{prefix}' was refused (test).");
    }
}
