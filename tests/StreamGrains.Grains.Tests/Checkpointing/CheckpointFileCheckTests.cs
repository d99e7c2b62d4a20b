using StreamGrains.Grains.Checkpointing;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

public sealed class CheckpointFileCheckTests : IDisposable
{
    private readonly TempStorage _storage = new();

    public void Dispose() => _storage.Dispose();

    [Fact]
    public async Task A_checkpoint_with_every_file_in_storage_has_none_missing()
    {
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2));
        await _storage.PutAsync(checkpoint);

        Assert.Null(await CheckpointFileCheck.FindMissingFileAsync(_storage.Storage, checkpoint.Manifest, stored: null));
    }

    [Fact]
    public async Task A_missing_file_is_named()
    {
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2));
        await _storage.PutAsync(checkpoint);
        var missing = checkpoint.Manifest.Files().Last().Path;
        await _storage.Storage.DeleteAsync(missing, CancellationToken.None);

        Assert.Equal(missing, await CheckpointFileCheck.FindMissingFileAsync(_storage.Storage, checkpoint.Manifest, stored: null));
    }

    [Fact]
    public async Task Files_the_listing_showed_are_not_asked_for_again_and_the_others_are()
    {
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2));
        var paths = checkpoint.Manifest.Files().Select(static f => f.Path).ToArray();
        var counting = new CountingStorage(_storage.Storage);

        // Nothing is in storage: the listed file counts as present, the other is asked for and is missing.
        var missing = await CheckpointFileCheck.FindMissingFileAsync(counting, checkpoint.Manifest, new HashSet<string>([paths[0]]));

        Assert.Equal(paths[1], missing);
        Assert.Equal([paths[1]], counting.Asked);
    }

    [Fact]
    public async Task Storage_that_cannot_answer_throws_rather_than_calling_a_file_missing()
    {
        var checkpoint = PlannerJobs.Completed(PlannerJobs.Manifest(2, 2));

        await Assert.ThrowsAsync<CheckpointStorageException>(() => CheckpointFileCheck.FindMissingFileAsync(new CountingStorage(_storage.Storage) { Fail = true }, checkpoint.Manifest, stored: null));
    }

    private sealed class CountingStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public System.Collections.Concurrent.ConcurrentBag<string> Asked { get; } = [];

        public bool Fail { get; init; }

        public override Task<bool> ExistsAsync(string path, CancellationToken cancellationToken)
        {
            Asked.Add(path);
            return Fail ? throw new CheckpointStorageException("unreachable (test)") : base.ExistsAsync(path, cancellationToken);
        }
    }
}
