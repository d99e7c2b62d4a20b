using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Serialization;
using StreamGrains.Grains.Checkpointing;
using StreamGrains.Grains.Jobs;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

/// <summary>The parts that let a job's grains survive their silo: fenced record writes, the epoch fence, id reservation, read back-off.</summary>
public sealed class JobSurvivalPartsTests : IDisposable
{
    private static readonly JobId Job = new("fenced");
    private readonly TempStorage _storage = new();
    private readonly ServiceProvider _services = new ServiceCollection().AddSerializer().BuildServiceProvider();

    public void Dispose()
    {
        _services.Dispose();
        _storage.Dispose();
    }

    [Fact]
    public async Task An_older_activations_record_write_is_refused_once_a_newer_activation_wrote()
    {
        var older = Store();
        Assert.True(await older.WriteAsync(Job, Record(epoch: 1)));
        var newer = Store();
        var read = await newer.ReadAsync(Job, CancellationToken.None);
        Assert.True(await newer.WriteAsync(Job, Record(epoch: 2)));

        var refused = await older.WriteAsync(Job, Record(epoch: 3));

        Assert.Equal(1, read!.Epoch);
        Assert.False(refused);
        Assert.True(older.Superseded);
        Assert.False(newer.Superseded);
        Assert.Equal(2, (await Store().ReadAsync(Job, CancellationToken.None))!.Epoch);
    }

    [Fact]
    public async Task A_store_that_never_read_the_record_cannot_overwrite_it()
    {
        Assert.True(await Store().WriteAsync(Job, Record(epoch: 5)));

        // A submit whose activation saw no record (it could not read it) must not overwrite the existing job.
        Assert.False(await Store().WriteAsync(Job, Record(epoch: 1)));
        Assert.Equal(5, (await Store().ReadAsync(Job, CancellationToken.None))!.Epoch);
    }

    [Fact]
    public async Task The_epoch_fence_refuses_deletions_of_a_coordinator_started_under_an_older_epoch()
    {
        var serializer = _services.GetRequiredService<Serializer>();
        var noRecordYet = new EpochFence(_storage.Storage, serializer, NullLogger.Instance, Job.Value, epoch: 1);
        Assert.True(await noRecordYet.AllowsDeletionAsync());
        var store = Store();
        Assert.True(await store.WriteAsync(Job, Record(epoch: 2)));
        var current = new EpochFence(_storage.Storage, serializer, NullLogger.Instance, Job.Value, epoch: 2);
        var ahead = new EpochFence(_storage.Storage, serializer, NullLogger.Instance, Job.Value, epoch: 3);
        var stale = new EpochFence(_storage.Storage, serializer, NullLogger.Instance, Job.Value, epoch: 1);

        Assert.True(await current.AllowsDeletionAsync());
        Assert.True(await ahead.AllowsDeletionAsync());
        Assert.False(await stale.AllowsDeletionAsync());
        Assert.True(stale.IsStale);
        Assert.True(await store.WriteAsync(Job, Record(epoch: 1)));
        Assert.False(await stale.AllowsDeletionAsync());
        Assert.False(current.IsStale);
    }

    [Fact]
    public async Task An_unreadable_record_refuses_deletion_without_making_the_coordinator_stale()
    {
        Assert.True(await Store().WriteAsync(Job, Record(epoch: 1)));
        var fence = new EpochFence(new UnreadableStorage(_storage.Storage), _services.GetRequiredService<Serializer>(), NullLogger.Instance, Job.Value, epoch: 1);

        Assert.False(await fence.AllowsDeletionAsync());
        Assert.False(fence.IsStale);
    }

    [Fact]
    public async Task Reserved_checkpoint_ids_survive_the_reservation_and_are_raised_a_block_at_a_time()
    {
        var first = new CheckpointIdReservation(_storage.Storage, Job.Value, NullLogger.Instance);
        Assert.Equal(1, await first.LoadAsync());
        Assert.True(await first.ReserveAsync(1));
        Assert.True(await first.ReserveAsync(CheckpointIdReservation.Block));
        var afterOneBlock = await new CheckpointIdReservation(_storage.Storage, Job.Value, NullLogger.Instance).LoadAsync();
        Assert.True(await first.ReserveAsync(CheckpointIdReservation.Block + 1));

        var lost = await new CheckpointIdReservation(_storage.Storage, Job.Value, NullLogger.Instance).LoadAsync();

        Assert.Equal(1 + CheckpointIdReservation.Block, afterOneBlock);
        Assert.Equal(1 + (2 * CheckpointIdReservation.Block), lost);
    }

    [Theory]
    [InlineData(1, 500)]
    [InlineData(2, 1_000)]
    [InlineData(4, 4_000)]
    [InlineData(7, 30_000)]
    [InlineData(100, 30_000)]
    public void Reading_an_unreadable_record_again_backs_off_from_half_a_second_to_thirty(int failures, int milliseconds) =>
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), JobRecordStore.RetryDelay(failures));

    private static JobRecord Record(long epoch) => new() { Spec = PlannerJobs.Spec(), State = JobState.Running, Attempt = 1, Epoch = epoch };

    private JobRecordStore Store() => new(_storage.Storage, _services.GetRequiredService<Serializer>(), NullLogger.Instance);

    private sealed class UnreadableStorage(ICheckpointStorage inner) : DelegatingCheckpointStorage(inner)
    {
        public override Task<VersionedObject?> ReadVersionedAsync(string path, CancellationToken cancellationToken) => throw new CheckpointStorageException("unreachable (test)");
    }
}
