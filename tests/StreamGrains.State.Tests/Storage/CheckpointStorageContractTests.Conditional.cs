using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Storage;

/// <summary>The contract of <see cref="IConditionalCheckpointStorage"/>: a write based on an old version fails.</summary>
public abstract partial class CheckpointStorageContractTests
{
    private IConditionalCheckpointStorage Conditional => Assert.IsAssignableFrom<IConditionalCheckpointStorage>(Storage);

    [Fact]
    public async Task A_conditional_write_creates_only_when_absent_and_replaces_only_the_version_it_read()
    {
        const string Path = "job/_job.record";
        var first = RandomBytes(seed: 21, 300);
        var second = RandomBytes(seed: 22, 400);

        var created = await Conditional.WriteIfAsync(Path, first, expectedVersion: null, CancellationToken.None);
        await Assert.ThrowsAsync<CheckpointWriteConflictException>(() => Conditional.WriteIfAsync(Path, second, expectedVersion: null, CancellationToken.None));
        var read = await Conditional.ReadVersionedAsync(Path, CancellationToken.None);
        var replaced = await Conditional.WriteIfAsync(Path, second, created, CancellationToken.None);

        Assert.NotNull(read);
        Assert.Equal(first, read.Content);
        Assert.Equal(created, read.Version);
        Assert.NotEqual(created, replaced);
        Assert.Equal(second, await Storage.ReadAsync(Path, CancellationToken.None));
        Assert.Null(await Conditional.ReadVersionedAsync("job/absent.record", CancellationToken.None));
    }

    [Fact]
    public async Task A_writer_holding_an_older_version_fails_and_leaves_the_newer_content()
    {
        const string Path = "job/_job.record";
        var original = await Conditional.WriteIfAsync(Path, RandomBytes(seed: 31, 100), expectedVersion: null, CancellationToken.None);
        var newer = RandomBytes(seed: 32, 100);

        // Two writers read the same version; the first to write wins, the second's version is stale.
        await Conditional.WriteIfAsync(Path, newer, original, CancellationToken.None);
        await Assert.ThrowsAsync<CheckpointWriteConflictException>(() => Conditional.WriteIfAsync(Path, RandomBytes(seed: 33, 100), original, CancellationToken.None));
        await Storage.DeleteAsync(Path, CancellationToken.None);
        await Assert.ThrowsAsync<CheckpointWriteConflictException>(() => Conditional.WriteIfAsync(Path, RandomBytes(seed: 34, 100), original, CancellationToken.None));

        Assert.Null(await Storage.ReadAsync(Path, CancellationToken.None));
        await foreach (var stored in Storage.ListAsync("job", CancellationToken.None))
        {
            Assert.Fail($"nothing should be listed, not even a lock file: {stored.Path}");
        }
    }

    [Fact]
    public async Task Concurrent_conditional_writers_from_one_version_have_exactly_one_winner()
    {
        const string Path = "job/_job.record";
        var original = await Conditional.WriteIfAsync(Path, RandomBytes(seed: 41, 64), expectedVersion: null, CancellationToken.None);
        var contents = Enumerable.Range(0, 8).Select(i => RandomBytes(seed: 50 + i, 64)).ToArray();

        var outcomes = await Task.WhenAll(contents.Select(async content =>
        {
            try
            {
                await Conditional.WriteIfAsync(Path, content, original, CancellationToken.None);
                return content;
            }
            catch (CheckpointWriteConflictException)
            {
                return null;
            }
        }));

        var winner = Assert.Single(outcomes, static o => o is not null);
        Assert.Equal(winner, await Storage.ReadAsync(Path, CancellationToken.None));
    }
}
